"""Chinese government document styling for python-docx (党政机关公文格式 GB/T 9704 as reports use it).

Levels and fonts (East Asian font first, then the fallback a reader's machine substitutes when
the first is not installed — both are written into the style's name so whoever edits the draft
sees what was meant):

=========  ==================  ===========  ============
level      style                font        size
=========  ==================  ===========  ============
title      公文标题 (Normal)    方正小标宋简体 → 宋体   二号 22 pt, centred
一、       一级标题 (Heading 1) 黑体 → 等线             三号 16 pt
（一）     二级标题 (Heading 2) 楷体_GB2312 → 楷体      三号 16 pt
1.         三级标题 (Heading 3) 仿宋_GB2312 → 仿宋, bold 四号 14 pt
body       正文 (Normal)        仿宋_GB2312 → 仿宋      四号 14 pt, first line indented 2 characters
tables     (runs)               仿宋_GB2312 → 仿宋      五号 10.5 pt
=========  ==================  ===========  ============

Latin letters and digits use Times New Roman, as 公文 do. Each style is based on the built-in one
in brackets, so headings keep their outline levels (Word's navigation pane, a table of contents).

python-docx sets only the Latin font name; the East Asian one is the ``w:eastAsia`` attribute of
``w:rFonts``, written by :func:`east_asian_font`. python-docx has no API either for a few more
properties Chinese documents need; each is set in one small function here through python-docx's
oxml element API (``OxmlElement``, ``qn``): each font's fallback in the font table
(:func:`declare_font_fallbacks`), the East Asian language (:func:`setup_document`),
table rows kept whole with a repeating header row (:func:`keep_rows_whole`) and the page number
field in the footer (:func:`page_number_footer`).

The documents' East Asian language is zh-CN (the template says en-US): Word and LibreOffice choose
Chinese line breaking and, where a named font is missing, a Chinese (not Japanese) substitute;
LibreOffice with fonts-noto-cjk renders them in Noto CJK SC.
"""

from __future__ import annotations

from typing import Any

from docx.document import Document as DocxDocument
from docx.enum.section import WD_ORIENT
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor

LATIN = "Times New Roman"
#: (primary East Asian font, fallback) per level.
TITLE_FONT = ("方正小标宋简体", "宋体")
H1_FONT = ("黑体", "等线")
H2_FONT = ("楷体_GB2312", "楷体")
H3_FONT = ("仿宋_GB2312", "仿宋")
BODY_FONT = ("仿宋_GB2312", "仿宋")
#: Page numbers: 宋体 (GB/T 9704).
PAGE_FONT = "宋体"

#: 字号 in points.
ERHAO, SANHAO, SIHAO, XIAOSI, WUHAO, XIAOWU = Pt(22), Pt(16), Pt(14), Pt(12), Pt(10.5), Pt(9)


def east_asian_font(element: Any, name: str) -> None:
    """Set the East Asian font (``w:rFonts/@w:eastAsia``) of a style's or a run's properties, and
    drop the template's theme-font attributes, which would otherwise win over named fonts.

    ``element`` is a ``CT_Style`` or ``CT_R`` (``style.element``, ``run._r``)."""
    rfonts = element.get_or_add_rPr().get_or_add_rFonts()
    for theme in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        rfonts.attrib.pop(qn(theme), None)
    rfonts.set(qn("w:eastAsia"), name)


def style_name(role: str) -> str:
    """The document style for ``role`` (title, h1, h2, h3, body, caption): its name carries the
    font and its fallback, e.g. ``一级标题（黑体／等线）``."""
    label, fonts, _, _, _ = _ROLES[role]
    return f"{label}（{fonts[0]}／{fonts[1]}）"


#: role → (label, fonts, size, bold, built-in style it is based on).
_ROLES: dict[str, tuple[str, tuple[str, str], Pt, bool, str]] = {
    "title": ("公文标题", TITLE_FONT, ERHAO, False, "Normal"),
    "h1": ("一级标题", H1_FONT, SANHAO, False, "Heading 1"),
    "h2": ("二级标题", H2_FONT, SANHAO, False, "Heading 2"),
    "h3": ("三级标题", H3_FONT, SIHAO, True, "Heading 3"),
    "body": ("正文", BODY_FONT, SIHAO, False, "Normal"),
    "caption": ("表题", H1_FONT, SIHAO, False, "Normal"),
}


