"""Definitions through the real command line (in process, SQLite): what an operator sees."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from config.loader import load_definition
from tests.cli.helpers import demo_copy, run

LIKERT = {
    "# scale, satisfied (非常满意+比较满意) and method (share) take their defaults": 'method = "likert"',
}


def test_a_likert_satisfaction_definition_loads_and_scores_through_the_cli(tmp_path: Path) -> None:
    project = demo_copy(tmp_path, LIKERT)
    definition = load_definition(project)
    assert definition.questionnaire is not None and definition.questionnaire.method == "likert"
    assert run(tmp_path, "project", "validate", str(project))[0] == 0
    assert run(tmp_path, "project", "load", str(project))[0] == 0
    code, out, err = run(tmp_path, "score", "zipingbiao-demo", "--format", "json")
    assert code == 0, err
    row = next(r for r in json.loads(out)["indicators"] if r["key"] == "satisfaction.villagers")
    # 6×100 + 2×80 + 1×60 + 1×40 = 860 over 10 answers → 86 % of ≥90 % → 9.56 → 9 (rounded down)
    assert (row["actual"], row["score"]) == ("86%", "9")
    assert "综合满意度" in row["explanation"]
    assert Decimal(row["weight"]) == 10


def test_a_table_written_as_printed_scores_through_the_cli_with_its_notes(tmp_path: Path) -> None:
    from tests.config.test_printed_tables import PRINTED

    path = tmp_path / "printed.toml"
    path.write_text(PRINTED, encoding="utf-8")
    assert run(tmp_path, "project", "validate", str(path))[0] == 0
    assert run(tmp_path, "project", "load", str(path))[0] == 0
    code, out, err = run(tmp_path, "score", "printed-2023", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["total"], doc["total_weight"], doc["percentage"], doc["grade"]) == ("104", "110", "95", "优")
    assert doc["published_total"] == "94"
    assert doc["funds"]["source"] == "declared" and doc["funds"]["executed"] == "1140000.00"
    rows = {r["key"]: r for r in doc["indicators"]}
    assert rows["satisfied"]["transcribed"] and rows["satisfied"]["score"] == "9"
    assert rows["exec"]["rounding"] == {"decimals": 0, "mode": "down"}
    assert rows["meals"]["published_score"] == "48"
    codes = {w["code"] for w in doc["warnings"]}
    assert {"published", "total_weight"} <= codes
    code, out, _ = run(tmp_path, "score", "printed-2023")
    assert "家长满意度（照录）" in out
    assert "公布的总分94分与计算总分104分不一致" in out
    assert "本表满分 110 分，折合百分制 95 分" in out


def test_a_problem_in_a_printed_table_is_reported_with_its_place_and_no_traceback(tmp_path: Path) -> None:
    from tests.config.test_printed_tables import PRINTED

    path = tmp_path / "printed.toml"
    path.write_text(PRINTED.replace('target = "≧735 人次"', 'target = "≈735 人次"'), encoding="utf-8")
    code, out, err = run(tmp_path, "project", "validate", str(path))
    assert code == 1 and "Traceback" not in err
    assert "printed.toml: indicators[1].target" in err and "可用写法" in err


def test_an_unexpected_error_prints_a_short_bilingual_line_and_a_logged_reference(tmp_path: Path) -> None:
    import io as _io

    from cli.main import main

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database file, it was overwritten by mistake\n" * 100)
    out, err = _io.StringIO(), _io.StringIO()
    code = main(
        ["--database-url", f"sqlite+aiosqlite:///{broken}", "--data-dir", str(tmp_path), "project", "list"],
        out=out,
        err=err,
    )
    assert code == 2
    message = err.getvalue()
    assert "Traceback" not in message and len(message.splitlines()) == 2
    assert "内部错误（编号 " in message and "internal error (ref " in message
    ref = message.split("编号 ", 1)[1].split("）", 1)[0]
    log = (tmp_path / "cli-errors.log").read_text(encoding="utf-8")
    assert f"ref={ref}" in log and "Traceback" in log


def test_the_published_chizhou_table_loads_and_scores_through_the_cli(tmp_path: Path) -> None:
    from tests.conftest import REPO

    project = REPO / "config" / "projects" / "chizhou-weituo-2022"
    assert run(tmp_path, "project", "load", str(project))[0] == 0
    code, out, err = run(tmp_path, "score", "chizhou-weituo-2022", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["total"], doc["total_weight"], doc["percentage"], doc["grade"]) == ("90", "90", "100", "优")
    assert doc["funds"]["source"] == "declared" and doc["funds"]["initial"] == "900000.00"
    budget = next(r for r in doc["indicators"] if r["key"] == "budget.execution")
    assert (budget["published_score"], budget["score"]) == ("0", "10")


def test_the_published_yongde_table_is_reproduced_through_the_cli(tmp_path: Path) -> None:
    """jixiao score --format json prints the published 总分 96 and 优, and every printed row score."""
    from tests.conftest import REPO

    project = REPO / "config" / "projects" / "yongde-yingyang-2022"
    assert run(tmp_path, "project", "validate", str(project))[0] == 0
    assert run(tmp_path, "project", "load", str(project))[0] == 0
    code, out, err = run(tmp_path, "score", "yongde-yingyang-2022", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["total"], doc["published_total"], doc["total_weight"], doc["grade"]) == (
        "96",
        "96",
        "100",
        "优",
    )
    printed = {i.key: i.published_score for i in load_definition(project).indicators}
    assert {r["key"]: Decimal(r["score"]) for r in doc["indicators"]} == printed
    assert all(r["published_score"] == r["score"] for r in doc["indicators"])
    on_time = next(r for r in doc["indicators"] if r["key"] == "output.funds-on-time")
    assert on_time["transcribed"] and "计算得分10分" in on_time["explanation"]
    assert doc["funds"]["source"] == "declared"
