"""Every time a person reads is in the project's timezone, with its name (issue: the invitation said
"截止 2026-04-01 01:00 UTC" while the unit page said 09:00（北京时间）)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from config.timefmt import local_time, zone_name
from scheduler.jobs import remind
from tests.conftest import Clock
from tests.scheduler.conftest import TEST_SECRET, make_campaign, outbox, unit_ids

# The default test clock is 2026-03-02 01:00 UTC; campaigns close 30 days later, 09:00 in Beijing.
DEADLINE = "2026-04-01 09:00（北京时间）"


def test_local_time_shows_the_projects_clock_and_names_the_zone() -> None:
    at = datetime(2026, 12, 15, 10, 0, tzinfo=UTC)
    assert local_time(at, "Asia/Shanghai") == "2026-12-15 18:00（北京时间）"
    assert local_time(at, ZoneInfo("Asia/Urumqi"), seconds=True) == "2026-12-15 16:00:00（乌鲁木齐时间）"
    assert local_time(at, "Europe/Berlin") == "2026-12-15 11:00（Europe/Berlin）"
    assert zone_name("Asia/Shanghai") == "北京时间"


def test_local_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_time(datetime(2026, 12, 15, 10, 0), "Asia/Shanghai")


async def test_the_invitation_deadline_is_in_beijing_time(sessionmaker, project, clock: Clock) -> None:
    units = await unit_ids(sessionmaker, project, 1)
    await make_campaign(sessionmaker, project, clock, unit_ids=units)
    (invite,) = await outbox(sessionmaker, kind="invite")
    text = json.dumps(invite.payload, ensure_ascii=False)
    assert f"截止 {DEADLINE}" in text
    assert "UTC" not in text


async def test_the_reminder_deadline_is_in_beijing_time(sessionmaker, project, clock: Clock) -> None:
    units = await unit_ids(sessionmaker, project, 1)
    campaign = await make_campaign(
        sessionmaker, project, clock, unit_ids=units, policy={"min_days_between": 2}
    )
    clock.advance(days=3)
    result = await remind(
        sessionmaker, campaign.id, now=clock(), secret=TEST_SECRET, public_url="https://jx.example.cn"
    )  # type: ignore[arg-type]
    assert result["reminded"] == 1
    (reminder,) = await outbox(sessionmaker, kind="remind")
    text = json.dumps(reminder.payload, ensure_ascii=False)
    assert f"请于 {DEADLINE} 前" in text
    assert "UTC" not in text
