"""DingTalk signed custom robot against the fake DingTalk (which recomputes the HMAC)."""

from __future__ import annotations

import pytest

from bot.channels import Outcome
from bot.channels.dingtalk import DingTalkAdapter
from bot.channels.message import Message, Text
from tests.channels.conftest import DINGTALK_TOKEN, RigFactory, summary_message

HELLO = Message("t", (Text("hello"),))


async def test_dingtalk_signs_each_request_freshly_and_the_fake_verifies_it(make_rig: RigFactory) -> None:
    rig = await make_rig("dingtalk")
    ticks = iter([1_764_000_000.0, 1_764_000_001.5])
    rig.fake.clock = lambda: 1_764_000_001.0
    rig.adapter.clock = lambda: next(ticks)
    (part,) = rig.adapter.render(summary_message())
    first, second = await rig.send(part), await rig.send(part)
    assert first.ok and second.ok
    a, b = rig.fake.received
    assert set(a.query) == {"access_token", "timestamp", "sign"}, "no sign params pile up"
    assert a.query["access_token"] == DINGTALK_TOKEN
    assert (a.query["timestamp"], b.query["timestamp"]) == ("1764000000000", "1764000001500")
    assert a.query["sign"] != b.query["sign"]
    assert a.json == part.payload and a.json["msgtype"] == "markdown"
    assert a.problems == [] and b.problems == []


def test_dingtalk_renders_tables_as_list_items_because_it_has_no_tables() -> None:
    (part,) = DingTalkAdapter().render(summary_message())
    text = part.payload["markdown"]["text"]
    assert "| --- |" not in text
    assert "- **R0001 产出数量指标第1项** · 分值: 5 · 得分: 4.5 · 得分率: 90.00%" in text


async def test_dingtalk_wrong_secret_is_a_permanent_310000(make_rig: RigFactory) -> None:
    rig = await make_rig("dingtalk", secret="the-real-secret-is-different")
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code, result.http_status) == (Outcome.PERMANENT, "310000", 200)
    assert rig.fake.received[0].problems == ["sign mismatch"]


async def test_dingtalk_a_clock_two_hours_off_fails_the_timestamp_check(make_rig: RigFactory) -> None:
    rig = await make_rig("dingtalk")
    rig.adapter.clock = lambda: rig.fake.clock() - 7200
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code) == (Outcome.PERMANENT, "310000")


async def test_dingtalk_130101_is_rate_limited_with_a_ten_minute_default_penalty(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig("dingtalk")
    rig.fake.script(rig.fake.throttled())
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code) == (Outcome.RATE_LIMITED, "130101")
    assert rig.adapter.default_penalty_s == 600


@pytest.mark.parametrize("code", [300001, 400013, 400101, 400102, 400106, 430101, 430102, 430103, 430104])
async def test_dingtalk_token_and_robot_errors_are_permanent(make_rig: RigFactory, code: int) -> None:
    rig = await make_rig("dingtalk")
    rig.fake.script(rig.fake.error(code))
    (result,) = await rig.send_message(HELLO)
    assert result.outcome is Outcome.PERMANENT


async def test_the_dingtalk_fake_keeps_throttling_during_its_penalty(make_rig: RigFactory) -> None:
    rig = await make_rig("dingtalk", rate_limit=(2, 60.0), penalty_s=600.0)
    outcomes = [(await rig.send(rig.adapter.render(HELLO)[0])).outcome for _ in range(4)]
    assert outcomes == [Outcome.OK, Outcome.OK, Outcome.RATE_LIMITED, Outcome.RATE_LIMITED]
    assert rig.fake.over_limit == 2
