"""项目支出绩效自评表 (财预〔2020〕10号 附件1) as XLSX (openpyxl) and DOCX (python-docx).

Both formats draw the same grid (:func:`form_grid`): nine columns, the merged cells of the
printed form, in this order —

- title and year; 项目名称; 主管部门 / 实施单位;
- 项目资金（万元）: 年初预算数 / 全年预算数 / 全年执行数 / 分值 / 执行率 / 得分, with the rows
  年度资金总额, 其中：当年财政拨款, 上年结转资金, 其他资金 (``bot.documents.funds``);
- 年度总体目标: 预期目标 beside 实际完成情况;
- 绩效指标: 一级 / 二级 / 三级 / 年度指标值 / 实际完成值 / 分值 / 得分 / 偏差原因分析及改进措施,
  一级 and 二级 merged down over their rows;
- 总分, 自评等级, and 说明 (where the numbers come from, rounding, notes on the funds block).

Amounts are 万元 exact from fen (``scoring.money.wan``); scores, rates and totals are the stored
score result's. XLSX cells hold numbers as exact decimals (``Decimal`` written as text in the
file), formatted for display; the 偏差 column joins the score's warnings for the row with the
deviation analysis people wrote (``narrative.toml`` / the API).

A 预算执行率 indicator that forms a 一级 of its own (the 10/50/30/10 template) is shown in the
funds block only, as on the printed form; one that sits inside another 一级 (a 过程/资金管理 row)
stays in the indicator rows and the funds block repeats its 分值/得分 with a note, so the 总分 is
always the score result's total.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from bot.documents.data import DocumentData
from bot.documents.funds import FundsRow, funds_block
from bot.documents.text import local_time, sentence
from scoring.model import IndicatorResult
from scoring.money import wan, wan_text
from scoring.report import pct, points

COLUMNS = 9
TITLE = "项目支出绩效自评表"
INDICATOR_HEADER = (
    "一级指标",
    "二级指标",
    "三级指标",
    "年度指标值",
    "实际完成值",
    "分值",
    "得分",
    "偏差原因分析及改进措施",
)
NOTES_LABEL = "说明"
FUNDS_HEADER = ("年初预算数", "全年预算数", "全年执行数", "分值", "执行率", "得分")

Kind = Literal["title", "subtitle", "label", "text", "long", "money", "points", "pct", "center"]


@dataclass(frozen=True)
class Cell:
    """One (possibly merged) cell of the form. ``value`` is the exact number for numeric kinds
    (万元, points, a rate as a fraction); ``text`` is what is printed."""

    row: int
    col: int
    text: str
    kind: Kind = "text"
    rowspan: int = 1
    colspan: int = 1
    value: Decimal | None = None


def mark(r: IndicatorResult) -> str:
    """The row's mark when its score is not the rule's: 照录 (copied from a published table) or 调整."""
    if r.override_source == "published":
        return "（照录）"
    return "（调整）" if r.overridden else ""


def _money(fen: int | None) -> tuple[str, Decimal | None]:
    return ("", None) if fen is None else (wan_text(fen), wan(fen))


def _deviation(data: DocumentData, r: IndicatorResult) -> str:
    """偏差原因分析及改进措施: the score's warnings for the row, then what people wrote."""
    parts = [sentence(w.message) for w in r.warnings]
    written = data.note(r.key).deviation
    if written:
        parts.append(written)
    return "\n".join(parts)


def _standalone_execution(data: DocumentData) -> str | None:
    """The key of a 预算执行率 indicator that is alone in its 一级 (shown in the funds block only)."""
    result = data.result_for_source("funds.execution_rate")
    if result is None:
        return None
    siblings = [r for r in data.table.indicators if r.level1 == result.level1]
    return result.key if len(siblings) == 1 else None


