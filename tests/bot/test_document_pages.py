"""The documents as pages: table rows never split across a page, a long table's heading row
repeats on every page it continues on, every page is numbered, and the East Asian text is Chinese
(the 自评表 XLSX: its column headings repeat as print titles and its pages are numbered).

Checked twice: in the DOCX itself (the row properties, the footer field) and on the pages
LibreOffice headless prints (PDF → pdftotext, one page at a time), for every example project."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import unicodedata
import zipfile
from pathlib import Path

import pytest
from docx import Document as read_docx
from docx.oxml.ns import qn
from docx.oxml.parser import parse_xml

from bot.documents import render
from bot.documents.baogao import OUTLINE
from bot.documents.docx_style import FALLBACKS
from bot.documents.zipingbiao import INDICATOR_HEADER
from store.db import SessionMaker
from tests.bot.test_documents import EXAMPLES, _data, _soffice
from tests.conftest import EXAMPLE_PROJECT, Clock

DOCX = ("zipingbiao.docx", "baogao.docx")


def _row_flags(table) -> list[list[bool]]:
    """(cantSplit, tblHeader) of every row of a python-docx table."""
    out = []
    for row in table.rows:
        tr_pr = row._tr.trPr
        found = (
            []
            if tr_pr is None
            else [tr_pr.find(qn(tag)) is not None for tag in ("w:cantSplit", "w:tblHeader")]
        )
        out.append((found or [False, False])[0:2])
    return out


@pytest.mark.parametrize("project_dir", EXAMPLES, ids=[p.name for p in EXAMPLES])
async def test_every_docx_row_stays_whole_and_heading_rows_repeat(
    sessionmaker: SessionMaker, clock: Clock, project_dir: Path
) -> None:
    data = await _data(sessionmaker, project_dir, clock, narrative=True)
    for name in DOCX:
        body = render(name, data)
        doc = read_docx(io.BytesIO(body))
        assert doc.tables, name
        for t, table in enumerate(doc.tables):
            flags = _row_flags(table)
            assert all(split for split, _ in flags), (name, t)  # no row breaks across pages
            headings = [i for i, (_, head) in enumerate(flags) if head]
            if name == "zipingbiao.docx" and t == 0:
                # the form's top block (项目名称 … 年度总体目标) has no heading row
                assert headings == [] and table.cell(0, 0).text == "项目名称"
            else:
                assert headings == [0], (name, t)
                first = [c.text for c in table.rows[0].cells]
                assert (
                    INDICATOR_HEADER[0] in first if name == "zipingbiao.docx" else first[0] == "一级指标"
                ), first
        # the footer numbers the pages (a PAGE field) and the text is marked as Chinese
        footer = doc.sections[0].footer._element
        fields = footer.findall(".//" + qn("w:fldSimple"))
        assert [f.get(qn("w:instr")).strip() for f in fields] == ["PAGE"]
        assert footer.xpath("string(.)").replace("1", "N") == "— N —"
        lang = doc.styles.element.find(qn("w:docDefaults")).find(".//" + qn("w:lang"))
        assert lang.get(qn("w:eastAsia")) == "zh-CN"
        # each style font's fallback is declared in the font table (what Word and WPS use where
        # 仿宋_GB2312, 楷体_GB2312 or 方正小标宋简体 is not installed)
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            fonts = parse_xml(z.read("word/fontTable.xml"))
        alt = {
            f.get(qn("w:name")): f.find(qn("w:altName")).get(qn("w:val"))
            for f in fonts.findall(qn("w:font"))
            if f.find(qn("w:altName")) is not None
        }
        assert {name: alt.get(name) for name, _ in FALLBACKS} == dict(FALLBACKS)


def _pdf_page_texts(soffice: str, src: Path, profile: Path) -> list[str]:
    """LibreOffice headless → PDF; the text of each page (pdftotext, page by page), NFKC-normalised:
    the PDF's text map gives some ideographs of the Noto CJK fonts as Kangxi radicals (⽅ for 方)."""
    subprocess.run(
        [soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", "pdf",
         "--outdir", str(src.parent), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    pdf = src.with_suffix(".pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    texts = []
    for n in range(1, pages + 1):
        page = ["pdftotext", "-f", str(n), "-l", str(n), str(pdf), "-"]
        text = subprocess.run(page, capture_output=True, text=True, check=True).stdout
        texts.append(unicodedata.normalize("NFKC", text))
    return texts


def _pdf_fonts(pdf: Path) -> str:
    """pdffonts' table of the fonts a PDF uses."""
    return subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout


def _docx_chars(path: Path) -> str:
    """All the text of a DOCX: paragraphs, table cells, footer."""
    doc = read_docx(str(path))
    parts = [p.text for p in doc.paragraphs]
    parts += [c.text for t in doc.tables for row in t.rows for c in row.cells]
    return "".join(parts)


def _span(pages: list[str], start: str, end: str) -> range:
    """The pages (0-based) from the first one showing ``start`` to the first later one showing
    ``end``."""
    first = next(i for i, text in enumerate(pages) if start in text)
    last = next(i for i in range(first, len(pages)) if end in pages[i])
    return range(first, last + 1)


async def test_printed_pages_repeat_table_headings_and_are_numbered(
    sessionmaker: SessionMaker, clock: Clock, tmp_path: Path
) -> None:
    """The reference project's documents are long enough to test this: its 自评表 indicator rows
    (DOCX and XLSX) and its 评价报告 指标体系 table each continue over a page break."""
    soffice = _soffice()
    data = await _data(sessionmaker, EXAMPLE_PROJECT, clock, narrative=True)
    printed: dict[str, list[str]] = {}
    for name in (*DOCX, "zipingbiao.xlsx"):
        src = tmp_path / name.replace(".", "_") / name
        src.parent.mkdir()
        src.write_bytes(render(name, data))
        printed[name] = await asyncio.to_thread(_pdf_page_texts, soffice, src, tmp_path / "lo-profile")
        # no tofu: every font is embedded, the Chinese text is set in Noto CJK (the fallback for the
        # 公文 fonts this machine lacks), and each character of the document comes out of the PDF
        fonts = await asyncio.to_thread(_pdf_fonts, src.with_suffix(".pdf"))
        rows = [line.split() for line in fonts.splitlines()[2:] if line.strip()]
        assert rows and all(row[-5] == "yes" for row in rows), fonts  # the "emb" column
        assert any("CJK" in row[0] for row in rows), fonts
        if name.endswith("docx"):
            chars = {ch for ch in _docx_chars(src) if "\u4e00" <= ch <= "\u9fff"}
            assert chars and chars <= set("".join(printed[name])), sorted(
                chars - set("".join(printed[name]))
            )[:20]

    for name, pages in printed.items():
        assert len(pages) >= 2, name
        for n, text in enumerate(pages, start=1):  # DOCX "— n —", XLSX "第 n 页，共 N 页"
            number = (
                rf"—\s*{n}\s*—" if name.endswith("docx") else rf"第\s*{n}\s*页[，,]\s*共\s*{len(pages)}\s*页"
            )
            assert re.search(number, text), (name, n, text[-200:])

    # 自评表: from the indicator headings to 自评等级, every page shows the column headings
    for name in ("zipingbiao.docx", "zipingbiao.xlsx"):
        form = printed[name]
        span = _span(form, "偏差原因分析", "自评等级")
        assert len(span) >= 2, name  # the indicator rows do continue on another page
        for i in span:
            assert "三级指标" in form[i] and "偏差原因分析" in form[i], (name, i + 1)
    # 评价报告: the 指标体系 table (caption → its last row, the last indicator) repeats its headings
    report = printed["baogao.docx"]
    span = _span(report, "项目支出绩效评价指标体系", data.table.indicators[-1].name)
    assert len(span) >= 2
    for i in span:
        assert "评分标准" in report[i] and "三级指标" in report[i], i + 1
    assert all(title in "".join(report) for title in OUTLINE)
