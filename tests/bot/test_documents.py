"""The deliverables rendered from stored data: the 评价报告 against the reference report
(乌鲁木齐市知识产权运营服务体系建设项目 2023 年度绩效评价报告), the 自评表 against the score JSON,
and both documents as a person sees them (LibreOffice → PDF → PNG)."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from docx import Document as read_docx
from openpyxl import load_workbook

from bot.documents import DOCUMENTS, render
from bot.documents.baogao import OUTLINE
from bot.documents.data import DocumentData, load_document_data
from bot.documents.zipingbiao import mark
from config.loader import load_definition
from config.narrative import load_narrative
from scheduler.recompute import recompute
from store.db import SessionMaker, transaction
from store.narrative import save_narrative
from store.projects import load_project
from tests.conftest import EXAMPLE_PROJECT, REPO, Clock

DEMO = REPO / "config" / "projects" / "zipingbiao-demo"

# Every number of the reference report's sections 三 and 四, taken from the report, with the words
# around it that make it that number (a bare "5" would be found anywhere). Where the report is
# wrong, the correct figure is listed and the report's text is noted.
REPORT_SECTIONS_3_AND_4: list[str] = [
    # 三(一) 评价结论
    "总分为100分",
    "绩效评级为“优”",
    # 四(一) 项目决策情况
    "由3个二级指标和6个三级指标构成，权重为20分，实际得分20分",
    "立项依据充分性指标得分4分",
    "立项程序规范性指标得分4分",
    "满分8分，得分8分",
    "绩效目标合理性指标得分3分",
    "绩效指标明确性指标得分3分",  # the report says 绩效目标明确性 here, 绩效指标明确性 in its table
    "满分6分，得分6分",
    "预算编制科学性指标得分3分",
    "资金分配合理性指标得分3分",
    # 四(二) 项目过程情况
    "由2个二级指标和5个三级指标构成，权重为20分，实际得分20分",
    "资金到位率：100%",
    "2244.84万元",
    "2023年2月13日、2月14日、4月23日、6月26日、7月13日到位",
    "资金到位率指标得分5分",
    "预算执行率：100%",
    "资金分2月、4月、6月、7月四批支付给121个单位",
    "总支出2244.84万元",
    "预算执行率指标得分5分",
    "资金使用合规性指标得分3分",
    "满分13分，得分13分",
    "管理制度健全性指标得分3分",
    "制度执行有效性指标得分4分",
    "满分7分，得分7分",
    # 四(三) 项目产出情况 — the report says "由3个二级指标和10个三级指标构成": it has 4 (数量, 质量,
    # 时效, 成本; evaluation-rules §7 #3), and scores the seven 数量 rows jointly (35分)
    "由4个二级指标和10个三级指标构成，权重为49分，实际得分49分",
    "“支持建设知识产权运营中心”的目标值是≥3个，2023年度实际完成3个",
    "“支持企业专利导航项目”的目标值是≥7个，2023年度实际完成7个",
    "“建设知识产权运营服务平台”的目标值是≥1个，2023年度实际完成1个",
    "“建设知识产权服务业集聚区”的目标值是≥1个，2023年度实际完成1个",
    "“高价值专利培育中心”的目标值是≥8个，2023年度实际完成8个",
    "“高价值专利转移转化协同中心”的目标值是≥3个，2023年度实际完成3个",
    "“专利密集型产品认定项目”的目标值是≥1项，2023年度实际完成1项",
    "满分35分，得分35分",
    "指标得分6分",
    "资金使用完毕时间指标得分5分",
    "项目预算控制率100%",
    "未超支",
    "项目预算控制率指标得分3分",
    "满分49分，得分49分",
    # 四(四) 项目效益情况 and 满意度
    "由1个二级指标和1个三级指标构成，权重为6分，实际得分6分",
    "目标值是≥5%，2023年度实际完成21.7%",
    "满分6分，得分6分",
    "指标值：≥90%，实际完成值100%",
    "有效调查问卷16份",
    "12份为非常满意，4份为比较满意",
    "满分5分，得分5分",
]


async def _data(sm: SessionMaker, project_dir: Path, clock: Clock, *, narrative: bool) -> DocumentData:
    """Load a project (and, when asked, its narrative.toml), score it, and read the document data."""
    defn = load_definition(project_dir)
    async with transaction(sm) as session:
        result = await load_project(session, defn, now=clock(), by="test")
        text = load_narrative(project_dir, indicator_keys=[i.key for i in defn.indicators])
        if narrative and text is not None:
            await save_narrative(session, result.project, text, now=clock(), by="test")
    await recompute(sm, defn.project.code, now=clock(), trigger="test")
    async with transaction(sm) as session:
        return await load_document_data(session, defn.project.code)


def _docx_text(body: bytes) -> str:
    doc = read_docx(io.BytesIO(body))
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            parts.append("\t".join(c.text for c in row.cells))
    return "\n".join(parts)


async def test_the_report_states_every_number_of_the_reference_reports_sections_3_and_4_from_data(
    sessionmaker: SessionMaker, clock: Clock
) -> None:
    # Without any narrative: every figure below must come from the data, not from copied text.
    data = await _data(sessionmaker, EXAMPLE_PROJECT, clock, narrative=False)
    text = _docx_text(render("baogao.docx", data))
    missing = [needle for needle in REPORT_SECTIONS_3_AND_4 if needle not in text]
    assert missing == []
    # the score table of 三(一): 23 rows, each 分值 = 得分, 得分率 100%
    doc = read_docx(io.BytesIO(render("baogao.docx", data)))
    table = next(t for t in doc.tables if t.rows[0].cells[-1].text == "得分率")
    rows = [[c.text for c in r.cells] for r in table.rows[1:]]
    assert len(rows) == 23 and all(r[3] == r[4] and r[5] == "100%" for r in rows)


async def test_the_reports_headings_follow_the_reference_outline(
    sessionmaker: SessionMaker, clock: Clock
) -> None:
    data = await _data(sessionmaker, EXAMPLE_PROJECT, clock, narrative=True)
    doc = read_docx(io.BytesIO(render("baogao.docx", data)))
    level1 = [p.text for p in doc.paragraphs if p.style.name.startswith("一级标题")]
    assert level1 == [f"{n}、{t}" for n, t in zip("一二三四五六七", OUTLINE, strict=True)]
    assert OUTLINE[4] == "主要经验及做法、存在的问题及原因分析"
    level2 = [p.text for p in doc.paragraphs if p.style.name.startswith("二级标题")]
    assert level2[:2] == ["（一）项目概况", "（二）项目绩效目标"]
    assert "（一）项目决策情况" in level2 and "（四）项目效益情况" in level2
    assert level2[-2:] == ["（一）主要经验及做法", "（二）存在的问题及原因分析"]
    # headings use the styles named for their fonts, based on the built-in heading levels
    h1 = doc.styles["一级标题（黑体／等线）"]
    assert h1.base_style.name == "Heading 1" and h1.font.size.pt == 16
    assert doc.styles["正文（仿宋_GB2312／仿宋）"].font.size.pt == 14


async def test_the_narrative_appears_where_the_outline_puts_it(
    sessionmaker: SessionMaker, clock: Clock
) -> None:
    data = await _data(sessionmaker, EXAMPLE_PROJECT, clock, narrative=True)
    doc = read_docx(io.BytesIO(render("baogao.docx", data)))
    paragraphs = [p.text for p in doc.paragraphs]

    def after(heading: str) -> list[str]:
        return paragraphs[paragraphs.index(heading) + 1 :]

    assert after("1.项目背景")[0].startswith("根据财政部办公厅、国家知识产权局办公室")
    assert "1.政策创新" in after("（一）主要经验及做法")[:1]
    assert after("六、有关建议")[0] == "1.建立持续有效的运营服务体系财政资金支持政策"
    # per-indicator evidence, then the computed score sentence, then the deviation analysis
    at = paragraphs.index(
        next(p for p in paragraphs if p.startswith("知识产权发展水平（年有效发明专利增长率）："))
    )
    assert "知识产权市场价值有效体现" in paragraphs[at]
    assert paragraphs[at + 1] == "故知识产权发展水平（年有效发明专利增长率）指标得分6分。"
    assert paragraphs[at + 2].startswith("偏差分析：") and "434%" in paragraphs[at + 2]
    assert "年初指标值5%设定偏低" in paragraphs[at + 2]
    # the problems section ends with what the score found
    assert "1.评分发现的偏差" not in paragraphs and "4.评分发现的偏差" in paragraphs


async def test_unwritten_narrative_is_marked_to_be_filled_in_not_invented(
    sessionmaker: SessionMaker, clock: Clock
) -> None:
    data = await _data(sessionmaker, DEMO, clock, narrative=True)
    text = _docx_text(render("baogao.docx", data))
    assert text.count("（待填写：") >= 5 and "PUT /api/projects/zipingbiao-demo/narrative" in text


#: Every example project shipped (a new one is checked as soon as it lands).
EXAMPLES = sorted(p for p in (REPO / "config" / "projects").iterdir() if (p / "project.toml").is_file())


@pytest.mark.parametrize("project_dir", EXAMPLES, ids=[p.name for p in EXAMPLES])
async def test_the_zipingbiao_xlsx_numbers_equal_the_score_json(
    sessionmaker: SessionMaker, clock: Clock, project_dir: Path
) -> None:
    data = await _data(sessionmaker, project_dir, clock, narrative=True)
    ws = load_workbook(io.BytesIO(render("zipingbiao.xlsx", data))).active
    cells = {(c.row, c.column): c.value for row in ws.iter_rows() for c in row if c.value is not None}
    header = next(r for (r, col), v in cells.items() if v == "三级指标")
    by_name = {
        cells[(r, 4)]: (cells.get((r, 7)), cells.get((r, 8))) for (r, col) in cells if col == 4 and r > header
    }
    json_doc = {r.key: r for r in data.table.indicators}
    execution = data.result_for_source("funds.execution_rate")
    for r in json_doc.values():
        name = r.name + mark(r)  # （照录） for a transcribed score, （调整） for an adjusted one
        if name not in by_name:  # the 预算执行率 of a 10/50/30/10 table sits in the funds block
            assert execution is not None and r.key == execution.key
            continue
        weight, score = by_name[name]
        assert Decimal(str(weight)) == r.weight and Decimal(str(score)) == r.score
    total_row = next(r for (r, c), v in cells.items() if v == "总分")
    assert Decimal(str(cells[(total_row, 8)])) == data.table.total
    assert cells[(total_row + 1, 7)].startswith(data.table.grade)
    # funds block: 全年预算数 and 全年执行数 in 万元, exact; 分值/得分 of the execution indicator
    funds_row = next(r for (r, c), v in cells.items() if v == "年度资金总额")
    assert Decimal(str(cells[(funds_row, 5)])) == Decimal(data.budget_fen).scaleb(-6)
    assert Decimal(str(cells[(funds_row, 6)])) == Decimal(data.disbursed_fen).scaleb(-6)
    assert execution is not None and Decimal(str(cells[(funds_row, 9)])) == execution.score
    # the example projects print what jixiao score --format json says (and the published tables
    # their published totals)
    known = {
        "urumqi-ip-2023": ("100.00", "优"),
        "zipingbiao-demo": ("87", "良"),
        "chizhou-weituo-2022": ("90", "优"),
        "yongde-yingyang-2022": ("96", "优"),
    }
    expected = known.get(data.definition.project.code)
    assert expected is None or (str(data.table.total), data.table.grade) == expected


async def test_the_zipingbiao_has_the_printed_forms_merged_cells(
    sessionmaker: SessionMaker, clock: Clock
) -> None:
    data = await _data(sessionmaker, EXAMPLE_PROJECT, clock, narrative=True)
    ws = load_workbook(io.BytesIO(render("zipingbiao.xlsx", data))).active
    merged = {str(r) for r in ws.merged_cells.ranges}
    assert {"A1:I1", "B3:I3", "A5:A9", "A10:A11", "B11:E11", "F11:I11"} <= merged
    # 一级 决策 spans its six rows, 二级 项目立项 its two
    header = next(c.row for c in ws["D"] if c.value == "三级指标")
    assert f"B{header + 1}:B{header + 6}" in merged and f"C{header + 1}:C{header + 2}" in merged
    assert ws[f"I{header}"].value == "偏差原因分析及改进措施"
    # the deviation column joins the score's warning with what people wrote
    row = next(c.row for c in ws["D"] if c.value == "知识产权发展水平（年有效发明专利增长率）")
    note = ws[f"I{row}"].value
    assert "434%" in note and "年初指标值5%设定偏低" in note
    # the DOCX shows the same grid
    doc = read_docx(io.BytesIO(render("zipingbiao.docx", data)))
    table = doc.tables[0]
    assert table.cell(0, 0).text == "项目名称" and table.cell(0, 8).text == data.name
    assert table.cell(3, 7).text == "100%"


def _soffice() -> str:
    tool = shutil.which("soffice")
    if tool is None or shutil.which("pdftoppm") is None:
        pytest.skip("LibreOffice (soffice) and pdftoppm are needed to render documents")
    return tool


def _pdf_pages(soffice: str, src: Path, profile: Path) -> tuple[Path, list[Path], str]:
    """LibreOffice headless → PDF, pdftoppm → one PNG per page, pdftotext → the text."""
    subprocess.run(
        [soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", "pdf",
         "--outdir", str(src.parent), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    pdf = src.with_suffix(".pdf")
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", str(pdf), str(src.parent / "page")], check=True, timeout=300
    )
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return pdf, sorted(src.parent.glob("page-*.png")), text


async def test_libreoffice_converts_both_documents_to_pdf_pages(
    sessionmaker: SessionMaker, clock: Clock, tmp_path: Path
) -> None:
    soffice = _soffice()
    data = await _data(sessionmaker, EXAMPLE_PROJECT, clock, narrative=True)
    for name in DOCUMENTS:
        src = tmp_path / name.replace(".", "_") / name
        src.parent.mkdir()
        src.write_bytes(render(name, data))
        pdf, pages, text = await asyncio.to_thread(_pdf_pages, soffice, src, tmp_path / "lo-profile")
        assert pdf.stat().st_size > 10_000 and pages
        # the text survives the conversion (CJK fonts found and embedded)
        words = (
            ("项目支出绩效自评表", "2244.84")
            if name.startswith("zipingbiao")
            else ("四、绩效评价指标分析", "综上")
        )
        assert all(w in text for w in words)


async def test_a_published_table_is_printed_with_its_declared_funds_total_and_transcribed_rows(
    sessionmaker: SessionMaker, clock: Clock, tmp_path: Path
) -> None:
    from tests.config.test_printed_tables import PRINTED

    (tmp_path / "project.toml").write_text(PRINTED, encoding="utf-8")
    data = await _data(sessionmaker, tmp_path, clock, narrative=False)
    assert data.funds_declared
    ws = load_workbook(io.BytesIO(render("zipingbiao.xlsx", data))).active
    cells = {(c.row, c.column): c.value for row in ws.iter_rows() for c in row if c.value is not None}
    funds_row = next(r for (r, c), v in cells.items() if v == "年度资金总额")
    # 年初预算数 100, 全年预算数 120, 全年执行数 114 (万元, declared, no ledger); 执行率 95%
    assert [Decimal(str(cells[(funds_row, c)])) for c in (4, 5, 6, 7, 8, 9)] == [
        Decimal("100"), Decimal("120"), Decimal("114"), Decimal("10"), Decimal("0.95"), Decimal("9"),
    ]  # fmt: skip
    assert (
        cells[(funds_row + 1, 2)] == "其中：当年财政拨款" and Decimal(str(cells[(funds_row + 1, 6)])) == 114
    )
    names = [v for (r, c), v in sorted(cells.items()) if c == 4 and r > funds_row + 5]
    assert "预算执行率" not in names and "家长满意度（照录）" in names  # 预算执行 sits in the funds block
    total_row = next(r for (r, c), v in cells.items() if v == "总分")
    assert (cells[(total_row, 7)], cells[(total_row, 8)]) == (110, 104)
    assert cells[(total_row + 1, 7)] == f"{data.table.grade}（折合百分制 95 分）"
    notes = cells[(total_row + 2, 2)]
    assert "项目申报的自评表金额" in notes and "公布的总分：94 分" in notes
    text = _docx_text(render("baogao.docx", data))
    assert "公布的自评表总分为94分，与按指标计算的结果不一致（计算总分104分）" in text
    assert "本表满分110分，得分104分，折合百分制95分" in text
    assert "家长满意度指标得分9分，照录公布的评分" in text


async def test_a_row_printed_in_the_funds_block_keeps_its_printed_name_and_its_warnings(
    sessionmaker: SessionMaker, clock: Clock
) -> None:
    project = REPO / "config" / "projects" / "chizhou-weituo-2022"
    if not project.is_dir():
        pytest.skip("the chizhou example project is not in this tree")
    data = await _data(sessionmaker, project, clock, narrative=False)
    ws = load_workbook(io.BytesIO(render("zipingbiao.xlsx", data))).active
    texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert "其中：本年财政拨款" in texts  # as the table prints it, not the template's 当年
    notes = next(t for t in texts if t.startswith("评分依据"))
    assert "预算执行率：公布的得分0分与计算得分10分不一致。" in notes  # the row is not among the indicators


@pytest.mark.parametrize("project_dir", EXAMPLES, ids=[p.name for p in EXAMPLES])
async def test_the_report_says_only_what_the_project_did(
    sessionmaker: SessionMaker, clock: Clock, project_dir: Path
) -> None:
    """A printed table's level names already end in 指标 (产出指标): never "产出指标指标"; a project
    without a questionnaire is not said to have used one (公众评判法, 问卷)."""
    data = await _data(sessionmaker, project_dir, clock, narrative=True)
    text = _docx_text(render("baogao.docx", data))
    assert "指标指标" not in text
    if data.survey is None:
        # (公众评判法 is still named among the 10号文's methods, not as one this evaluation used)
        assert "问卷" not in text and "公众评判法（" not in text
    else:
        assert "公众评判法（项目承担单位满意度问卷调查）" in text


async def test_a_published_score_the_printed_values_do_not_give_is_reported_with_both_numbers(
    sessionmaker: SessionMaker, clock: Clock
) -> None:
    """永德 2022: 资金到位及时率 printed 100 % of ≧100 % and 7 of 10 points — the report copies the
    7 and says what the printed values give; a text target met reads 已达成."""
    data = await _data(
        sessionmaker, REPO / "config" / "projects" / "yongde-yingyang-2022", clock, narrative=True
    )
    text = _docx_text(render("baogao.docx", data))
    assert "资金到位及时率指标得分7分，照录公布的评分（来源：" in text and "；按规则计算10分）" in text
    assert "经济效益指标“减轻贫困学生家庭经济负担”的目标是有效，2022年度已达成" in text
    assert "总分为96分，绩效评级为“优”" in text and "公布的自评表总分为96分，与按指标计算的结果一致" in text