def form_grid(data: DocumentData) -> list[Cell]:
    """The form's cells, top to bottom (see the module docstring for the layout)."""
    cells: list[Cell] = []
    add = cells.append
    add(Cell(0, 0, TITLE, "title", colspan=COLUMNS))
    add(Cell(1, 0, f"（{data.year}年度）", "subtitle", colspan=COLUMNS))
    add(Cell(2, 0, "项目名称", "label"))
    add(Cell(2, 1, data.name, "text", colspan=8))
    add(Cell(3, 0, "主管部门", "label"))
    add(Cell(3, 1, data.department, "text", colspan=3))
    add(Cell(3, 4, "实施单位", "label", colspan=2))
    add(Cell(3, 6, data.implementer, "text", colspan=3))

    block = funds_block(data)
    add(Cell(4, 0, "项目资金\n（万元）", "label", rowspan=5))
    add(Cell(4, 1, "", "label", colspan=2))
    for i, head in enumerate(FUNDS_HEADER):
        add(Cell(4, 3 + i, head, "label"))
    for i, row in enumerate((block.total, *block.parts)):
        r = 5 + i
        label = ("其中：" if i == 1 else "") + row.label
        add(Cell(r, 1, label, "label" if i == 0 else "center", colspan=2))
        add_funds_row(cells, r, row, total=i == 0, block_weight=block.weight, block_score=block.score)
        if i == 0:
            rate = block.rate
            add(Cell(r, 7, pct(rate) if rate is not None else "", "pct", value=rate))

    goal_row = 9
    add(Cell(goal_row, 0, "年度\n总体目标", "label", rowspan=2))
    add(Cell(goal_row, 1, "预期目标", "label", colspan=4))
    add(Cell(goal_row, 5, "实际完成情况", "label", colspan=4))
    add(Cell(goal_row + 1, 1, data.narrative.goal_expected, "long", colspan=4))
    add(Cell(goal_row + 1, 5, data.narrative.goal_actual, "long", colspan=4))

    head = goal_row + 2
    skip = _standalone_execution(data)
    rows = [r for r in data.table.indicators if r.key != skip]
    add(Cell(head, 0, "绩\n效\n指\n标", "label", rowspan=1 + len(rows)))
    for i, text in enumerate(INDICATOR_HEADER):
        add(Cell(head, 1 + i, text, "label"))
    first = head + 1
    for i, r in enumerate(rows):
        at = first + i
        if i == 0 or rows[i - 1].level1 != r.level1:
            span = next((j for j in range(i, len(rows)) if rows[j].level1 != r.level1), len(rows)) - i
            add(Cell(at, 1, r.level1, "center", rowspan=span))
        if i == 0 or (rows[i - 1].level1, rows[i - 1].level2) != (r.level1, r.level2):
            span = (
                next(
                    (
                        j
                        for j in range(i, len(rows))
                        if (rows[j].level1, rows[j].level2) != (r.level1, r.level2)
                    ),
                    len(rows),
                )
                - i
            )
            add(Cell(at, 2, r.level2, "center", rowspan=span))
        name = r.name + mark(r) + ("（不适用）" if not r.applicable else "")
        add(Cell(at, 3, name, "text"))
        add(Cell(at, 4, r.target, "center"))
        add(Cell(at, 5, r.actual, "center"))
        add(Cell(at, 6, points(r.weight), "points", value=r.weight))
        add(Cell(at, 7, points(r.score), "points", value=r.score))
        add(Cell(at, 8, _deviation(data, r), "long"))

    end = first + len(rows)
    weight = sum((r.weight for r in data.table.indicators if r.applicable), Decimal(0))
    add(Cell(end, 0, "总分", "label", colspan=6))
    add(Cell(end, 6, points(weight), "points", value=weight))
    add(Cell(end, 7, points(data.table.total), "points", value=data.table.total))
    add(Cell(end, 8, "", "text"))
    add(Cell(end + 1, 0, "自评等级", "label", colspan=6))
    grade = data.table.grade
    if data.table.total_weight != 100 and data.table.percentage is not None:
        grade += f"（折合百分制 {points(data.table.percentage)} 分）"
    add(Cell(end + 1, 6, grade, "label", colspan=3))
    add(Cell(end + 2, 0, NOTES_LABEL, "label"))
    add(Cell(end + 2, 1, "\n".join(_notes(data, block.notes, skip)), "long", colspan=8))
    return cells


def add_funds_row(
    cells: list[Cell],
    r: int,
    row: FundsRow,
    *,
    total: bool,
    block_weight: Decimal | None,
    block_score: Decimal | None,
) -> None:
    """年初预算数 / 全年预算数 / 全年执行数 of one funds row; 分值 and 得分 on the total row only
    (the form prints — on the 其中 rows)."""
    for col, fen in ((3, row.initial_fen), (4, row.budget_fen), (5, row.executed_fen)):
        text, value = _money(fen)
        cells.append(Cell(r, col, text, "money", value=value))
    if total:
        cells.append(
            Cell(r, 6, points(block_weight) if block_weight is not None else "", "points", value=block_weight)
        )
        cells.append(
            Cell(r, 8, points(block_score) if block_score is not None else "", "points", value=block_score)
        )
    else:
        cells.append(Cell(r, 6, "—", "center"))
        if row.budget_fen and row.executed_fen is not None:
            rate = Decimal(row.executed_fen) / Decimal(row.budget_fen)
            cells.append(Cell(r, 7, pct(rate), "pct", value=rate))
        else:
            cells.append(Cell(r, 7, "", "center"))
        cells.append(Cell(r, 8, "—", "center"))


