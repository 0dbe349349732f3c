"""WeCom group robot adapter against the fake WeCom."""

from __future__ import annotations

import pytest

from bot.channels import Outcome
from bot.channels.message import Message, Text
from tests.channels.conftest import WECOM_KEY, RigFactory, summary_message
from tests.fakes.vendors import Reply

HELLO = Message("t", (Text("hello"),))


async def test_wecom_posts_markdown_v2_with_the_key_in_the_query(make_rig: RigFactory) -> None:
    rig = await make_rig("wecom")
    (part,) = rig.adapter.render(summary_message())
    result = await rig.send(part)
    (rec,) = rig.fake.received
    assert result.outcome is Outcome.OK and result.vendor_code == "0"
    assert rec.path == "/cgi-bin/webhook/send" and rec.query == {"key": WECOM_KEY}
    assert rec.json == part.payload
    assert rec.json["msgtype"] == "markdown_v2"
    assert "| 指标 | 分值 | 得分 | 得分率 |" in rec.json["markdown_v2"]["content"]
    assert rec.problems == []


async def test_wecom_45009_in_an_http_200_reply_is_rate_limited(make_rig: RigFactory) -> None:
    rig = await make_rig("wecom")
    rig.fake.script(rig.fake.throttled(), rig.fake.ok())
    first, second = [await rig.send(rig.adapter.render(HELLO)[0]) for _ in range(2)]
    assert (first.outcome, first.http_status, first.vendor_code) == (Outcome.RATE_LIMITED, 200, "45009")
    assert first.retry_after_s is None and rig.adapter.default_penalty_s == 65
    assert second.ok


@pytest.mark.parametrize("code", [93000, 93004, 93008, 93017, 60020, 45002])
async def test_wecom_configuration_and_content_errors_are_permanent(make_rig: RigFactory, code: int) -> None:
    rig = await make_rig("wecom")
    rig.fake.script(rig.fake.error(code, "nope"))
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code, result.vendor_msg) == (Outcome.PERMANENT, str(code), "nope")


async def test_wecom_rejects_an_unknown_key_as_permanent(make_rig: RigFactory) -> None:
    rig = await make_rig("wecom", keys={"some-other-key"})
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code) == (Outcome.PERMANENT, "93000")


async def test_wecom_system_busy_is_transient(make_rig: RigFactory) -> None:
    rig = await make_rig("wecom")
    rig.fake.script(rig.fake.error(-1, "system busy"))
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code) == (Outcome.TRANSIENT, "-1")


async def test_wecom_unknown_errcode_in_an_http_200_reply_is_a_failure(make_rig: RigFactory) -> None:
    rig = await make_rig("wecom")
    rig.fake.script(rig.fake.error(12345, "something new"))
    (result,) = await rig.send_message(HELLO)
    assert result.outcome is Outcome.TRANSIENT and result.vendor_code == "12345"


async def test_wecom_http_200_without_an_errcode_is_ambiguous_not_ok(make_rig: RigFactory) -> None:
    rig = await make_rig("wecom")
    rig.fake.script(Reply(200, "<html>gateway</html>"))
    (result,) = await rig.send_message(HELLO)
    assert result.outcome is Outcome.AMBIGUOUS


async def test_the_wecom_fake_enforces_20_per_minute_with_the_real_throttle_code(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig("wecom", rate_limit=(20, 60.0))
    results = [await rig.send(rig.adapter.render(HELLO)[0]) for _ in range(22)]
    assert [r.outcome for r in results].count(Outcome.OK) == 20
    assert [r.vendor_code for r in results[20:]] == ["45009", "45009"]
    assert rig.fake.over_limit == 2


def test_wecom_budget_sits_under_the_vendor_cap() -> None:
    from bot.channels.wecom import WeComAdapter

    (budget,), (cap,) = WeComAdapter.limits, WeComAdapter.vendor_caps
    assert (cap.count, cap.per_seconds) == (20, 60.0) and budget.count < cap.count
