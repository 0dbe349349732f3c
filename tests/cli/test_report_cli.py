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
