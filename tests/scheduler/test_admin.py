"""Schedules as data: cron validation messages, the change log, the admin API and the CLI."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.app import create_app
from cli.main import main as cli_main
from store.cron import CronError, next_fire_times, validate_cron
from store.db import transaction
from store.models import Schedule, ScheduleChange
from store.tokens import create_token
from tests.scheduler.conftest import CODE, count


@pytest.mark.parametrize(
    ("expr", "zh", "en"),
    [
        ("0 25 * * *", "第2段 小时 超出范围 0-23", "field 2 (hour) out of range 0-23"),
        ("61 * * * *", "第1段 分钟 超出范围 0-59", "field 1 (minute) out of range 0-59"),
        ("0 9 32 * *", "第3段 日 超出范围 1-31", "field 3 (day of month) out of range 1-31"),
        ("0 9 * 13 *", "第4段 月 超出范围 1-12", "field 4 (month) out of range 1-12"),
        ("0 9 * * 8", "第5段 星期 超出范围 0-7", "field 5 (day of week) out of range 0-7"),
        ("0 9 * *", "应有 5 段", "has 5 fields"),
        ("*/0 * * * *", "第1段 分钟 步长不能为 0", "step must be positive"),
        ("0 9-5 * * *", "第2段 小时 范围起点大于终点", "range start is after its end"),
        ("0 9 * * funday", "第5段 星期 无法识别", "cannot read"),
        ("0 9 1 * 1", "不能同时限定", "cannot both be restricted"),
    ],
)
def test_bad_cron_names_the_field_and_what_is_wrong(expr: str, zh: str, en: str) -> None:
    with pytest.raises(CronError) as info:
        validate_cron(expr)
    assert zh in info.value.zh and en in info.value.en


def test_weekdays_follow_crontab_not_apscheduler_numbering() -> None:
    monday_9am = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
    sundays = next_fire_times("0 9 * * 0", "Asia/Shanghai", now=monday_9am, count=2)
    assert [t.strftime("%a %Y-%m-%d %H:%M") for t in sundays] == [
        "Sun 2026-03-08 09:00",
        "Sun 2026-03-15 09:00",
    ]
    weekdays = next_fire_times("0 9 * * 1-5", "Asia/Shanghai", now=monday_9am, count=5)
    assert [t.strftime("%a") for t in weekdays] == ["Tue", "Wed", "Thu", "Fri", "Mon"]
    assert all(t.utcoffset().total_seconds() == 8 * 3600 for t in weekdays)  # type: ignore[union-attr]


@pytest.fixture
async def api(aiohttp_client, settings, sessionmaker, clock, project):
    app = create_app(settings, sessionmaker=sessionmaker, clock=clock, channels={}, start_workers=False)
    client = await aiohttp_client(app)
    async with transaction(sessionmaker) as session:
        _, admin = await create_token(session, name="ops", role="admin", now=clock(), all_projects=True)
        _, reader = await create_token(
            session, name="viewer", role="coordinator", now=clock(), projects=[project.id]
        )
    client.admin = {"Authorization": f"Bearer {admin}"}
    client.reader = {"Authorization": f"Bearer {reader}"}
    return client


async def test_api_creates_lists_changes_pauses_and_removes_a_schedule(api, sessionmaker) -> None:
    body = {"kind": "recompute", "project": CODE, "cron": "0 9 * * 1-5", "grace_seconds": 600}
    resp = await api.post("/api/schedules", json=body, headers=api.admin)
    assert resp.status == 201, await resp.text()
    data = (await resp.json())["data"]
    sid = data["id"]
    assert data["timezone"] == "Asia/Shanghai" and len(data["next_fire_times"]) == 5
    assert data["next_fire_times"][0] == "2026-03-03T09:00:00+08:00"

    listed = (await (await api.get("/api/schedules", headers=api.reader)).json())["data"]
    assert [s["id"] for s in listed] == [sid]

    resp = await api.patch(f"/api/schedules/{sid}", json={"cron": "30 18 * * *"}, headers=api.admin)
    data = (await resp.json())["data"]
    assert data["cron"] == "30 18 * * *" and data["version"] == 2
    assert data["next_fire_times"][0] == "2026-03-02T18:30:00+08:00"
    assert data["changes"][-1]["by"] == "api:ops"
    assert (
        data["changes"][-1]["before"]["cron"] == "0 9 * * 1-5"
        and data["changes"][-1]["after"]["cron"] == "30 18 * * *"
    )

    data = (await (await api.post(f"/api/schedules/{sid}/pause", headers=api.admin)).json())["data"]
    assert data["enabled"] is False and data["next_fire_times"] == []
    data = (await (await api.post(f"/api/schedules/{sid}/resume", headers=api.admin)).json())["data"]
    assert data["enabled"] is True

    resp = await api.post(f"/api/schedules/{sid}/run-now", headers=api.admin)
    assert resp.status == 202
    runs = (await (await api.get(f"/api/schedules/{sid}/runs", headers=api.reader)).json())["data"]
    assert [r["status"] for r in runs] == ["requested"]

    assert (await api.delete(f"/api/schedules/{sid}", headers=api.admin)).status == 200
    assert (await api.get(f"/api/schedules/{sid}", headers=api.reader)).status == 404
    actions = [c.action for c in (await _changes(sessionmaker, sid))]
    assert actions == ["create", "update", "pause", "resume", "remove"]


async def _changes(sm, sid):
    async with sm() as session:
        stmt = select(ScheduleChange).where(ScheduleChange.schedule_id == sid).order_by(ScheduleChange.id)
        return list((await session.execute(stmt)).scalars())


async def test_api_rejects_a_bad_cron_with_400_and_stores_nothing(api, sessionmaker) -> None:
    body = {"kind": "recompute", "project": CODE, "cron": "0 25 * * *"}
    resp = await api.post("/api/schedules", json=body, headers=api.admin)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert "第2段 小时 超出范围 0-23" in error["message"]
    assert "field 2 (hour) out of range 0-23" in error["message_en"]
    assert error["where"] == "cron"
    assert await count(sessionmaker, Schedule) == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"kind": "remind", "project": CODE, "cron": "0 9 * * *"}, "campaign_id"),
        ({"kind": "nap", "project": CODE, "cron": "0 9 * * *"}, "kind"),
        ({"kind": "recompute", "project": CODE, "cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        (
            {
                "kind": "summarise",
                "project": CODE,
                "cron": "0 9 * * *",
                "params": {"endpoints": [{"kind": "pigeon"}]},
            },
            "params.endpoints[0].kind",
        ),
        (
            {
                "kind": "summarise",
                "project": CODE,
                "cron": "0 9 * * *",
                "params": {"quiet_hours": ["25:00", "8"]},
            },
            "params.quiet_hours",
        ),
        ({"kind": "recompute", "project": CODE, "cron": "0 9 * * *", "grace_seconds": -1}, "grace_seconds"),
    ],
)
async def test_api_names_the_bad_field(api, sessionmaker, body, where) -> None:
    resp = await api.post("/api/schedules", json=body, headers=api.admin)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["where"].startswith(where)
    assert await count(sessionmaker, Schedule) == 0


async def test_api_needs_an_admin_token_to_write(api) -> None:
    body = {"kind": "recompute", "project": CODE, "cron": "0 9 * * *"}
    assert (await api.post("/api/schedules", json=body)).status == 401
    assert (await api.post("/api/schedules", json=body, headers=api.reader)).status == 403


async def _cli(db_url: str, tmp_path, *argv: str) -> tuple[int, str, str]:
    """The real command line (its own engine and event loop, in a worker thread)."""
    out, err = io.StringIO(), io.StringIO()
    args = ["--database-url", db_url, "--data-dir", str(tmp_path), "schedule", *argv]
    code = await asyncio.to_thread(cli_main, args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def migrated_db(db_url, clock):
    """The example project in a database migrated by Alembic, as the CLI expects."""
    from config.loader import load_definition
    from store.db import create_engine, make_sessionmaker
    from store.migrate import upgrade
    from store.projects import load_project
    from tests.conftest import EXAMPLE_PROJECT

    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        async with transaction(make_sessionmaker(engine)) as session:
            await load_project(session, load_definition(EXAMPLE_PROJECT), now=clock(), by="test")
    finally:
        await engine.dispose()
    return db_url


async def test_cli_add_set_pause_list_run_and_reject_a_bad_cron(migrated_db, tmp_path) -> None:
    db = migrated_db
    code, out, _ = await _cli(db, tmp_path, "add", "recompute", CODE, "0 9 * * 1-5", "--grace", "900")
    assert code == 0 and "#1 recompute" in out and "next:" in out
    code, _, err = await _cli(db, tmp_path, "set", "1", "--cron", "0 25 * * *")
    assert code == 1 and "第2段 小时 超出范围 0-23" in err and "field 2 (hour) out of range 0-23" in err
    code, out, _ = await _cli(db, tmp_path, "pause", "1")
    assert code == 0 and "暂停" in out
    code, out, _ = await _cli(db, tmp_path, "list")
    assert "#1 recompute" in out and "paused" in out
    code, out, _ = await _cli(db, tmp_path, "run-now", "1")
    assert code == 0 and '"status": "ok"' in out
    code, _, err = await _cli(db, tmp_path, "remove", "7")
    assert code == 1 and "no such schedule: 7" in err
