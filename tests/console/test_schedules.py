"""Console schedules: a bad cron is shown next to its field, the preview lists the next five fire
times in the project's timezone, and saving, pausing and "run now" work (and are audited)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from store.db import SessionMaker
from store.models import AuditEntry, Schedule, ScheduleRun
from tests.console.conftest import A, Accounts, form_csrf, login


async def test_a_bad_cron_is_reported_at_the_field_and_nothing_is_saved(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker
) -> None:
    assert (await login(app_client, "admin")).status == 303
    token = await form_csrf(app_client, f"/console/p/{A}/schedules")
    resp = await app_client.post(f"/console/p/{A}/schedules",
                                 data={"csrf": token, "kind": "recompute", "cron": "7 25 * * *", "action": "save"})  # fmt: skip
    html = await resp.text()
    assert resp.status == 400
    assert 'id="s-cron-err"' in html and "0-23" in html and 'aria-invalid="true"' in html
    async with sessionmaker() as session:
        assert (await session.execute(select(Schedule))).first() is None


async def test_preview_then_save_pause_and_run_now(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker
) -> None:
    assert (await login(app_client, "admin")).status == 303
    token = await form_csrf(app_client, f"/console/p/{A}/schedules")
    form = {"csrf": token, "kind": "recompute", "cron": "17 9 * * 1", "timezone": "Asia/Shanghai"}
    resp = await app_client.post(f"/console/p/{A}/schedules", data={**form, "action": "preview"})
    html = await resp.text()
    assert resp.status == 200 and 'id="preview"' in html and html.count(" 09:17 周一") == 5
    async with sessionmaker() as session:
        assert (await session.execute(select(Schedule))).first() is None  # a preview saves nothing
    resp = await app_client.post(
        f"/console/p/{A}/schedules", data={**form, "action": "save"}, allow_redirects=False
    )
    assert resp.status == 303
    async with sessionmaker() as session:
        [row] = (await session.execute(select(Schedule))).scalars().all()
    for action in ("pause", "run-now"):
        resp = await app_client.post(f"/console/p/{A}/schedules/{row.id}/{action}", data={"csrf": token},
                                     allow_redirects=False)  # fmt: skip
        assert resp.status == 303
    async with sessionmaker() as session:
        row = (await session.execute(select(Schedule))).scalar_one()
        runs = (await session.execute(select(ScheduleRun))).scalars().all()
        actions = [e.action for e in (await session.execute(select(AuditEntry))).scalars()]
    assert row.enabled is False and [r.status for r in runs] == ["requested"]
    assert {"schedule.create", "schedule.pause", "schedule.run-now"} <= set(actions)
    html = await (await app_client.get(f"/console/p/{A}/schedules/{row.id}")).text()
    assert "已请求" in html  # the requested run, in the runs log
