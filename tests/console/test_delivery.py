"""Console: the outbox retry reaches a real (fake) vendor, the links export (XLSX = CSV, each URL
opens its unit's page, nothing new stored), and summary schedules' coordinator endpoints chosen
from the list (another project's endpoint refused)."""

from __future__ import annotations

import csv
import io
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.channels.message import Message, Text
from bot.channels.registry import build_adapters
from bot.outbox import DeliveryWorker, message_to_payload
from store.db import SessionMaker, transaction
from store.models import AuditEntry, ChannelEndpoint, Link, OutboxMessage, Project, Schedule
from store.outbox import enqueue, ensure_endpoint
from tests.bot.conftest import Launched
from tests.conftest import Clock
from tests.console.conftest import A, Accounts, B, csrf_of, login
from tests.fakes.vendors import WeComFake

KEY_ENV = "JIXIAO_TEST_WECOM_KEY"


async def _project_id(sm: SessionMaker, code: str) -> int:
    async with sm() as session:
        return (await session.execute(select(Project.id).where(Project.code == code))).scalar_one()


async def _coordinator_robot(sm: SessionMaker, clock: Clock, code: str, address: str) -> int:
    """A WeCom group robot that carried one (failed) summary of project ``code``; its id."""
    project_id = await _project_id(sm, code)
    async with transaction(sm) as session:
        ep = await ensure_endpoint(
            session, "wecom", address, name=f"{code} 协调群", config={"key_env": KEY_ENV}
        )
        await enqueue(session, dedupe_key=f"summary:{code}:{address}", endpoint_id=ep.id or 0, kind="summary",
                      payload=message_to_payload(Message("评分汇总", (Text("总分 90.00"),))), now=clock(),
                      project_id=project_id)  # fmt: skip
        row = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.endpoint_id == ep.id))
        ).scalar_one()
        row.status, row.attempt_count, row.last_error = "failed", 3, "93000 invalid webhook url"
        return ep.id or 0


async def test_a_failed_message_retried_from_the_console_is_delivered_to_the_vendor(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker, clock: Clock, aiohttp_server: Any
) -> None:
    wecom = WeComFake(keys={"robot-key-1"})
    await wecom.serve(aiohttp_server)
    ep_id = await _coordinator_robot(sessionmaker, clock, A, "coord-robot-a")
    async with sessionmaker() as session:
        msg = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.endpoint_id == ep_id))
        ).scalar_one()

    # the admin of the other project neither sees nor retries it
    assert (await login(app_client, "b-admin")).status == 303
    html = await (await app_client.get("/console/outbox?status=failed")).text()
    assert f'id="msg-{msg.id}"' not in html
    resp = await app_client.post(f"/console/outbox/{msg.id}/retry", data={"csrf": csrf_of(html)})
    assert resp.status == 404
    await app_client.post("/console/logout", data={"csrf": csrf_of(html)})

    assert (await login(app_client, "admin")).status == 303
    html = await (await app_client.get("/console/outbox?status=failed")).text()
    assert f'id="msg-{msg.id}"' in html and "93000" in html
    resp = await app_client.post(f"/console/outbox/{msg.id}/retry", data={"csrf": csrf_of(html), "status": "failed"},
                                 allow_redirects=False)  # fmt: skip
    assert resp.status == 303 and "done=retry" in resp.headers["Location"]
    async with aiohttp.ClientSession() as http:
        worker = DeliveryWorker(sessionmaker, build_adapters({"wecom": wecom.base_url}), http, clock=clock,
                                env={KEY_ENV: "robot-key-1"})  # fmt: skip
        await worker.run_until_idle()
    assert len(wecom.delivered) == 1 and "总分 90.00" in str(wecom.delivered[0].json)
    async with sessionmaker() as session:
        row = await session.get(OutboxMessage, msg.id)
        assert row is not None and row.status == "sent"
        actions = [e.action for e in (await session.execute(select(AuditEntry))).scalars()]
    assert "outbox.retry" in actions


async def test_the_xlsx_links_export_matches_the_csv_and_each_url_opens_its_unit_page(
    app_client: TestClient, accounts: Accounts, launched: Launched, sessionmaker: SessionMaker
) -> None:
    from openpyxl import load_workbook

    assert (await login(app_client, "admin")).status == 303
    base = f"/console/p/{A}/campaigns/{launched.campaign_id}"

    async def links_state() -> list[tuple[Any, ...]]:
        async with sessionmaker() as session:
            rows = (await session.execute(select(Link).order_by(Link.id))).scalars().all()
            outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
        return [tuple(sorted(r.model_dump().items())) for r in rows] + [("outbox", outbox)]

    before = await links_state()
    resp = await app_client.get(f"{base}/links.xlsx")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(await resp.read()), read_only=True).active
    assert sheet is not None
    xlsx = [[("" if v is None else str(v)) for v in row] for row in sheet.iter_rows(values_only=True)]
    text = (await (await app_client.get(f"{base}/links.csv")).read()).decode("utf-8-sig")
    rows_csv = list(csv.reader(io.StringIO(text)))
    assert xlsx == rows_csv  # the same table, cell for cell
    header, body = xlsx[0], xlsx[1:]
    assert len(body) == len(launched.tokens) == 121  # one row per unit
    assert len({r[0] for r in body}) == 121
    assert await links_state() == before  # URLs derived again: no link, token or message stored

    col = header.index("链接 link")
    by_unit = {r[0]: r for r in body}
    for key in ("u001", "u060", "u121"):
        url = by_unit[key][col]
        assert url.startswith("http://127.0.0.1/l/")
        path = url.removeprefix("http://127.0.0.1")
        assert path == launched.url(key)  # the same link the unit was sent
        page = await app_client.get(path)
        html = await page.text()
        assert page.status == 200 and by_unit[key][1] in html  # the unit's own page, with its name


async def test_a_summary_schedule_stores_the_coordinator_endpoints_chosen_and_refuses_another_projects(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker, clock: Clock
) -> None:
    own = await _coordinator_robot(sessionmaker, clock, B, "coord-robot-b")
    other = await _coordinator_robot(sessionmaker, clock, A, "coord-robot-a")
    assert (await login(app_client, "b-admin")).status == 303
    html = await (await app_client.get(f"/console/p/{B}/schedules")).text()
    assert f'name="ep_{own}"' in html and f'name="ep_{other}"' not in html  # the list: own project's only
    form = {"csrf": csrf_of(html), "kind": "summarise", "cron": "17 9 * * 1", "timezone": "Asia/Shanghai",
            "action": "save"}  # fmt: skip
    resp = await app_client.post(f"/console/p/{B}/schedules", data={**form, f"ep_{other}": str(other)})
    html = await resp.text()
    assert resp.status == 400 and f"#{other}" in html and "不属于你的项目" in html
    async with sessionmaker() as session:
        assert (await session.execute(select(Schedule))).first() is None

    resp = await app_client.post(f"/console/p/{B}/schedules", data={**form, f"ep_{own}": str(own)},
                                 allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    async with sessionmaker() as session:
        row = (await session.execute(select(Schedule))).scalar_one()
        ep = await session.get(ChannelEndpoint, own)
    assert ep is not None
    assert row.kind == "summarise" and row.params["endpoints"] == [
        {"kind": "wecom", "address": ep.address, "name": ep.name, "config": {"key_env": KEY_ENV}}
    ]
    # editing shows the stored endpoint ticked
    html = await (await app_client.get(f"/console/p/{B}/schedules/{row.id}")).text()
    assert f'name="ep_{own}" value="{own}" checked' in html
