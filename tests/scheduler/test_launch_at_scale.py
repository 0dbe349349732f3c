"""The set-based launch and remind paths: quiet hours on invitations, one link and one invitation
per unit across chunk boundaries, bulk endpoints, and concurrent remind runs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select

import scheduler.jobs
from scheduler.jobs import remind
from store.campaigns import hash_token, launch_campaign, make_link_token, reissue_link
from store.db import SessionMaker, transaction
from store.models import ChannelEndpoint, Link, OutboxMessage, Project, Unit
from store.outbox import EndpointSpec, ensure_endpoint, ensure_endpoints
from tests.conftest import Clock
from tests.scheduler.conftest import TEST_SECRET, count, make_campaign, outbox, unit_ids

POLICY = {"min_days_between": 2, "max_reminders": 2, "quiet_hours": ["22:00", "08:00"]}
URL = "https://jx.example.cn"
#: 2026-03-04 23:30 in Shanghai (inside 22:00–08:00); the next allowed minute is 08:00 = 00:00 UTC.
NIGHT = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
MORNING = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)


async def _add_units(sm: SessionMaker, project: Project, n: int, now: datetime) -> list[int]:
    async with transaction(sm) as session:
        await session.execute(
            insert(Unit),
            [
                {"project_id": project.id, "key": f"bulk-{i:05d}", "name": f"批量单位{i:05d}（示例）",
                 "channel_kind": "email", "channel_address": f"bulk-{i:05d}@example.cn", "channel_config": {},
                 "active": True, "created_at": now, "updated_at": now}
                for i in range(n)
            ],
        )  # fmt: skip
        stmt = select(Unit.id).where(Unit.key.like("bulk-%")).order_by(Unit.id)
        return list((await session.execute(stmt)).scalars())


async def test_invitations_written_by_a_launch_in_quiet_hours_wait_for_the_morning(
    sessionmaker: SessionMaker, project: Project, clock: Clock
) -> None:
    clock.now = NIGHT
    units = await unit_ids(sessionmaker, project, 3)
    await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    rows = await outbox(sessionmaker, kind="invite")
    assert len(rows) == 3
    assert {r.next_attempt_at for r in rows} == {MORNING}
    assert {r.created_at for r in rows} == {NIGHT}


async def test_invitations_written_by_a_launch_outside_quiet_hours_are_due_at_once(
    sessionmaker: SessionMaker, project: Project, clock: Clock
) -> None:
    units = await unit_ids(sessionmaker, project, 2)  # the clock starts at 09:00 Shanghai
    await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    assert {r.next_attempt_at for r in await outbox(sessionmaker, kind="invite")} == {clock()}


async def test_a_unit_added_late_and_invited_by_a_night_remind_run_is_invited_in_the_morning(
    sessionmaker: SessionMaker, project: Project, clock: Clock
) -> None:
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY)
    (late,) = await _add_units(sessionmaker, project, 1, clock())
    clock.now = NIGHT
    result = await remind(sessionmaker, campaign.id, now=clock(), secret=TEST_SECRET, public_url=URL)  # type: ignore[arg-type]
    assert result["invited"] == 1
    (row,) = [r for r in await outbox(sessionmaker, kind="invite") if r.created_at == NIGHT]
    assert row.dedupe_key == f"invite:{campaign.id}:{late}" and row.next_attempt_at == MORNING
    # The invitations of the morning launch are untouched.
    earlier = [r for r in await outbox(sessionmaker, kind="invite") if r.created_at != NIGHT]
    assert len(earlier) == 121 and {r.next_attempt_at for r in earlier} == {r.created_at for r in earlier}


async def test_bulk_launch_creates_exactly_one_link_and_one_invitation_per_unit_and_stores_no_token(
    sessionmaker: SessionMaker, project: Project, clock: Clock
) -> None:
    # 1,200 extra units: more than one chunk of links (1,000), invitations (500) and endpoints.
    await _add_units(sessionmaker, project, 1200, clock())
    async with transaction(sessionmaker) as session:  # an endpoint that exists already, stale name
        await ensure_endpoint(session, "email", "bulk-00007@example.cn", name="旧名称")
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY)
    async with sessionmaker() as session:
        units = {u.id: u for u in (await session.execute(select(Unit))).scalars()}
        links = list((await session.execute(select(Link).where(Link.campaign_id == campaign.id))).scalars())
        endpoints = {e.id: e for e in (await session.execute(select(ChannelEndpoint))).scalars()}
    rows = await outbox(sessionmaker, kind="invite")
    assert len(units) == 1321
    assert sorted(link.unit_id for link in links) == sorted(units)  # exactly one link per unit
    assert len(rows) == 1321
    by_link = {r.link_id: r for r in rows}
    for link in links:
        row = by_link[link.id]
        unit = units[link.unit_id]
        assert row.dedupe_key == f"invite:{campaign.id}:{unit.id}"
        assert row.payload["link_id"] == link.id and row.payload["unit_id"] == unit.id
        endpoint = endpoints[row.endpoint_id]
        assert (endpoint.kind, endpoint.address, endpoint.name) == (
            unit.channel_kind,
            unit.channel_address,
            unit.name,
        )
    assert len(endpoints) == len({(u.channel_kind, u.channel_address) for u in units.values()})
    # Only the hash of each token is stored, and neither the link rows nor the payloads hold a token.
    assert len({link.token_salt for link in links}) == len(links)
    stored = json.dumps([r.payload for r in rows], ensure_ascii=False) + json.dumps(
        [[link.token_salt, link.token_hash] for link in links]
    )
    for link in links:
        token = make_link_token(TEST_SECRET, link.token_salt)
        assert link.token_hash == hash_token(token) != token
        assert token not in stored
    # Launching again finds nothing to do.
    async with transaction(sessionmaker) as session:
        again = await launch_campaign(session, campaign.id, secret=TEST_SECRET, now=clock())  # type: ignore[arg-type]
    assert (again.links_created, again.invitations_enqueued) == (0, 0)
    assert await count(sessionmaker, Link) == 1321


async def test_ensure_endpoints_creates_the_missing_ones_and_updates_names_and_configs(
    sessionmaker: SessionMaker,
) -> None:
    async with transaction(sessionmaker) as session:
        old = await ensure_endpoint(session, "email", "a@example.cn", name="旧", config={"x": 1})
    async with transaction(sessionmaker) as session:
        got = await ensure_endpoints(
            session,
            {
                ("email", "a@example.cn"): EndpointSpec(name="新", config={"x": 2}),
                ("wecom", "robot-1"): EndpointSpec(name="群", config={}),
            },
        )
        plain = await ensure_endpoints(session, [("email", "a@example.cn"), ("slack", "C1")])
    assert got[("email", "a@example.cn")].id == old.id
    assert set(got) == {("email", "a@example.cn"), ("wecom", "robot-1")}
    assert set(plain) == {("email", "a@example.cn"), ("slack", "C1")}
    async with sessionmaker() as session:
        rows = {(e.kind, e.address): e for e in (await session.execute(select(ChannelEndpoint))).scalars()}
    assert len(rows) == 3
    assert (rows[("email", "a@example.cn")].name, rows[("email", "a@example.cn")].config) == ("新", {"x": 2})


async def test_concurrent_remind_runs_send_exactly_one_reminder_per_due_unit(
    sessionmaker: SessionMaker, project: Project, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler.jobs, "REMIND_CHUNK", 7)  # many small transactions to interleave
    units = await unit_ids(sessionmaker, project, 30)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    clock.advance(days=3)
    results = await asyncio.gather(
        *(
            remind(sessionmaker, campaign.id, now=clock(), secret=TEST_SECRET, public_url=URL)  # type: ignore[arg-type]
            for _ in range(3)
        )
    )
    assert sum(r["reminded"] for r in results) == 30
    rows = await outbox(sessionmaker, kind="remind")
    assert sorted(r.dedupe_key for r in rows) == sorted(f"remind:{campaign.id}:{u}:1" for u in units)
    async with sessionmaker() as session:
        counts = (
            await session.execute(
                select(Link.reminder_count, func.count())
                .where(Link.campaign_id == campaign.id)
                .group_by(Link.reminder_count)
            )
        ).all()
    assert [tuple(c) for c in counts] == [(1, 30)]
    assert await count(sessionmaker, OutboxMessage, OutboxMessage.kind == "invite") == 30


async def test_a_reissued_link_keeps_the_units_reminder_count_so_its_next_reminder_is_sent(
    sessionmaker: SessionMaker, project: Project, clock: Clock
) -> None:
    units = await unit_ids(sessionmaker, project, 1)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    clock.advance(days=3)
    await remind(sessionmaker, campaign.id, now=clock(), secret=TEST_SECRET, public_url=URL)  # type: ignore[arg-type]
    async with transaction(sessionmaker) as session:
        old = (await session.execute(select(Link).where(Link.campaign_id == campaign.id))).scalar_one()
        new = await reissue_link(session, old.id, secret=TEST_SECRET, now=clock())  # type: ignore[arg-type]
    clock.advance(days=3)
    result = await remind(sessionmaker, campaign.id, now=clock(), secret=TEST_SECRET, public_url=URL)  # type: ignore[arg-type]
    assert result["reminded"] == 1
    latest = (await outbox(sessionmaker, kind="remind"))[-1]
    assert latest.dedupe_key == f"remind:{campaign.id}:{units[0]}:2" and latest.link_id == new.id


def test_quiet_until_is_the_stores_helper_reexported_by_the_scheduler() -> None:
    from store.quiet import quiet_until

    assert scheduler.jobs.quiet_until is quiet_until
    assert quiet_until(NIGHT, POLICY["quiet_hours"], ZoneInfo("Asia/Shanghai")) == MORNING
