"""绩效评价报告 (财预〔2020〕10号 附件3 参考提纲) as a DOCX draft.

Seven sections, as the reference report (乌鲁木齐市知识产权运营服务体系建设项目 2023 年度绩效评价
报告) sets them out: 一、基本情况 / 二、绩效评价工作开展情况 / 三、综合评价情况及评价结论 /
四、绩效评价指标分析 / 五、主要经验及做法、存在的问题及原因分析 / 六、有关建议 /
七、其他需要说明的问题; headings numbered 一、（一）1. in the 公文 styles of ``docx_style``.

Every number and every computed sentence comes from the data (``DocumentData``): per 一级
"由N个二级指标和M个三级指标构成，权重为X分，实际得分Y分"; per 二级 "综上，该指标满分X分，得分Y分";
the funds sentences (amounts, arrival dates, batches, units paid); the questionnaire sentence
(发放 / 回收 / 有效 份数, each level's count, the rate against its target); the score table and the
grade; 偏差 from the score's warnings. What only people can write (背景, evidence per indicator,
经验做法, 问题, 建议) comes from the narrative, where the outline puts it; a section nobody has
written yet says so in brackets instead of inventing text.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from decimal import Decimal
from typing import Any

from bot.documents.data import DocumentData
from bot.documents.docx_style import WUHAO, keep_rows_whole, set_cell, setup_document, style_name
from bot.documents.text import cn_count, cn_date, cn_dates, cn_months, local_time, paragraphs, sentence
from config.narrative import TextItem
from scoring.model import IndicatorResult
from scoring.money import wan_text
from scoring.rounding import fmt_number, fmt_pct, round_rate

CN_SECTIONS = "一二三四五六七八九十"
#: Section titles of the 附件3 outline (the reference report's, word for word).
OUTLINE = (
    "基本情况",
    "绩效评价工作开展情况",
    "综合评价情况及评价结论",
    "绩效评价指标分析",
    "主要经验及做法、存在的问题及原因分析",
    "有关建议",
    "其他需要说明的问题",
)
#: 一级 names as §四's headings put them (others read "项目X情况").
LEVEL_HEADINGS = {"满意度": "满意度指标完成情况"}
MISSING = (
    "（待填写：{what}。可在项目的 narrative.toml 或通过接口 PUT /api/projects/{{code}}/narrative 填写。）"
)

PRINCIPLES = (
    ("科学公正", "绩效评价应当运用科学合理的方法，按照规范的程序，对项目绩效进行客观、公正的反映。"),
    (
        "统筹兼顾",
        "单位自评、部门评价和财政评价应职责明确，各有侧重，相互衔接。单位自评应由项目单位自主实施，即“谁支出、谁自评”。",
    ),
    (
        "激励约束",
        "绩效评价结果应与预算安排、政策调整、改进管理实质性挂钩，体现奖优罚劣和激励相容导向，有效要安排、低效要压减、无效要问责。",
    ),
    ("公开透明", "绩效评价结果应依法依规公开，并自觉接受社会监督。"),
)
METHODS = (
    "《项目支出绩效评价管理办法》（财预〔2020〕10号）规定的评价方法主要包括成本效益分析法、比较法、因素分析法、"
    "最低成本法、公众评判法、标杆管理法等。"
)
STANDARDS = (
    "绩效评价标准主要包括计划标准、行业标准、历史标准等，用于对绩效指标完成情况进行比较。本次评价以项目年初设定的"
    "绩效目标和指标值（计划标准）为主要评价标准。"
)


def _n(x: Decimal | None) -> str:
    """Points and amounts in sentences: trailing zeros dropped (8, 4.17)."""
    return "—" if x is None else fmt_number(x)


def _wan(fen: int) -> str:
    return f"{wan_text(fen)}万元"


class _Writer:
    """Appends paragraphs and tables to a python-docx document in the report's styles."""

    def __init__(self, doc: Any, code: str) -> None:
        self.doc = doc
        self.code = code

    def para(self, text: str, role: str = "body") -> None:
        for line in paragraphs(text) or [""]:
            self.doc.add_paragraph(line, style=style_name(role))

    def heading(self, text: str, level: int) -> None:
        self.doc.add_paragraph(text, style=style_name(f"h{level}"))

    def narrative(self, text: str, what: str) -> None:
        self.para(text or MISSING.format(what=what).replace("{code}", self.code))

    def items(self, items: tuple[TextItem, ...], what: str, extra: list[TextItem] | None = None) -> None:
        """Numbered items ``1.标题`` with their paragraphs (三级标题 when titled)."""
        all_items = [*items, *(extra or [])]
        if not all_items:
            self.narrative("", what)
            return
        for i, item in enumerate(all_items, start=1):
            if item.title:
                self.heading(f"{i}.{item.title}", 3)
                self.para(item.text) if item.text else None
            else:
                lines = paragraphs(item.text)
                self.para(f"{i}.{lines[0]}" if lines else f"{i}.")
                for line in lines[1:]:
                    self.para(line)

    def table(
        self,
        caption: str,
        header: tuple[str, ...],
        rows: list[tuple[str, ...]],
        widths_cm: tuple[float, ...],
        merge_cols: tuple[int, ...] = (),
    ) -> None:
        """A captioned table; equal consecutive values in ``merge_cols`` are merged down (一级/二级)."""
        from docx.enum.table import WD_TABLE_ALIGNMENT
        from docx.shared import Cm, Pt

        self.doc.add_paragraph(caption, style=style_name("caption"))
        table = self.doc.add_table(rows=1 + len(rows), cols=len(header))
        table.style = self.doc.styles["Table Grid"]
        table.alignment = WD_TABLE_ALIGNMENT.CENTER
        table.autofit = False
        for i, width in enumerate(widths_cm):
            table.columns[i].width = Cm(width)
            for cell in table.columns[i].cells:
                cell.width = Cm(width)
        for i, text in enumerate(header):
            set_cell(table.cell(0, i), text, bold=True, size=WUHAO)
        for r, row in enumerate(rows, start=1):
            for c, text in enumerate(row):
                set_cell(table.cell(r, c), text, align="left" if c == 2 and len(header) > 3 else "center")
        for c in merge_cols:
            start = 1
            for r in range(2, len(rows) + 2):
                # a run ends where the value changes (or an outer column's run ends)
                if r == len(rows) + 1 or rows[r - 1][: c + 1] != rows[start - 1][: c + 1]:
                    if r - 1 > start:
                        text = rows[start - 1][c]
                        merged = table.cell(start, c).merge(table.cell(r - 1, c))
                        set_cell(merged, text)
                    start = r
        keep_rows_whole(table, header_rows=1)
        # half a line of air between the table's last border and the text after it
        gap = self.doc.add_paragraph(style=style_name("body"))
        gap.paragraph_format.line_spacing = Pt(14)