def _notes(data: DocumentData, funds_notes: tuple[str, ...], skip: str | None) -> list[str]:
    policy = data.table.policy
    mode = "四舍五入" if policy.rounding == "half_up" else "向下取整"
    out = [
        f"评分依据：{local_time(data.computed_at, data.definition.project.timezone)}计算的评分结果（项目定义第 {data.definition_version} 版）；"
        f"得分保留 {policy.decimals} 位小数，{mode}；金额单位万元，按分精确折算",
        *funds_notes,
    ]
    if skip is None and data.result_for_source("funds.execution_rate") is not None:
        out.append("预算执行率已作为绩效指标计入下表，资金栏的分值、得分仅为列示，不重复计入总分")
    table = data.table
    if table.rescaled:
        out.append(
            f"含不适用指标：原始得分 {points(table.raw_total)} 分已按满分折算为 {points(table.total)} 分"
        )
    if table.published_total is not None:
        out.append(f"公布的总分：{points(table.published_total)} 分")
    out.extend(sentence(w.message) for w in table.warnings if w.indicator is None and w.code != "rescaled")
    if skip is not None:  # the 预算执行率 row is printed in the funds block: its warnings go here
        out.extend(sentence(w.message) for w in table.warnings if w.indicator == skip)
    if data.definition.project.illustrative:
        out.append(f"示例数据：{data.definition.project.illustrative}")
    return out


# ============================================================================ XLSX

#: Column widths (characters) of the nine columns.
XLSX_WIDTHS = (7, 8, 9, 20, 10, 11, 7, 8, 24)


def zipingbiao_xlsx(data: DocumentData) -> bytes:
    """The 自评表 as an XLSX workbook (one sheet, A4 portrait, fit to one page wide)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = "自评表"
    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    decimals = data.table.policy.decimals
    points_format = "0" if decimals == 0 else "0." + "0" * decimals
    body = Font(name="仿宋", size=10.5)
    bold = Font(name="黑体", size=10.5)
    grid = form_grid(data)
    for cell in grid:
        row, col = cell.row + 1, cell.col + 1
        target = ws.cell(row=row, column=col)
        if cell.kind in ("money", "points", "pct") and cell.value is not None:
            target.value = cell.value
            target.number_format = {"money": "0.00####", "points": points_format, "pct": "0.00%"}[cell.kind]
        else:
            target.value = cell.text or None
        wrap = cell.kind not in ("title", "subtitle")
        horizontal = "left" if cell.kind in ("text", "long") else "center"
        if cell.kind in ("money", "points", "pct"):
            horizontal = "right" if cell.value is not None else "center"
        target.alignment = Alignment(horizontal=horizontal, vertical="center", wrap_text=wrap)
        target.font = {
            "title": Font(name="方正小标宋简体", size=18),
            "subtitle": Font(name="楷体", size=12),
            "label": bold,
        }.get(cell.kind, body)
        if cell.rowspan > 1 or cell.colspan > 1:
            ws.merge_cells(
                start_row=row,
                start_column=col,
                end_row=row + cell.rowspan - 1,
                end_column=col + cell.colspan - 1,
            )
        if cell.kind not in ("title", "subtitle"):
            for r in range(row, row + cell.rowspan):
                for c in range(col, col + cell.colspan):
                    ws.cell(row=r, column=c).border = border
    for i, width in enumerate(XLSX_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.row_dimensions[1].height = 30
    # Rows with wrapped text get room for it (Excel does not grow merged rows by itself).
    for cell in grid:
        if cell.kind not in ("title", "subtitle") and cell.text:
            width = sum(XLSX_WIDTHS[cell.col : cell.col + cell.colspan])
            lines = sum(
                max(1, -(-_display_width(line) // max(width - 2, 1))) for line in cell.text.split("\n")
            )
            height = max(15.0, 14.0 * lines / cell.rowspan)
            current = ws.row_dimensions[cell.row + 1].height or 15.0
            ws.row_dimensions[cell.row + 1].height = max(current, height)
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    # printed over several pages, each page repeats the indicator rows' column headings and is
    # numbered (Excel's 打印标题 and page footer)
    head = next(c.row for c in grid if c.text == INDICATOR_HEADER[0]) + 1
    ws.print_title_rows = f"{head}:{head}"
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"
    ws.oddFooter.center.size = 10
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _display_width(text: str) -> int:
    """Width in Latin characters (CJK characters count 2)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


# ============================================================================ DOCX

#: Column widths (cm) of the nine columns on A4 portrait with 1.8 cm side margins (17.4 cm); the
#: amount columns fit 8 digits of 万元 in 小五 (387664.62 元 = 38.766462 万元) on one line.
DOCX_WIDTHS_CM = (1.9, 1.3, 1.5, 2.8, 1.9, 1.9, 1.2, 1.3, 3.6)


