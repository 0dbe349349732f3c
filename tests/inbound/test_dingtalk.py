"""DingTalk: the timestamp+sign headers (1-hour window), replays by msgId, the reply on the
sessionWebhook before it expires, and a body arriving in several TCP segments."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from store.models import OutboxMessage
from tests.fakes.inbound import dingtalk_headers, dingtalk_message
from tests.inbound.conftest import CODE, ENV_VALUES, Bot

SECRET = ENV_VALUES["DT_SECRET"]
CONV = "cidXYZ123=="


def message(bot: Bot, msg_id: str, text: str, *, expires_in_min: int = 90) -> dict[str, Any]:
    expires = int((bot.clock() + timedelta(minutes=expires_in_min)).timestamp() * 1000)
    webhook = f"{bot.cloud.base_url}/robot/sendBySession?session=s-{msg_id}"
    return dingtalk_message(msg_id, CONV, text, webhook=webhook, expires_ms=expires)


async def send(bot: Bot, doc: dict[str, Any], *, ts_ms: int | None = None, secret: str = SECRET) -> Any:
    ts = str(ts_ms if ts_ms is not None else int(bot.clock().timestamp() * 1000))
    headers = {"Content-Type": "application/json", **dingtalk_headers(secret, ts)}
    return await bot.client.post(
        "/bot/dingtalk", data=json.dumps(doc, ensure_ascii=False).encode(), headers=headers
    )


async def test_a_signed_mention_is_answered_on_the_session_webhook_at_the_sender(bot: Bot) -> None:
    await bot.connect("dingtalk", CONV)
    assert (await send(bot, message(bot, "msg1", "未确认"))).status == 200
    await bot.deliver()
    [reply] = bot.cloud.replies("dingtalk")
    assert reply.path == "/robot/sendBySession" and reply.query == {"session": "s-msg1"}
    assert reply.json["msgtype"] == "markdown" and reply.json["at"] == {"atUserIds": ["staff-7"]}
    assert "未确认拨付" in reply.json["markdown"]["text"] and CODE in reply.json["markdown"]["text"]


async def test_a_bad_sign_or_a_timestamp_more_than_an_hour_off_is_refused(bot: Bot) -> None:
    assert (await send(bot, message(bot, "msg2", "得分"), secret="not-the-secret")).status == 401
    old = int((bot.clock() - timedelta(hours=1, minutes=1)).timestamp() * 1000)
    assert (await send(bot, message(bot, "msg2", "得分"), ts_ms=old)).status == 401
    recent = int((bot.clock() - timedelta(minutes=59)).timestamp() * 1000)
    assert (await send(bot, message(bot, "msg2", "得分"), ts_ms=recent)).status == 200


async def test_a_replayed_message_inside_the_window_is_answered_once(bot: Bot) -> None:
    doc = message(bot, "msg3", "得分")
    for _ in range(2):
        assert (await send(bot, doc)).status == 200
    await bot.deliver()
    assert len(bot.cloud.replies("dingtalk")) == 1


async def test_a_reply_that_could_not_go_out_before_the_session_webhook_expired_is_given_up(bot: Bot) -> None:
    await send(bot, message(bot, "msg4", "得分", expires_in_min=5))
    bot.clock.advance(minutes=6)
    await bot.deliver()
    assert bot.cloud.replies("dingtalk") == []
    async with bot.sessionmaker() as session:
        row = (await session.execute(select(OutboxMessage))).scalar_one()
    assert row.status == "dead" and "not_after" in row.last_error


async def test_a_body_split_over_several_tcp_segments_is_verified_and_answered(bot: Bot) -> None:
    await bot.connect("dingtalk", CONV)
    body = json.dumps(message(bot, "msg5", "帮助"), ensure_ascii=False).encode()
    ts = str(int(bot.clock().timestamp() * 1000))
    head = "".join(f"{k}: {v}\r\n" for k, v in dingtalk_headers(SECRET, ts).items())
    request = (
        f"POST /bot/dingtalk HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{head}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    server = bot.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    for start in range(0, len(request), 97):  # many small segments, cut inside UTF-8 characters
        writer.write(request[start : start + 97])
        await writer.drain()
        await asyncio.sleep(0)
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    await bot.deliver()
    assert len(bot.cloud.replies("dingtalk")) == 1