# ============================================================================ sections


def _section_1(w: _Writer, data: DocumentData) -> None:
    n = data.narrative
    w.heading("（一）项目概况", 2)
    w.heading("1.项目背景", 3)
    w.narrative(n.background, "项目背景")
    w.heading("2.主要实施内容", 3)
    w.narrative(n.content, "主要实施内容")
    w.heading("3.当年完成情况", 3)
    w.narrative(n.progress, "当年完成情况")
    w.heading("4.资金投入和使用情况", 3)
    if n.funds:
        w.para(n.funds)
    w.para(_funds_overview(data))
    w.heading("（二）项目绩效目标", 2)
    if n.goal_basis:
        w.para(n.goal_basis)
    w.para(
        f"{data.year}年总体绩效目标："
        + (n.goal_expected or MISSING.format(what="年度总体目标").replace("{code}", w.code))
    )
    w.para(_indicator_counts(data))


def _funds_overview(data: DocumentData) -> str:
    budget, arrived, spent = data.budget_fen, data.arrived_fen, data.disbursed_fen
    parts = [f"{data.year}年项目预算{_wan(budget)}"]
    if data.funds.arrivals:
        parts.append(
            f"实际到位资金{_wan(arrived)}，资金到位率{fmt_pct(Decimal(arrived) / Decimal(budget)) if budget else '—'}"
        )
    rate_budget = fmt_pct(Decimal(spent) / Decimal(budget)) if budget else "—"
    text = "，".join(parts) + f"；总支出{_wan(spent)}，预算执行率{rate_budget}（全年执行数/全年预算数）"
    if data.funds_declared:
        text += "，以上为项目申报数"
    if data.definition.execution_denominator == "arrived" and arrived and arrived != budget:
        text += f"，按实际到位资金计算为{fmt_pct(Decimal(spent) / Decimal(arrived))}"
    return text + "。"


