"""Slack incoming webhook adapter against the fake Slack."""

from __future__ import annotations

import pytest

from bot.channels import Outcome
from bot.channels.message import Message, Text
from tests.channels.conftest import RigFactory, summary_message
from tests.fakes.vendors import Reply

HELLO = Message("t", (Text("hello"),))


async def test_slack_posts_text_and_a_mrkdwn_section_to_the_webhook_path(make_rig: RigFactory) -> None:
    rig = await make_rig("slack")
    (part,) = rig.adapter.render(summary_message())
    result = await rig.send(part)
    (rec,) = rig.fake.received
    assert result.ok and result.http_status == 200 and rec.problems == []
    assert rec.path == "/services/T0001/B0002/slackSecretPath99"
    assert rec.json == part.payload
    assert rec.json["blocks"][0]["text"] == {"type": "mrkdwn", "text": rec.json["text"]}
    assert "```" in rec.json["text"]


async def test_slack_429_is_rate_limited_with_the_retry_after_header(make_rig: RigFactory) -> None:
    rig = await make_rig("slack")
    rig.fake.script(rig.fake.throttled(retry_after_s=5))
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.retry_after_s) == (Outcome.RATE_LIMITED, 5.0)


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, "no_service"), (403, "invalid_token"), (410, "channel_is_archived"), (400, "invalid_payload")],
)
async def test_slack_dead_or_misconfigured_webhooks_are_permanent(
    make_rig: RigFactory, status: int, body: str
) -> None:
    rig = await make_rig("slack")
    rig.fake.script(Reply(status, body))
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code) == (Outcome.PERMANENT, body)


async def test_slack_http_200_without_ok_is_not_delivered(make_rig: RigFactory) -> None:
    rig = await make_rig("slack")
    rig.fake.script(Reply(200, "<html>captive portal</html>"))
    (result,) = await rig.send_message(HELLO)
    assert result.outcome is Outcome.TRANSIENT
