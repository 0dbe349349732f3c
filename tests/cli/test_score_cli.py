"""End to end through the real command line: validate, load, score — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import EXAMPLE_PROJECT, REPO
from tests.reference import REPORT_TABLE

DEMO = REPO / "config" / "projects" / "zipingbiao-demo"


async def jixiao(db_url: str, data_dir: Path, *args: str) -> tuple[int, str, str]:
    """Run the installed CLI in a subprocess, as a user would."""
    env = {**os.environ, "JIXIAO_DATABASE_URL": db_url, "JIXIAO_DATA_DIR": str(data_dir)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_example_project_reproduces_the_reports_table(db_url: str, tmp_path: Path) -> None:
    code, out, err = await jixiao(db_url, tmp_path, "project", "validate", str(EXAMPLE_PROJECT))
    assert code == 0, err
    code, out, err = await jixiao(db_url, tmp_path, "project", "load", str(EXAMPLE_PROJECT))
    assert code == 0 and "第 1 版" in out, err
    code, out, err = await jixiao(db_url, tmp_path, "score", "urumqi-ip-2023", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["project"]["code"], doc["total"], doc["grade"]) == ("urumqi-ip-2023", "100.00", "优")
    rows = [(r["level1"], r["level2"], r["name"], Decimal(r["weight"])) for r in doc["indicators"]]
    assert rows == [(a, b, c, Decimal(w)) for a, b, c, w in REPORT_TABLE]
    assert all(
        Decimal(r["score"]) == Decimal(r["weight"]) and r["rate"] == "1.0000" for r in doc["indicators"]
    )
    assert all(isinstance(r["score"], str) and r["explanation"] for r in doc["indicators"])
    nav = next(r for r in doc["indicators"] if r["name"] == "支持企业专利导航项目")
    assert nav["explanation"] == "目标≥7个，完成7个，完成率100%，得5分"
    # The text table shows the same 23 rows and the total.
    code, out, _ = await jixiao(db_url, tmp_path, "score", "urumqi-ip-2023")
    assert code == 0 and "得分 100.00  等级 优" in out
    assert sum(1 for line in out.splitlines() if line.rstrip().endswith("100%")) == 23


async def test_the_self_evaluation_template_demo_scores_as_computed_by_hand(
    db_url: str, tmp_path: Path
) -> None:
    assert (await jixiao(db_url, tmp_path, "project", "load", str(DEMO)))[0] == 0
    code, out, err = await jixiao(db_url, tmp_path, "score", "zipingbiao-demo", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    scores = {r["name"]: r["score"] for r in doc["indicators"]}
    assert scores == {
        "预算执行率": "9",  # 92.5% of budget × 10 = 9.25, rounded down
        "新建集中供水工程": "12",  # 10 of ≥12 × 15 = 12.5 → 12
        "改造供水管网长度": "10",
        "水质检测合格率": "10",
        "工程完工时间": "5",
        "单处工程平均造价": "9",  # reverse: 15/16 × 10 = 9.375 → 9
        "受益人口": "8",  # 17000/20000 × 10 = 8.5 → 8
        "农村集中供水率": "10",
        "工程长效管护机制": "6",  # manual override, computed 10
        "受益群众满意度": "8",  # 80% vs ≥90% × 10 = 8.89 → 8
    }
    assert (doc["total"], doc["grade"]) == ("87", "良")
    override = next(r for r in doc["indicators"] if r["overridden"])
    assert override["computed_score"] == "10" and override["override_reason"]
    assert {w["code"] for w in doc["warnings"]} >= {"shortfall", "override"}


async def test_xlsx_output_opens_with_pandas_and_matches_the_json(db_url: str, tmp_path: Path) -> None:
    await jixiao(db_url, tmp_path, "project", "load", str(DEMO))
    target = tmp_path / "score.xlsx"
    code, _, err = await jixiao(
        db_url, tmp_path, "score", "zipingbiao-demo", "--format", "xlsx", "-o", str(target)
    )
    assert code == 0, err
    sheet = pd.read_excel(target, sheet_name="评分表")
    _, out, _ = await jixiao(db_url, tmp_path, "score", "zipingbiao-demo", "--format", "json")
    doc = json.loads(out)
    body = sheet[sheet["一级指标"] != "合计"]
    assert [Decimal(str(v)) for v in body["得分"]] == [Decimal(r["score"]) for r in doc["indicators"]]
    assert Decimal(str(sheet[sheet["一级指标"] == "合计"]["得分"].iloc[0])) == Decimal(doc["total"])


async def test_an_invalid_definition_is_refused_with_every_problem_and_nothing_stored(
    db_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    text = (DEMO / "project.toml").read_text(encoding="utf-8")
    bad.write_text(text.replace('amount = "2000000.00"', 'amount = "2000000.005"', 1), encoding="utf-8")
    code, out, err = await jixiao(db_url, tmp_path, "project", "load", str(bad))
    assert code == 1 and "Traceback" not in err
    assert "bad.toml: budget.amount: 金额 2000000.005 元超过2位小数" in err
    assert "more than 2 decimals" in err
    code, out, _ = await jixiao(db_url, tmp_path, "project", "list")
    assert code == 0 and out.strip() == ""


async def test_scoring_an_unknown_project_says_so(db_url: str, tmp_path: Path) -> None:
    code, _, err = await jixiao(db_url, tmp_path, "score", "no-such-project")
    assert code == 1 and "no-such-project" in err and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["markdown", "table"])
async def test_text_formats_carry_total_and_grade(db_url: str, tmp_path: Path, fmt: str) -> None:
    await jixiao(db_url, tmp_path, "project", "load", str(EXAMPLE_PROJECT))
    code, out, _ = await jixiao(db_url, tmp_path, "score", "urumqi-ip-2023", "--format", fmt)
    assert code == 0 and "100.00" in out and "优" in out
