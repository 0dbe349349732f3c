"""Every file is decoded by one decoder (config.tables): files as Excel on Chinese Windows writes
them (GBK), UTF-8 with BOM, UTF-16 with BOM; the encoding found is reported; an undecodable file
is named with a hint; a 200 KB cell is a located problem, never a traceback."""

from __future__ import annotations

import codecs
import shutil
from pathlib import Path

import pytest

from config.loader import DefinitionError, load_definition
from config.tables import TableError, decode, read_table
from tests.cli.helpers import run
from tests.conftest import EXAMPLE_PROJECT


def _example(tmp_path: Path) -> Path:
    target = tmp_path / "urumqi"
    shutil.copytree(EXAMPLE_PROJECT, target)
    return target


def _excel_on_chinese_windows(text: str) -> bytes:
    """What "CSV (逗号分隔)" in Excel on a Chinese Windows writes: GBK bytes, CRLF line ends."""
    return text.replace("\n", "\r\n").encode("gbk")


ENCODINGS = [
    pytest.param(_excel_on_chinese_windows, "GB18030 (GBK)", id="gbk as excel on chinese windows saves it"),
    pytest.param(lambda t: codecs.BOM_UTF8 + t.encode("utf-8"), "UTF-8 (BOM)", id="utf-8 with bom"),
    pytest.param(lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"), "UTF-16", id="utf-16 le with bom"),
    pytest.param(lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"), "UTF-16", id="utf-16 be with bom"),
]


@pytest.mark.parametrize(("encode", "label"), ENCODINGS)
def test_units_csv_in_any_supported_encoding_loads_the_same_and_reports_it(
    tmp_path: Path, encode, label: str
) -> None:
    project = _example(tmp_path)
    units = project / "units.csv"
    units.write_bytes(encode(units.read_text(encoding="utf-8")))
    encodings: dict[str, str] = {}
    defn = load_definition(project, encodings=encodings)
    assert encodings == {"project.toml": "UTF-8", "units.csv": label, "disbursements.csv": "UTF-8"}
    assert defn == load_definition(EXAMPLE_PROJECT)
    assert defn.units[0].name == "乌鲁木齐米东恒通商标事务所（示例）"


@pytest.mark.parametrize(("encode", "label"), ENCODINGS)
def test_project_toml_in_any_supported_encoding_validates_through_the_cli(
    tmp_path: Path, encode, label: str
) -> None:
    project = _example(tmp_path)
    toml = project / "project.toml"
    toml.write_bytes(encode(toml.read_text(encoding="utf-8")))
    code, out, err = run(tmp_path, "project", "validate", str(project))
    assert code == 0, err
    assert f"project.toml {label}" in out


def test_an_undecodable_units_file_is_named_with_a_hint_and_no_traceback(tmp_path: Path) -> None:
    project = _example(tmp_path)
    (project / "units.csv").write_bytes(b"key,name\nu001,\x80\x80\xff\n")
    with pytest.raises(DefinitionError) as caught:
        load_definition(project)
    [problem] = [p for p in caught.value.problems if p.code == "encoding"]
    assert problem.location == "units.csv"
    assert "CSV UTF-8" in problem.zh and "Save As" in problem.en
    code, _, err = run(tmp_path, "project", "load", str(project))
    assert code == 1 and "units.csv" in err and "Traceback" not in err


def test_a_utf16_file_without_its_bom_is_refused_not_read_as_garbage() -> None:
    with pytest.raises(TableError) as caught:
        decode("key,name\n".encode("utf-16-le"), name="units.csv")
    assert caught.value.problems[0].code == "encoding" and "units.csv" in caught.value.problems[0].zh


def test_a_200_kb_cell_is_a_located_problem(tmp_path: Path) -> None:
    project = _example(tmp_path)
    units = project / "units.csv"
    lines = units.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("（示例）", "（示例）" + "长" * 200_000, 1)
    units.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_definition(project)
    [(location, code)] = [(p.location, p.code) for p in caught.value.problems]
    assert location == "units.csv:4" and code in ("csv_syntax", "csv_row")


def test_a_cell_over_the_csv_field_limit_is_a_located_syntax_problem() -> None:
    data = b'key,name\nu1,"' + b"x" * 200_000 + b'"\n'
    with pytest.raises(TableError) as caught:
        read_table(data, name="units.csv")
    [problem] = caught.value.problems
    assert problem.row == 2 and problem.code in ("csv_syntax", "csv_row")


def test_the_bulk_importer_and_the_loader_read_a_gbk_file_alike(tmp_path: Path) -> None:
    text = (EXAMPLE_PROJECT / "units.csv").read_text(encoding="utf-8")
    table = read_table(_excel_on_chinese_windows(text), name="units.csv")
    assert table.encoding == "gb18030" and table.rows[0][1]["name"] == "乌鲁木齐米东恒通商标事务所（示例）"