def setup_document(
    doc: DocxDocument,
    *,
    landscape: bool = False,
    margins_cm: tuple[float, float, float, float] = (3.7, 3.5, 2.8, 2.6),
) -> None:
    """Page (A4; margins top, bottom, left, right in cm), the page number in the footer, the
    East Asian language, and one style per role (module table).

    Each style is based on the built-in one (so headings keep their outline level for Word's
    navigation pane and a table of contents) and named for its font and fallback."""
    section = doc.sections[0]
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    if landscape:
        section.orientation = WD_ORIENT.LANDSCAPE
        section.page_width, section.page_height = Cm(29.7), Cm(21)
    top, bottom, left, right = margins_cm
    section.top_margin, section.bottom_margin = Cm(top), Cm(bottom)
    section.left_margin, section.right_margin = Cm(left), Cm(right)
    page_number_footer(section)

    _east_asian_language(doc, "zh-CN")
    declare_font_fallbacks(doc)
    normal = doc.styles["Normal"]
    normal.font.name = LATIN
    normal.font.size = SIHAO
    east_asian_font(normal.element, BODY_FONT[0])
    for role, (_, fonts, size, bold, base) in _ROLES.items():
        style = doc.styles.add_style(style_name(role), WD_STYLE_TYPE.PARAGRAPH)
        style.base_style = doc.styles[base]
        style.quick_style = True
        font = style.font
        font.name = LATIN
        font.size = size
        font.bold = bold
        font.italic = False
        font.color.rgb = RGBColor(0, 0, 0)
        east_asian_font(style.element, fonts[0])
        pf = style.paragraph_format
        pf.space_before = Pt(0)
        pf.space_after = Pt(0)
        pf.line_spacing_rule = WD_LINE_SPACING.EXACTLY
        pf.line_spacing = Pt(28)
        pf.first_line_indent = Pt(28)  # two characters of 四号
        pf.widow_control = True
        if role in ("h1", "h2", "h3", "caption"):
            pf.keep_with_next = True
        if role == "title":
            pf.alignment = WD_ALIGN_PARAGRAPH.CENTER
            pf.first_line_indent = Pt(0)
            pf.line_spacing = Pt(36)
            pf.space_after = Pt(18)
        if role == "caption":
            pf.alignment = WD_ALIGN_PARAGRAPH.CENTER
            pf.first_line_indent = Pt(0)
            pf.space_before = Pt(6)
            pf.space_after = Pt(4)
        if role == "body":
            pf.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY


#: Where a named font is missing (stock Windows has 仿宋/楷体 but not the *_GB2312 fonts, and no
#: 方正小标宋), the font table tells Word and WPS what to use instead (ECMA-376 §17.8.3.1 altName).
FALLBACKS = (TITLE_FONT, H1_FONT, H2_FONT, BODY_FONT)


def declare_font_fallbacks(doc: DocxDocument) -> None:
    """Name each style font's fallback in the document's font table (``word/fontTable.xml``):
    ``<w:font w:name="仿宋_GB2312"><w:altName w:val="仿宋"/><w:charset w:val="86"/>…``.

    python-docx loads the font table as an opaque part (no API); it is parsed and written back
    with python-docx's own XML functions, adding only the fonts that are not declared yet."""
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.oxml import serialize_part_xml
    from docx.oxml.parser import parse_xml

    part = doc.part.part_related_by(RT.FONT_TABLE)
    table = parse_xml(part.blob)
    declared = {f.get(qn("w:name")) for f in table.findall(qn("w:font"))}
    for name, fallback in dict(FALLBACKS).items():
        if name in declared:
            continue
        font = OxmlElement("w:font", {qn("w:name"): name})
        for tag, value in (("altName", fallback), ("charset", "86"), ("family", "auto")):  # 86: GB2312
            font.append(OxmlElement(f"w:{tag}", {qn("w:val"): value}))
        table.append(font)
    part._blob = serialize_part_xml(table)


def _east_asian_language(doc: DocxDocument, tag: str) -> None:
    """Set the document default East Asian language (``w:docDefaults//w:lang/@w:eastAsia``)."""
    defaults = doc.styles.element.find(qn("w:docDefaults"))
    if defaults is None:
        defaults = OxmlElement("w:docDefaults")
        doc.styles.element.insert(0, defaults)
    rpr_default = defaults.find(qn("w:rPrDefault"))
    if rpr_default is None:
        rpr_default = OxmlElement("w:rPrDefault")
        defaults.insert(0, rpr_default)
    rpr = rpr_default.find(qn("w:rPr"))
    if rpr is None:
        rpr = OxmlElement("w:rPr")
        rpr_default.append(rpr)
    lang = rpr.find(qn("w:lang"))
    if lang is None:
        lang = OxmlElement("w:lang")
        rpr.append(lang)
    lang.set(qn("w:eastAsia"), tag)


