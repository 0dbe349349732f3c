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
