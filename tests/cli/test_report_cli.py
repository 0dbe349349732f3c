"""``jixiao report`` and the narrative beside a definition, through the real command line."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from docx import Document as read_docx
from openpyxl import load_workbook

from tests.cli.test_score_cli import jixiao
from tests.conftest import EXAMPLE_PROJECT


async def test_report_writes_the_zipingbiao_and_the_baogao_from_the_scored_data(
    db_url: str, tmp_path: Path
) -> None:
    code, out, err = await jixiao(db_url, tmp_path, "project", "load", str(EXAMPLE_PROJECT))
    assert code == 0 and "narrative.toml 已保存为第 1 稿" in out, err
    xlsx = tmp_path / "zpb.xlsx"
    code, out, err = await jixiao(
        db_url, tmp_path, "report", "urumqi-ip-2023", "zipingbiao", "--format", "xlsx", "-o", str(xlsx)
    )
    assert code == 0 and "总分 100.00，优" in out, err
    ws = load_workbook(xlsx).active
    assert ws["A1"].value == "项目支出绩效自评表" and ws["B3"].value == "知识产权运营服务体系建设项目"
    docx = tmp_path / "bg.docx"
    code, out, err = await jixiao(db_url, tmp_path, "report", "urumqi-ip-2023", "baogao", "-o", str(docx))
    assert code == 0, err
    text = "\n".join(p.text for p in read_docx(io.BytesIO(docx.read_bytes())).paragraphs)
    assert "最终评分结果为：总分为100分，绩效评级为“优”" in text
    # loading the same directory again keeps the narrative's revision
    code, out, err = await jixiao(db_url, tmp_path, "project", "load", str(EXAMPLE_PROJECT))
    assert code == 0 and "narrative" not in out, err


async def test_report_refuses_a_format_the_document_does_not_have(db_url: str, tmp_path: Path) -> None:
    code, out, err = await jixiao(db_url, tmp_path, "report", "urumqi-ip-2023", "baogao", "--format", "xlsx")
    assert code == 1 and "baogao 没有 xlsx 格式（可用：docx）" in err


async def test_a_bad_narrative_stops_the_load_before_anything_is_stored(db_url: str, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLE_PROJECT, project)
    (project / "narrative.toml").write_text('[indicators."no.such"]\nevidence = "x"\n', encoding="utf-8")
    code, out, err = await jixiao(db_url, tmp_path, "project", "validate", str(project))
    assert code == 1 and "narrative.toml: indicators.no.such: 项目定义中没有指标 no.such" in err
    code, out, err = await jixiao(db_url, tmp_path, "project", "load", str(project))
    assert code == 1 and "no.such" in err
    code, out, err = await jixiao(db_url, tmp_path, "project", "list")
    assert code == 0 and "urumqi-ip-2023" not in out


async def test_the_zipingbiao_xlsx_prints_what_jixiao_score_json_says(db_url: str, tmp_path: Path) -> None:
    import json
    from decimal import Decimal

    from tests.bot.test_documents import EXAMPLES

    for project in EXAMPLES:
        code, _, err = await jixiao(db_url, tmp_path, "project", "load", str(project))
        assert code == 0, err
        code, out, err = await jixiao(db_url, tmp_path, "score", project.name, "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        xlsx = tmp_path / f"{project.name}.xlsx"
        code, _, err = await jixiao(
            db_url, tmp_path, "report", project.name, "zipingbiao", "--format", "xlsx", "-o", str(xlsx)
        )
        assert code == 0, err
        ws = load_workbook(xlsx).active
        printed = {
            ws.cell(r, 4).value: (ws.cell(r, 7).value, ws.cell(r, 8).value)
            for r in range(1, ws.max_row + 1)
            if isinstance(ws.cell(r, 7).value, int | float)
        }
        for row in doc["indicators"]:
            name = row["name"] + (
                "（照录）" if row.get("transcribed") else "（调整）" if row["overridden"] else ""
            )
            if name in printed:
                weight, score = printed[name]
                assert (Decimal(str(weight)), Decimal(str(score))) == (
                    Decimal(row["weight"]),
                    Decimal(row["score"]),
                )
            else:  # a 预算执行率 alone in its 一级 is printed in the funds block (得分, column I)
                funds = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 2).value == "年度资金总额")
                assert Decimal(str(ws.cell(funds, 9).value)) == Decimal(row["score"])
        total = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == "总分")
        assert Decimal(str(ws.cell(total, 8).value)) == Decimal(doc["total"])
        assert ws.cell(total + 1, 7).value.startswith(doc["grade"])