def _levels(data: DocumentData) -> OrderedDict[str, OrderedDict[str, list[IndicatorResult]]]:
    out: OrderedDict[str, OrderedDict[str, list[IndicatorResult]]] = OrderedDict()
    for r in data.table.indicators:
        out.setdefault(r.level1, OrderedDict()).setdefault(r.level2, []).append(r)
    return out


def _indicator_counts(data: DocumentData) -> str:
    levels = _levels(data)
    each = "、".join(f"{_zb(l1)}{sum(len(v) for v in l2s.values())}个" for l1, l2s in levels.items())
    return f"围绕上述目标设定绩效指标{len(data.table.indicators)}项，其中{each}。"


def _section_2(w: _Writer, data: DocumentData) -> None:
    n = data.narrative
    start, end = data.period
    w.heading("（一）绩效评价目的、对象和范围", 2)
    w.heading("1.评价目的", 3)
    w.para(
        n.evaluation_purpose
        or "通过绩效评价，客观公正反映项目立项科学性、管理规范性、实施有效性和项目效果，总结经验，发现问题，"
        "提出改进建议，为完善项目管理和相关部门决策提供参考依据，提高财政资金使用效益。"
    )
    w.heading("2.评价对象", 3)
    w.para(f"绩效评价的对象：{data.name}。")
    w.heading("3.评价范围", 3)
    scope = f"时间范围：{cn_date(start)}至{cn_date(end)}。资金范围：项目预算{_wan(data.budget_fen)}"
    if data.funds.paid_units:
        scope += f"，拨付至{data.funds.paid_units}个项目承担单位"
    w.para(scope + "。")
    w.heading("（二）绩效评价原则、评价指标体系、评价方法、评价标准", 2)
    w.heading("1.评价原则", 3)
    for i, (name, text) in enumerate(PRINCIPLES):
        w.para(f"（{CN_SECTIONS[i]}）{name}。{text}")
    w.heading("2.评价指标体系", 3)
    levels = _levels(data)
    n2 = sum(len(v) for v in levels.values())
    total_weight = sum((r.weight for r in data.table.indicators), Decimal(0))
    w.para(
        f"本项目评价指标体系由{len(levels)}个一级指标、{n2}个二级指标和{len(data.table.indicators)}个三级指标构成，"
        f"总分值{_n(total_weight)}分，如下表所示。"
    )
    rows = [
        (r.level1, r.level2, r.name, _n(r.weight), r.target or "—", r.rule) for r in data.table.indicators
    ]
    w.table("项目支出绩效评价指标体系", ("一级指标", "二级指标", "三级指标", "分值", "指标值", "评分标准"), rows,
            (1.6, 1.8, 4.4, 1.2, 2.0, 4.4), merge_cols=(0, 1))  # fmt: skip
    w.heading("3.评价方法", 3)
    # only the methods the data shows were used: a table transcribed without a questionnaire had
    # no 公众评判法
    survey = "和公众评判法（项目承担单位满意度问卷调查）" if data.survey is not None else ""
    w.para(METHODS + f"本次评价主要采用比较法（实际完成值与年度指标值比较）{survey}。")
    w.heading("4.评价标准", 3)
    w.para(STANDARDS)
    w.heading("（三）绩效评价工作过程", 2)
    ways = [
        *(["项目承担单位在线填写满意度问卷"] if data.survey is not None else []),
        "核对项目申报的预算及执行金额" if data.funds_declared else "核对资金拨付记录",
    ]
    process = n.evaluation_process or (
        f"评价小组根据项目绩效目标，查阅有关佐证资料，通过{'、'.join(ways)}等方式"
        "采集数据，按评价指标体系逐项计分，形成评价结论。"
    )
    w.para(process)
    if data.survey is not None:
        s = data.survey
        w.para(f"本次共向{s.invited}个单位发放满意度调查问卷，回收{s.responded}份，其中有效问卷{s.valid}份。")