def zipingbiao_docx(data: DocumentData) -> bytes:
    """The 自评表 as a DOCX table (A4 portrait), the same grid as the XLSX."""
    from docx import Document
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
    from docx.shared import Pt

    from bot.documents.docx_style import XIAOWU, keep_rows_whole, setup_document, style_name, table_run

    doc = Document()
    setup_document(doc, margins_cm=(2.0, 2.0, 1.8, 1.8))
    grid = form_grid(data)
    title = next(c for c in grid if c.kind == "title")
    subtitle = next(c for c in grid if c.kind == "subtitle")
    p = doc.add_paragraph(title.text, style=style_name("title"))
    p.paragraph_format.space_after = Pt(0)
    p = doc.add_paragraph(subtitle.text, style=style_name("body"))
    p.alignment = WD_TABLE_ALIGNMENT.CENTER
    p.paragraph_format.first_line_indent = Pt(0)
    p.paragraph_format.space_after = Pt(6)

    body_cells = [c for c in grid if c.kind not in ("title", "subtitle")]
    # Two tables, split where the indicator rows' column headings start: Word and LibreOffice
    # repeat only a table's first rows on each page, and on a long form (the reference project's
    # 23 indicators take two pages) the headings must repeat. A 1-pt paragraph keeps them apart
    # (consecutive tables would be joined into one by Word).
    head = next(c.row for c in body_cells if c.text == INDICATOR_HEADER[0])
    # The 说明 row (where the numbers come from, warnings) can run to half a page: kept whole it
    # would be pushed onto a page of its own, so the DOCX prints it under the form, as printed
    # forms carry their 填表说明.
    notes_row = next(c.row for c in body_cells if c.col == 0 and c.text == NOTES_LABEL)
    notes = next(c.text for c in body_cells if c.row == notes_row and c.col == 1)
    # The 绩效指标 label spans the heading row and every indicator row on the printed form; in a
    # heading row repeated on each page that span would be cut mid-label, so the DOCX keeps the
    # label in the heading row and leaves the column blank beside the indicator rows.
    label = next(c for c in body_cells if c.row == head and c.col == 0)
    below = [replace(label, row=head + 1, text="", rowspan=label.rowspan - 1)] if label.rowspan > 1 else []
    body_cells = [c for c in body_cells if c is not label] + [
        replace(label, text="绩效\n指标", rowspan=1),
        *below,
    ]
    parts = (
        [c for c in body_cells if c.row < head],
        [c for c in body_cells if head <= c.row < notes_row],
    )
    for i, cells in enumerate(parts):
        if i:
            spacer = doc.add_paragraph()
            spacer.paragraph_format.first_line_indent = Pt(0)
            spacer.paragraph_format.space_before = spacer.paragraph_format.space_after = Pt(0)
            spacer.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY
            spacer.paragraph_format.line_spacing = Pt(1)
        table = _docx_table(doc, cells)
        keep_rows_whole(table, header_rows=i)  # the first part has no heading row to repeat
    for i, line in enumerate([f"{NOTES_LABEL}：", *notes.split("\n")] if notes else []):
        p = doc.add_paragraph(style=style_name("body"))
        pf = p.paragraph_format
        pf.first_line_indent = Pt(0)
        pf.line_spacing_rule = WD_LINE_SPACING.SINGLE
        pf.space_before = Pt(4) if i == 0 else Pt(0)
        pf.alignment = WD_ALIGN_PARAGRAPH.LEFT
        table_run(p, line, size=XIAOWU, bold=i == 0)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _docx_table(doc: Any, cells: list[Cell]) -> Any:
    """One DOCX table drawing ``cells`` (rows renumbered from the first), merged as printed."""
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.shared import Cm

    from bot.documents.docx_style import H1_FONT, WUHAO, XIAOWU, set_cell

    offset = min(c.row for c in cells)
    rows = max(c.row + c.rowspan for c in cells) - offset
    table = doc.add_table(rows=rows, cols=COLUMNS)
    table.style = doc.styles["Table Grid"]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    for i, width in enumerate(DOCX_WIDTHS_CM):
        table.columns[i].width = Cm(width)
        for cell in table.columns[i].cells:
            cell.width = Cm(width)
    for c in cells:
        r = c.row - offset
        target = table.cell(r, c.col)
        if c.rowspan > 1 or c.colspan > 1:
            target = target.merge(table.cell(r + c.rowspan - 1, c.col + c.colspan - 1))
        align = {"text": "left", "long": "left"}.get(c.kind, "center")
        if c.kind in ("money", "points", "pct") and c.value is not None:
            align = "right" if c.kind == "money" else "center"
        # long texts and numbers in 小五: a score such as 100.00 fits its narrow column
        size = XIAOWU if c.kind in ("long", "money", "points", "pct") else WUHAO
        if c.kind == "label":
            set_cell(target, c.text, align=align, size=size, font=H1_FONT[0])
        else:
            set_cell(target, c.text, align=align, size=size)
    return table