#: Children of ``w:trPr`` in schema order (ECMA-376 CT_TrPr), so added ones land where Word expects.
_TRPR_ORDER = ("cnfStyle", "divId", "gridBefore", "gridAfter", "wBefore", "wAfter", "cantSplit",
               "trHeight", "tblHeader", "tblCellSpacing", "jc", "hidden", "ins", "del", "trPrChange")  # fmt: skip


def keep_rows_whole(table: Any, header_rows: int = 1) -> None:
    """No row of ``table`` splits across a page (``w:cantSplit`` on every row), and its first
    ``header_rows`` rows repeat at the top of every page the table continues on (``w:tblHeader``).

    python-docx has no API for these two row properties; setting them on the row's ``w:trPr``
    with python-docx's oxml element API is the usual way (Word: 表格属性 → 行 → 允许跨页断行 off,
    在各页顶端以标题行形式重复出现 on). Word repeats only rows at the very start of a table, so a
    form whose column headings sit lower down is drawn as two tables (``zipingbiao``)."""
    for i, row in enumerate(table.rows):
        tr_pr = row._tr.get_or_add_trPr()
        wanted = ["cantSplit"] + (["tblHeader"] if i < header_rows else [])
        for tag in wanted:
            if tr_pr.find(qn(f"w:{tag}")) is None:
                tr_pr.append(OxmlElement(f"w:{tag}"))
        children = sorted(tr_pr, key=lambda el: _TRPR_ORDER.index(el.tag.rsplit("}", 1)[-1]))
        tr_pr[:] = children


def page_number_footer(section: Any) -> None:
    """The page number centred in the footer as 公文 print it (GB/T 9704: 4号 半角宋体 Arabic
    numerals with a dash either side), ``— 1 —``: a PAGE field, which Word and LibreOffice fill
    in on every page. python-docx has no field API; the field is one ``w:fldSimple`` element."""
    footer = section.footer
    footer.is_linked_to_previous = False
    p = footer.paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    pf = p.paragraph_format
    pf.first_line_indent = Pt(0)
    pf.space_before = pf.space_after = Pt(0)
    for text in ("— ", None, " —"):
        run = p.add_run(text or "1")
        run.font.size = SIHAO
        run.font.name = PAGE_FONT
        east_asian_font(run._r, PAGE_FONT)
        if text is None:  # the field: its cached result "1" until the application updates it
            field = OxmlElement("w:fldSimple")
            field.set(qn("w:instr"), " PAGE ")
            run._r.addprevious(field)
            field.append(run._r)


def table_run(
    paragraph: Any, text: str, *, bold: bool = False, size: Pt = WUHAO, font: str = BODY_FONT[0]
) -> Any:
    """A run of table text (五号 by default) with its East Asian font."""
    run = paragraph.add_run(text)
    run.font.size = size
    run.font.bold = bold
    run.font.name = LATIN
    east_asian_font(run._r, font)
    return run


def set_cell(
    cell: Any,
    text: str,
    *,
    bold: bool = False,
    align: str = "center",
    size: Pt = WUHAO,
    font: str = BODY_FONT[0],
) -> None:
    """Replace a table cell's text: one paragraph per line, no indent, single spacing,
    vertically centred."""
    cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER
    lines = text.split("\n") if text else [""]
    first = cell.paragraphs[0]
    for p in cell.paragraphs[1:]:
        p._p.getparent().remove(p._p)
    for i, line in enumerate(lines):
        p = first if i == 0 else cell.add_paragraph()
        for r in list(p.runs):
            r._r.getparent().remove(r._r)
        pf = p.paragraph_format
        pf.first_line_indent = Pt(0)
        pf.line_spacing_rule = WD_LINE_SPACING.SINGLE
        pf.space_before = pf.space_after = Pt(1)
        pf.alignment = {
            "center": WD_ALIGN_PARAGRAPH.CENTER,
            "left": WD_ALIGN_PARAGRAPH.LEFT,
            "right": WD_ALIGN_PARAGRAPH.RIGHT,
            "justify": WD_ALIGN_PARAGRAPH.JUSTIFY,
        }[align]
        table_run(p, line, bold=bold, size=size, font=font)
