"""The deliverables and the narrative through the admin API (and the signed report page)."""

from __future__ import annotations

import io
from datetime import timedelta

from docx import Document as read_docx
from openpyxl import load_workbook

from bot.documents import DOCUMENTS
from bot.report import sign_report
from scheduler.recompute import recompute
from store.db import SessionMaker
from tests.api.conftest import CODE, Api
from tests.bot.conftest import TEST_SECRET
from tests.conftest import Clock


async def test_documents_are_404_until_scored_then_download_with_their_media_type(
    api: Api, sessionmaker: SessionMaker, clock: Clock
) -> None:
    status, body = await api.get(f"/api/projects/{CODE}/documents/baogao.docx", token="coordinator")
    assert status == 404 and body["error"]["where"] == "scores" and "尚未计算评分" in body["error"]["message"]
    await recompute(sessionmaker, CODE, now=clock())
    for name, doc in DOCUMENTS.items():
        resp = await api.client.get(
            f"/api/projects/{CODE}/documents/{name}", headers=api.tokens.as_coordinator
        )
        assert resp.status == 200 and resp.content_type == doc.media_type
        assert (
            resp.headers["Content-Disposition"]
            == f'attachment; filename="{CODE}-2023-{doc.kind}.{doc.format}"'
        )
        body = await resp.read()
        if name.endswith(".xlsx"):
            assert load_workbook(io.BytesIO(body)).active["A1"].value == "项目支出绩效自评表"
        else:
            assert read_docx(io.BytesIO(body)).paragraphs  # a real Word document
    status, _ = await api.get(f"/api/projects/{CODE}/documents/baogao.docx", token=None)
    assert status == 401
    status, _ = await api.get(f"/api/projects/{CODE}/documents/baogao.xlsx")
    assert status == 404


async def test_the_narrative_is_replaced_through_the_api_and_appears_in_the_report(
    api: Api, sessionmaker: SessionMaker, clock: Clock
) -> None:
    status, body = await api.get(f"/api/projects/{CODE}/narrative", token="coordinator")
    assert status == 200 and body["data"]["revision"] == 0 and body["data"]["narrative"]["background"] == ""
    text = {
        "background": "项目背景第一段。\n项目背景第二段。",
        "indicators": {"benefit.ip-growth": {"deviation": "目标值偏低，下年调整。"}},
        "suggestions": [{"title": "加大投入", "text": "建议……"}],
    }
    status, body = await api.call("PUT", f"/api/projects/{CODE}/narrative", json=text)
    assert status == 200 and body["data"]["revision"] == 1 and body["data"]["created_by"] == "api:管理员"
    status, body = await api.call("PUT", f"/api/projects/{CODE}/narrative", json=text)
    assert status == 200 and body["data"]["revision"] == 1  # unchanged text: no new revision
    status, _ = await api.call("PUT", f"/api/projects/{CODE}/narrative", json=text, token="coordinator")
    assert status == 403
    await recompute(sessionmaker, CODE, now=clock())
    resp = await api.client.get(f"/api/projects/{CODE}/documents/baogao.docx", headers=api.tokens.as_admin)
    paragraphs = [p.text for p in read_docx(io.BytesIO(await resp.read())).paragraphs]
    assert paragraphs[paragraphs.index("1.项目背景") + 1 : paragraphs.index("1.项目背景") + 3] == [
        "项目背景第一段。",
        "项目背景第二段。",
    ]
    assert "1.加大投入" in paragraphs
    resp = await api.client.get(
        f"/api/projects/{CODE}/documents/zipingbiao.xlsx", headers=api.tokens.as_admin
    )
    ws = load_workbook(io.BytesIO(await resp.read())).active
    row = next(c.row for c in ws["D"] if c.value == "知识产权发展水平（年有效发明专利增长率）")
    assert ws[f"I{row}"].value.endswith("目标值偏低，下年调整。")


async def test_a_bad_narrative_gets_every_problem_with_its_field_and_nothing_is_stored(api: Api) -> None:
    bad = {"background": "a\u0007b", "indicators": {"ghost": {"evidence": "x"}}, "extra": 1}
    status, body = await api.call("PUT", f"/api/projects/{CODE}/narrative", json=bad)
    assert status == 400 and body["error"]["code"] == "invalid_narrative"
    fields = {(d["field"], d["code"]) for d in body["error"]["details"]}
    assert fields == {
        ("background", "text_control_char"),
        ("extra", "unknown_field"),
        ("indicators.ghost", "narrative_unknown_indicator"),
    }
    status, body = await api.call(
        "PUT", f"/api/projects/{CODE}/narrative", data=b"[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and body["error"]["code"] == "body_required"
    status, body = await api.call(
        "PUT", f"/api/projects/{CODE}/narrative", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and body["error"]["code"] == "malformed_json"
    status, body = await api.get(f"/api/projects/{CODE}/narrative")
    assert body["data"]["revision"] == 0


async def test_the_openapi_document_describes_the_documents_and_the_narrative(api: Api) -> None:
    status, doc = await api.get("/api/openapi.json", token=None)
    assert status == 200
    paths = doc["paths"]
    for name, d in DOCUMENTS.items():
        op = paths[f"/api/projects/{{code}}/documents/{name}"]["get"]
        assert list(op["responses"]["200"]["content"]) == [d.media_type] and "404" in op["responses"]
    put = paths["/api/projects/{code}/narrative"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Narrative"
    }
    assert (
        "Narrative" in doc["components"]["schemas"]
        and "indicators" in doc["components"]["schemas"]["Narrative"]["properties"]
    )


async def test_the_signed_report_page_links_and_serves_the_documents(
    api: Api, sessionmaker: SessionMaker, clock: Clock
) -> None:
    await recompute(sessionmaker, CODE, now=clock())
    path = f"/r/{sign_report(TEST_SECRET.encode(), CODE, clock() + timedelta(days=7))}"
    html = await (await api.client.get(path)).text()
    for name in DOCUMENTS:
        assert f'href="{path}/{name}"' in html
    resp = await api.client.get(f"{path}/zipingbiao.docx")
    assert resp.status == 200 and resp.content_type == DOCUMENTS["zipingbiao.docx"].media_type
    forged = path[:-3] + "AAA"
    assert (await api.client.get(f"{forged}/baogao.docx")).status == 404
