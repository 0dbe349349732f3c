"""Every file a person hands us — definition TOML, units/disbursements CSV or XLSX — is read here.

One decoder (:func:`decode`) for every text input, whatever saved it:

- UTF-8, with or without the BOM Excel and Notepad write;
- UTF-16 with its BOM (Excel's "Unicode text", PowerShell's default);
- GB18030 (a superset of GBK/GB2312): what Excel on Chinese Windows writes for "CSV (逗号分隔)".

The encoding found is returned with the text (the CLI and the API report it). A file that is none
of these is refused with its name and a hint (save it as "CSV UTF-8"), never a raw
``UnicodeDecodeError``. :func:`read_table` turns CSV or XLSX bytes into rows numbered as the user
sees them (header = row 1); every problem is a :class:`TableError` naming file, row and reason.
The definition loader and the bulk importer both read through here.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "MAX_CELL_CHARS",
    "MAX_ROWS",
    "Decoded",
    "Table",
    "TableError",
    "TableProblem",
    "cell_text",
    "decode",
    "encoding_label",
    "read_table",
    "sniff_kind",
]

#: Most data rows one file may carry.
MAX_ROWS = 50_000
#: Longest cell accepted (characters); Python's csv module refuses fields over 128 KiB anyway.
MAX_CELL_CHARS = 100_000
_XLSX_MAGIC = b"PK\x03\x04"

Kind = Literal["csv", "xlsx"]


@dataclass(frozen=True)
class Decoded:
    """Text decoded from bytes and the encoding it was found in (``utf-8``, ``utf-8-sig``,
    ``utf-16``, ``gb18030``)."""

    text: str
    encoding: str

    @property
    def label(self) -> str:
        """The encoding as people name it: UTF-8, UTF-8 (BOM), UTF-16, GB18030 (GBK)."""
        return encoding_label(self.encoding)


def encoding_label(encoding: str) -> str:
    """A codec name as people name it: UTF-8, UTF-8 (BOM), UTF-16, GB18030 (GBK), XLSX."""
    return {
        "utf-8": "UTF-8",
        "utf-8-sig": "UTF-8 (BOM)",
        "utf-16": "UTF-16",
        "gb18030": "GB18030 (GBK)",
        "xlsx": "XLSX",
    }.get(encoding, encoding)


@dataclass(frozen=True)
class TableProblem:
    """One problem in a file: ``row`` is the 1-based line/sheet row (header = 1), 0 = the whole
    file; ``column`` may be empty."""

    row: int
    column: str
    code: str
    zh: str
    en: str


class TableError(ValueError):
    """A file could not be read; ``problems`` says where and why (Chinese and English)."""

    def __init__(self, problems: list[TableProblem], name: str = "") -> None:
        self.problems = problems
        self.name = name
        first = problems[0]
        super().__init__(f"{name}: {first.zh} / {first.en}" if name else f"{first.zh} / {first.en}")


def _refuse(name: str, code: str, zh: str, en: str, row: int = 0) -> TableError:
    return TableError([TableProblem(row, "", code, zh, en)], name)


_HINT_ZH = "请在 Excel 中“另存为 → CSV UTF-8（逗号分隔）”，或用记事本“另存为 → 编码 UTF-8”"
_HINT_EN = 'in Excel use "Save As → CSV UTF-8 (Comma delimited)", or save it as UTF-8 in a text editor'


def decode(data: bytes, *, name: str = "") -> Decoded:
    """Bytes → text: BOM first (UTF-8, UTF-16 LE/BE), then strict UTF-8, then GB18030.

    A NUL character in the result means the bytes were not text in that encoding (UTF-16 without
    a BOM, or a binary file): refused with a hint, like bytes no encoding accepts."""
    where = f"文件 {name} " if name else "文件"
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "gb18030"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break
        return Decoded(text, encoding)
    if data.startswith(_XLSX_MAGIC):
        raise _refuse(name, "encoding", f"{where}是 Excel (.xlsx) 文件，不是文本：请另存为 CSV UTF-8",
                      f"{name or 'the file'} is an Excel (.xlsx) workbook, not text: save it as CSV UTF-8")  # fmt: skip
    raise _refuse(name, "encoding",
                  f"{where}编码无法识别（支持 UTF-8、带 BOM 的 UTF-8/UTF-16、GB18030/GBK）：{_HINT_ZH}",
                  f"cannot decode {name or 'the file'} (UTF-8, UTF-8/UTF-16 with BOM, or GB18030/GBK expected): {_HINT_EN}")  # fmt: skip


@dataclass
class Table:
    """A spreadsheet read into rows: ``rows`` are (row number, {column: cell}) with the header as
    row 1 and lower-cased, trimmed column names. CSV cells are text; XLSX cells keep their type
    (number, date, text). ``encoding`` is the text encoding found (CSV) or ``xlsx``."""

    header: list[str]
    rows: list[tuple[int, dict[str, Any]]]
    encoding: str = "utf-8"


def sniff_kind(data: bytes, name: str = "") -> Kind:
    """``xlsx`` for a ZIP signature or an ``.xlsx`` name, else ``csv``."""
    return "xlsx" if data[:4] == _XLSX_MAGIC or name.lower().endswith(".xlsx") else "csv"


def _read_csv(data: bytes, name: str) -> Table:
    decoded = decode(data, name=name)
    reader = csv.reader(io.StringIO(decoded.text, newline=""))
    try:
        header_row = next(reader, None)
        if not header_row or not any(h.strip() for h in header_row):
            raise _refuse(name, "empty", "文件为空或没有表头", "the file is empty or has no header row")
        header = [h.strip().lower() for h in header_row]
        rows: list[tuple[int, dict[str, Any]]] = []
        problems: list[TableProblem] = []
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                problems.append(TableProblem(line, "", "csv_row", "本行的列数多于表头", "this row has more cells than the header"))  # fmt: skip
                continue
            if any(len(c) > MAX_CELL_CHARS for c in cells):
                problems.append(TableProblem(line, "", "csv_row", f"本行有单元格超过 {MAX_CELL_CHARS} 字",
                                             f"a cell in this row is longer than {MAX_CELL_CHARS} characters"))  # fmt: skip
                continue
            rows.append((line, {h: c for h, c in zip(header, cells, strict=False) if h}))
            if len(rows) > MAX_ROWS:
                raise _refuse(name, "too_many_rows", f"行数超过上限 {MAX_ROWS}", f"more than {MAX_ROWS} rows")
    except csv.Error as exc:
        # e.g. "field larger than field limit (131072)": name the line, not a traceback
        raise _refuse(name, "csv_syntax", f"CSV 格式错误（第 {reader.line_num} 行）：{exc}",
                      f"CSV syntax error (line {reader.line_num}): {exc}", row=reader.line_num) from None  # fmt: skip
    if problems:
        raise TableError(problems, name)
    return Table(header, rows, decoded.encoding)


def _read_xlsx(data: bytes, name: str) -> Table:
    """The first worksheet of an .xlsx file (values, not formulas)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on corrupt files; none may escape
        raise _refuse(name, "file_invalid", "不是有效的 Excel (.xlsx) 文件",
                      f"not a valid Excel (.xlsx) file ({type(exc).__name__})") from None  # fmt: skip
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise _refuse(name, "empty", "Excel 文件没有工作表", "the workbook has no worksheet")
        it = sheet.iter_rows(values_only=True)
        header_cells = next(it, None)
        if not header_cells or not any(c is not None for c in header_cells):
            raise _refuse(name, "empty", "文件为空或没有表头", "the file is empty or has no header row")
        header = [str(c).strip().lower() if c is not None else "" for c in header_cells]
        rows: list[tuple[int, dict[str, Any]]] = []
        for number, cells in enumerate(it, start=2):
            if not any(c is not None and str(c).strip() for c in cells):
                continue
            rows.append((number, {h: c for h, c in zip(header, cells, strict=False) if h and c is not None}))
            if len(rows) > MAX_ROWS:
                raise _refuse(name, "too_many_rows", f"行数超过上限 {MAX_ROWS}", f"more than {MAX_ROWS} rows")
    except TableError:
        raise
    except Exception as exc:  # corrupt sheet XML
        raise _refuse(name, "file_invalid", "Excel 文件内容损坏", f"the Excel file is corrupt ({type(exc).__name__})") from None  # fmt: skip
    finally:
        book.close()
    return Table(header, rows, "xlsx")


def read_table(data: bytes, kind: Kind | None = None, *, name: str = "") -> Table:
    """CSV or XLSX bytes → :class:`Table`; ``kind`` None sniffs it. Raises :class:`TableError`."""
    if not data.strip():
        raise _refuse(name, "empty", "文件为空", "the file is empty")
    kind = kind or sniff_kind(data, name)
    return _read_xlsx(data, name) if kind == "xlsx" else _read_csv(data, name)


def cell_text(value: Any) -> str:
    """A cell as text: numbers without a spurious ``.0`` (an Excel key typed as 1 is ``"1"``),
    dates as ISO text."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()