def _section_3(w: _Writer, data: DocumentData) -> None:
    t = data.table
    ways = "数据采集、问卷调查" if data.survey is not None else "数据采集"
    w.heading("（一）评价结论", 2)
    w.para(
        f"结合项目特点，制定符合项目实际的绩效评价指标体系及评分标准，通过{ways}等形式，对{data.year}年"
        f"{data.name}进行客观评价，最终评分结果为：总分为{_n(t.total)}分，绩效评级为“{t.grade}”。"
    )
    if t.rescaled:
        w.para(f"因部分指标不适用，适用指标原始得分{_n(t.raw_total)}分已按满分折算为{_n(t.total)}分。")
    if t.total_weight != 100 and t.percentage is not None:
        w.para(
            f"本表满分{_n(t.total_weight)}分，得分{_n(t.total)}分，折合百分制{_n(t.percentage)}分，据此评定等级。"
        )
    if t.published_total is not None:
        same = "一致" if t.published_total == t.total else f"不一致（计算总分{_n(t.total)}分）"
        w.para(f"公布的自评表总分为{_n(t.published_total)}分，与按指标计算的结果{same}。")
    subs = [s for s in t.subtotals if s.level2 is None]
    w.para(
        "其中：" + "，".join(f"{_zb(s.level1)}满分{_n(s.weight)}分，得分{_n(s.score)}分" for s in subs) + "。"
    )
    w.para("项目各部分权重和绩效分值如下表所示：")
    rows = [
        (
            r.level1,
            r.level2,
            r.name,
            _n(r.weight),
            _n(r.score),
            fmt_pct(r.rate) if r.rate is not None else "—",
        )
        for r in t.indicators
    ]
    weight = sum((r.weight for r in t.indicators if r.applicable), Decimal(0))
    w.table("项目各部分权重和绩效分值", ("一级指标", "二级指标", "三级指标", "分值", "得分", "得分率"), rows,
            (1.8, 2.0, 6.2, 1.4, 1.4, 1.6), merge_cols=(0, 1))  # fmt: skip
    rate = fmt_pct(round_rate(t.total / weight)) if weight else "—"
    w.para(f"合计：分值{_n(weight)}分，得分{_n(t.total)}分，得分率{rate}，评价等级“{t.grade}”。")
    w.heading("（二）主要绩效", 2)
    w.items(data.narrative.achievements, "主要绩效")


def _zb(level: str) -> str:
    """A level's name followed by 指标, once: 产出 → 产出指标, and a printed table's 产出指标 stays."""
    return level if level.endswith("指标") else f"{level}指标"


def _level_heading(level1: str) -> str:
    return LEVEL_HEADINGS.get(level1, f"项目{level1}情况")


