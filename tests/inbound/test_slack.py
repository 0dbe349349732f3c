"""Slack: the documented signing example, the 5-minute window, url_verification, a slash command
answered in the channel on its response_url, and an app_mention answered by chat.postMessage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot import keys
from bot.inbound.handle import ENV
from bot.inbound.slack import signature
from store.models import OutboxMessage
from tests.fakes.inbound import (
    SLACK_DOC_BODY,
    SLACK_DOC_SECRET,
    SLACK_DOC_SIGNATURE,
    SLACK_DOC_TIMESTAMP,
    slack_command_body,
    slack_headers,
    slack_mention_event,
)
from tests.inbound.conftest import CODE, ENV_VALUES, Bot

SECRET = ENV_VALUES["SL_SECRET"]
CHANNEL = "C0JIXIAO1"


def test_the_documented_signing_example_gives_the_documented_signature() -> None:
    body = SLACK_DOC_BODY.encode()
    assert (
        slack_headers(SLACK_DOC_SECRET, SLACK_DOC_TIMESTAMP, body)["X-Slack-Signature"] == SLACK_DOC_SIGNATURE
    )
    assert signature(SLACK_DOC_SECRET, SLACK_DOC_TIMESTAMP, body) == SLACK_DOC_SIGNATURE


async def test_the_documented_request_is_accepted_at_its_time(bot: Bot) -> None:
    bot.client.app[ENV]["SL_SECRET"] = SLACK_DOC_SECRET
    bot.clock.now = datetime.fromtimestamp(int(SLACK_DOC_TIMESTAMP) + 60, UTC)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": SLACK_DOC_TIMESTAMP,
        "X-Slack-Signature": SLACK_DOC_SIGNATURE,
    }
    resp = await bot.client.post("/bot/slack", data=SLACK_DOC_BODY.encode(), headers=headers)
    assert resp.status == 200
    async with bot.sessionmaker() as session:
        row = (await session.execute(select(OutboxMessage))).scalar_one()
    assert row.dedupe_key == "reply:slack:cmd:398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    # ... and the same request six minutes later is a replay outside the window.
    bot.clock.now = datetime.fromtimestamp(int(SLACK_DOC_TIMESTAMP) + 360, UTC)
    resp = await bot.client.post("/bot/slack", data=SLACK_DOC_BODY.encode(), headers=headers)
    assert resp.status == 401


async def post(
    bot: Bot, body: bytes, content_type: str, *, ts: int | None = None, secret: str = SECRET
) -> Any:
    stamp = str(ts if ts is not None else int(bot.clock().timestamp()))
    headers = {"Content-Type": content_type, **slack_headers(secret, stamp, body)}
    return await bot.client.post("/bot/slack", data=body, headers=headers)


async def test_url_verification_is_answered_with_the_challenge(bot: Bot) -> None:
    body = json.dumps(
        {
            "token": "x",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )
    resp = await post(bot, body.encode(), "application/json")
    assert (await resp.json()) == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


async def test_a_slash_command_is_acknowledged_then_answered_in_the_channel(bot: Bot) -> None:
    await bot.connect("slack", CHANNEL)
    url = f"{bot.cloud.base_url}/commands/T1/1/abc"
    resp = await post(bot, slack_command_body("/jixiao", "未确认", channel=CHANNEL, response_url=url, trigger="t.1"),
                      "application/x-www-form-urlencoded")  # fmt: skip
    assert resp.status == 200 and await resp.read() == b""
    await bot.deliver()
    [reply] = bot.cloud.replies("slack")
    assert reply.path == "/commands/T1/1/abc" and reply.json["response_type"] == "in_channel"
    assert "未确认拨付" in reply.json["text"] and CODE in reply.json["text"]


async def test_an_app_mention_is_answered_with_chat_post_message(bot: Bot) -> None:
    await bot.connect("slack", CHANNEL)
    body = json.dumps(slack_mention_event("Ev01", CHANNEL, "帮助"), ensure_ascii=False).encode()
    assert (await post(bot, body, "application/json")).status == 200
    assert (await post(bot, body, "application/json")).status == 200  # Slack's retry of the same event
    await bot.deliver()
    [reply] = bot.cloud.replies("slack")
    assert reply.path == "/api/chat.postMessage" and reply.json["channel"] == CHANNEL
    assert reply.headers["Authorization"] == "Bearer xoxb-test"
    assert "/score" in reply.json["text"]


async def test_a_bad_signature_or_a_request_older_than_five_minutes_is_refused(bot: Bot) -> None:
    body = json.dumps(slack_mention_event("Ev02", CHANNEL, "得分")).encode()
    assert (await post(bot, body, "application/json", secret="nope")).status == 401
    old = int((bot.clock() - timedelta(minutes=5, seconds=1)).timestamp())
    assert (await post(bot, body, "application/json", ts=old)).status == 401
    async with bot.sessionmaker() as session:
        assert (await session.execute(select(OutboxMessage))).first() is None


async def test_a_vendor_that_is_not_configured_has_no_route(bot: Bot) -> None:
    del bot.client.app[keys.SETTINGS].inbound["slack"]
    body = json.dumps(slack_mention_event("Ev03", CHANNEL, "得分")).encode()
    assert (await post(bot, body, "application/json")).status == 404
