"""The app shell: health, landing page, the one error shape for API and pages."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.app import create_app
from config.settings import Settings
from store.db import SessionMaker


async def test_health_reports_the_database(app_client: TestClient) -> None:
    resp = await app_client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"ok": True, "database": "ok"}


async def test_the_landing_page_says_what_runs_and_where_admins_go(app_client: TestClient) -> None:
    resp = await app_client.get("/")
    html = await resp.text()
    assert resp.status == 200 and "/api/openapi.json" in html and "1 个项目" in html


async def test_an_unknown_api_path_answers_in_the_json_envelope(app_client: TestClient) -> None:
    resp = await app_client.get("/api/no-such-thing")
    body = await resp.json()
    assert resp.status == 404
    assert body["ok"] is False and body["status"] == 404 and body["error"]["message_en"] == "Not found"


async def test_an_unknown_page_is_a_friendly_chinese_page_or_english_on_request(
    app_client: TestClient,
) -> None:
    zh = await app_client.get("/nope")
    assert zh.status == 404 and "页面不存在" in await zh.text()
    en = await app_client.get("/nope", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert en.status == 404 and "Not found" in await en.text() and "页面不存在" not in await en.text()


async def test_an_unexpected_error_is_a_500_with_a_reference_and_no_traceback(
    aiohttp_client: Any, settings: Settings, sessionmaker: SessionMaker, caplog: Any
) -> None:
    app = create_app(settings, sessionmaker=sessionmaker, channels={}, start_workers=False)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/api/boom", boom)
    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    api = await client.get("/api/boom")
    body = await api.json()
    assert api.status == 500 and body["error"]["code"] == "internal"
    assert "secret internals" not in str(body) and "Traceback" not in str(body)
    page = await client.get("/boom")
    text = await page.text()
    assert page.status == 500 and "secret internals" not in text and "编号" in text
    assert "secret internals" in caplog.text  # the log keeps the detail for the operator