def _section_4(w: _Writer, data: DocumentData) -> None:
    subtotals = {(s.level1, s.level2): s for s in data.table.subtotals}
    for i, (level1, groups) in enumerate(_levels(data).items()):
        w.heading(f"（{CN_SECTIONS[i]}）{_level_heading(level1)}", 2)
        total = subtotals.get((level1, None))
        m = sum(len(v) for v in groups.values())
        w.para(
            f"项目{_zb(level1)}由{len(groups)}个二级指标和{m}个三级指标构成，权重为{_n(total.weight if total else None)}分，"
            f"实际得分{_n(total.score if total else None)}分。"
        )
        for j, (level2, results) in enumerate(groups.items(), start=1):
            w.heading(f"{j}.{level2}", 3)
            for r in results:
                for text in _indicator_paragraphs(data, r):
                    w.para(text)
            sub = subtotals.get((level1, level2))
            if sub is not None:
                w.para(f"综上，该指标满分{_n(sub.weight)}分，得分{_n(sub.score)}分。")
        if total is not None and len(groups) > 1:
            w.para(f"综上，{level1}部分指标满分{_n(total.weight)}分，得分{_n(total.score)}分。")


def _indicator_paragraphs(data: DocumentData, r: IndicatorResult) -> list[str]:
    """What §四 says about one indicator: the computed facts, the evidence people wrote, the
    score, and the deviation analysis when the score raised one."""
    spec = data.indicator_def(r.key)
    source = spec.source if spec is not None else "entered"
    note = data.note(r.key)
    lead = _computed_lead(data, r, source)
    evidence = note.evidence
    if not evidence and spec is not None:
        evidence = _definition_evidence(spec)
    first = f"{r.name}：" + "".join(sentence(x) for x in (lead, evidence) if x)
    if not lead and not evidence:
        first += sentence(r.explanation)
    if not r.applicable:
        return [f"{r.name}：不适用。"]
    out = [first]
    tail = f"故{r.name}指标得分{_n(r.score)}分。"
    if r.override_source == "published":
        # the number the printed values give, when the published score is not it
        computed = f"；按规则计算{_n(r.computed_score)}分" if r.computed_score != r.score else ""
        tail = f"{r.name}指标得分{_n(r.score)}分，照录公布的评分（来源：{r.override_reason}{computed}）。"
    elif r.overridden:
        tail = f"经评价人调整，{r.name}指标得分{_n(r.score)}分（按规则计算{_n(r.computed_score)}分），理由：{sentence(r.override_reason)}"
    out.append(tail)
    deviation = [sentence(x.message) for x in r.warnings if x.code != "override"]
    if note.deviation:
        deviation.append(sentence(note.deviation))
    if deviation:
        out.append("偏差分析：" + "".join(deviation))
    return out


def _definition_evidence(spec: Any) -> str:
    """Evidence written in the definition: the actual's evidence, or the check points' own."""
    actual = spec.actual
    if actual is not None and actual.checklist:
        met = [p for p in actual.checklist if p.met]
        return "；".join(p.evidence or p.text for p in met)
    if actual is not None and actual.evidence:
        return actual.evidence
    return ""


