"""The remind job, called directly with an injected clock, on the example project."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from scheduler.jobs import quiet_until, remind
from store.campaigns import close_campaign
from store.db import SessionMaker, transaction
from store.models import Link, PaymentConfirmation, Unit
from tests.conftest import Clock
from tests.scheduler.conftest import TEST_SECRET, answer, make_campaign, outbox, unit_ids

POLICY = {"min_days_between": 2, "max_reminders": 2, "quiet_hours": ["22:00", "08:00"]}
URL = "https://jx.example.cn"


async def _run(sm: SessionMaker, campaign_id: int, clock: Clock) -> dict:
    return await remind(sm, campaign_id, now=clock(), secret=TEST_SECRET, public_url=URL)


async def test_launch_invites_and_the_first_reminder_run_reminds_nobody(sessionmaker, project, clock) -> None:
    units = await unit_ids(sessionmaker, project, 5)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    result = await _run(sessionmaker, campaign.id, clock)
    assert result["invited"] == 0 and result["reminded"] == 0 and result["too_soon"] == 5
    assert len(await outbox(sessionmaker, kind="invite")) == 5


async def test_draft_campaign_gets_no_reminders(sessionmaker, project, clock) -> None:
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, launch=False)
    clock.advance(days=3)
    assert (await _run(sessionmaker, campaign.id, clock))["reminded"] == 0
    assert await outbox(sessionmaker) == []


async def test_reminder_waits_the_minimum_gap_then_goes_to_units_that_owe_an_answer(
    sessionmaker, project, clock
) -> None:
    units = await unit_ids(sessionmaker, project, 3)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    clock.advance(days=1)
    assert (await _run(sessionmaker, campaign.id, clock))["reminded"] == 0  # 1 day < 2-day gap
    clock.advance(days=1)
    result = await _run(sessionmaker, campaign.id, clock)
    assert result["reminded"] == 3
    rows = await outbox(sessionmaker, kind="remind")
    assert sorted(r.dedupe_key for r in rows) == sorted(f"remind:{campaign.id}:{u}:1" for u in units)
    payload = rows[0].payload
    assert payload["link"]["url"] == "{link_url}" and payload["link_id"] == rows[0].link_id
    assert "token" not in str(payload).lower()
    async with sessionmaker() as session:
        links = (await session.execute(select(Link).where(Link.campaign_id == campaign.id))).scalars().all()
    assert {link.reminder_count for link in links} == {1}
    assert {link.last_reminded_at for link in links} == {clock()}


async def test_reminders_stop_at_the_maximum_count(sessionmaker, project, clock) -> None:
    units = await unit_ids(sessionmaker, project, 2)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    await _run(sessionmaker, campaign.id, clock)
    sent = []
    for _ in range(4):
        clock.advance(days=3)
        sent.append((await _run(sessionmaker, campaign.id, clock))["reminded"])
    assert sent == [2, 2, 0, 0]
    assert len(await outbox(sessionmaker, kind="remind")) == 4


async def test_reminder_skips_units_that_already_answered_and_confirmed(sessionmaker, project, clock) -> None:
    units = await unit_ids(sessionmaker, project, 2)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    await answer(sessionmaker, campaign.id, units[0], now=clock(), overall="非常满意")
    # The unit also confirms every payment it received: nothing is left to remind it about.
    async with transaction(sessionmaker) as session:
        from store.models import Disbursement

        for d in (
            await session.execute(select(Disbursement).where(Disbursement.unit_id == units[0]))
        ).scalars():
            session.add(
                PaymentConfirmation(
                    project_id=project.id, disbursement_id=d.id, unit_id=units[0], status="confirmed",
                    amount_fen=d.amount_fen, submission_key=f"c{d.id}", submitted_at=clock(),
                )
            )  # fmt: skip
    clock.advance(days=3)
    await _run(sessionmaker, campaign.id, clock)
    reminded = {r.dedupe_key.split(":")[2] for r in await outbox(sessionmaker, kind="remind")}
    assert reminded == {str(units[1])}


async def test_answered_unit_is_only_reminded_about_its_payments(sessionmaker, project, clock) -> None:
    units = await unit_ids(sessionmaker, project, 1)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    await answer(sessionmaker, campaign.id, units[0], now=clock(), overall="非常满意")
    clock.advance(days=3)
    await _run(sessionmaker, campaign.id, clock)
    (row,) = await outbox(sessionmaker, kind="remind")
    text = row.payload["blocks"][0]["text"]
    assert "确认收到的项目资金" in text and "问卷" not in text


async def test_no_reminder_after_the_campaign_closed(sessionmaker, project, clock) -> None:
    units = await unit_ids(sessionmaker, project, 2)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    async with transaction(sessionmaker) as session:
        await close_campaign(session, campaign.id, now=clock())
    clock.advance(days=3)
    result = await _run(sessionmaker, campaign.id, clock)
    assert result["reminded"] == 0 and "skipped" in result
    assert await outbox(sessionmaker, kind="remind") == []


async def test_no_reminder_after_the_closing_time_even_if_not_closed(sessionmaker, project, clock) -> None:
    units = await unit_ids(sessionmaker, project, 2)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units, days=2)
    clock.advance(days=3)
    assert (await _run(sessionmaker, campaign.id, clock))["reminded"] == 0


async def test_reminder_due_in_quiet_hours_is_deferred_to_the_next_allowed_minute(
    sessionmaker, project, clock
) -> None:
    units = await unit_ids(sessionmaker, project, 2)
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY, unit_ids=units)
    # 2026-03-04 23:30 in Shanghai (15:30 UTC) is inside 22:00–08:00.
    clock.now = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
    result = await _run(sessionmaker, campaign.id, clock)
    assert result["reminded"] == 2 and result["deferred"] == 2
    for row in await outbox(sessionmaker, kind="remind"):
        assert row.next_attempt_at == datetime(2026, 3, 5, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
        assert row.not_after == campaign.closes_at


async def test_unit_added_after_launch_is_invited_by_the_next_reminder_run(
    sessionmaker, project, clock
) -> None:
    campaign = await make_campaign(sessionmaker, project, clock, policy=POLICY)  # every active unit
    assert len(await outbox(sessionmaker, kind="invite")) == 121
    async with transaction(sessionmaker) as session:
        session.add(Unit(project_id=project.id, key="late-unit", name="新增单位（示例）", channel_kind="email",
                         channel_address="late@example.cn", created_at=clock(), updated_at=clock()))  # fmt: skip
    result = await _run(sessionmaker, campaign.id, clock)
    assert result["invited"] == 1
    assert (await _run(sessionmaker, campaign.id, clock))["invited"] == 0
    assert len(await outbox(sessionmaker, kind="invite")) == 122


def test_quiet_hours_wrap_midnight_and_leave_the_day_alone() -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    quiet = ["22:00", "08:00"]
    noon = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 local
    early = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 07:00 local next day
    assert quiet_until(noon, quiet, tz) is None
    assert quiet_until(early, quiet, tz) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert quiet_until(noon, ["12:00", "13:00"], tz) == noon + timedelta(hours=1)