def _computed_lead(data: DocumentData, r: IndicatorResult, source: str) -> str:
    """The sentence the data writes for an indicator: funds, survey and quantity facts."""
    funds = data.funds
    if source == "funds.arrival_rate":
        text = (
            f"{r.actual}。{data.year}年项目预算{_wan(data.budget_fen)}，实际到位资金{_wan(data.arrived_fen)}"
        )
        if funds.arrivals:
            text += f"，分别在{cn_dates([d for d, _ in funds.arrivals])}到位"
        return text
    if source in ("funds.execution_rate", "funds.completion_date"):
        head = f"{r.actual}。" if source == "funds.execution_rate" else ""
        text = f"{head}总预算{_wan(data.budget_fen)}"
        if funds.batches:
            months = cn_months([b.first_paid for b in funds.batches])
            text += f"，资金分{months}{cn_count(len(funds.batches))}批支付给{funds.paid_units}个单位"
        text += f"，总支出{_wan(data.disbursed_fen)}"
        if source == "funds.completion_date" and funds.batches:
            last = max(b.last_paid for b in funds.batches)
            text += f"，最后一笔于{cn_date(last)}支付，指标值为{r.target}"
        return text
    if source == "funds.control_rate":
        start, end = data.period
        spent, budget = data.disbursed_fen, data.budget_fen
        verdict = "未超支" if spent <= budget else f"超支{_wan(spent - budget)}"
        return f"截止{cn_date(end)}，项目支出{_wan(spent)}，预算{_wan(budget)}，{verdict}，项目预算控制率{r.actual}"
    if source == "survey.satisfaction" and data.survey is not None:
        s = data.survey
        levels = "，".join(f"{s.counts[level]}份为{level}" for level in s.scale if s.counts.get(level))
        comparison = ""
        if r.completion is not None:
            comparison = "，达到目标值" if r.completion >= 1 else "，未达到目标值"
        return (
            f"指标值：{r.target}，实际完成值{r.actual}{comparison}。通过问卷调查的方式进行评价，共发放问卷{s.invited}份，"
            f"回收{s.responded}份，有效调查问卷{s.valid}份，其中：{levels or '无有效答复'}"
        )
    if r.target and r.actual in ("达成", "未达成"):  # a text target met or not: no "实际完成达成"
        return f"{_zb(r.level2)}“{r.name}”的目标是{r.target}，{data.year}年度{'已' if r.actual == '达成' else ''}{r.actual}"
    if r.target and r.actual:
        return f"{_zb(r.level2)}“{r.name}”的目标值是{r.target}，{data.year}年度实际完成{r.actual}"
    return ""


def _section_5(w: _Writer, data: DocumentData) -> None:
    n = data.narrative
    w.heading("（一）主要经验及做法", 2)
    w.items(n.experience, "主要经验及做法")
    w.heading("（二）存在的问题及原因分析", 2)
    found = [sentence(x.message) for x in data.table.warnings if x.code not in ("override",)]
    extra = [TextItem(title="评分发现的偏差", text="\n".join(found))] if found else []
    w.items(n.problems, "存在的问题及原因分析", extra)


def _section_6(w: _Writer, data: DocumentData) -> None:
    w.items(data.narrative.suggestions, "有关建议")


def _section_7(w: _Writer, data: DocumentData) -> None:
    extra = []
    if data.definition.project.illustrative:
        extra.append(TextItem(text=f"本报告所用部分数据为示例数据：{data.definition.project.illustrative}"))
    extra.append(
        TextItem(
            text=f"本报告初稿由评分数据生成：评分时间{local_time(data.computed_at, data.definition.project.timezone)}，"
            f"项目定义第{data.definition_version}版；得分保留{data.table.policy.decimals}位小数。"
        )
    )
    w.items(data.narrative.other, "其他需要说明的问题", extra)


SECTIONS = (_section_1, _section_2, _section_3, _section_4, _section_5, _section_6, _section_7)


def baogao_docx(data: DocumentData) -> bytes:
    """The 评价报告 draft as DOCX bytes (A4 portrait, 公文 margins and styles)."""
    from docx import Document

    doc = Document()
    setup_document(doc)
    doc.core_properties.title = f"{data.name}{data.year}年度绩效评价报告"
    doc.core_properties.language = "zh-CN"
    w = _Writer(doc, data.definition.project.code)
    w.para(f"{data.name}\n{data.year}年度绩效评价报告", "title")
    sub = f"（{data.definition.project.evaluation}　{data.department}）" if data.department else ""
    if sub:
        p = doc.add_paragraph(sub, style=style_name("body"))
        p.alignment = 1  # centred
        p.paragraph_format.first_line_indent = 0
    for i, (title, section) in enumerate(zip(OUTLINE, SECTIONS, strict=True)):
        w.heading(f"{CN_SECTIONS[i]}、{title}", 1)
        section(w, data)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()
