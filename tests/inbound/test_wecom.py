"""WeCom: the official 加解密 sample vectors (URL verification and an app callback), the AI bot's
JSON callback answered on its response_url, and refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import keys
from bot.inbound.handle import ENV
from bot.inbound.wecom import decrypt, signature
from store.models import ChannelEndpoint, InboundEvent, OutboxMessage
from tests.fakes.inbound import (
    WECOM_DOC_AES_KEY,
    WECOM_DOC_CORP_ID,
    WECOM_DOC_ECHO_PLAIN,
    WECOM_DOC_POST_ENCRYPT,
    WECOM_DOC_POST_QUERY,
    WECOM_DOC_POST_XML,
    WECOM_DOC_TOKEN,
    WECOM_DOC_VERIFY,
    wecom_aibot_message,
    wecom_decrypt,
    wecom_encrypt,
    wecom_signature,
)
from tests.inbound.conftest import CODE, ENV_VALUES, Bot

TOKEN, AES = ENV_VALUES["WC_TOKEN"], ENV_VALUES["WC_AES"]
CHAT = "wrkSFfCgAAtMQKg4xqDatM5C9IDHFpTw"


def test_the_official_sample_signature_and_ciphertext_check_out_both_ways() -> None:
    q = WECOM_DOC_POST_QUERY
    expected = q["msg_signature"]
    assert wecom_signature(WECOM_DOC_TOKEN, q["timestamp"], q["nonce"], WECOM_DOC_POST_ENCRYPT) == expected
    assert signature(WECOM_DOC_TOKEN, q["timestamp"], q["nonce"], WECOM_DOC_POST_ENCRYPT) == expected
    msg, receiver = wecom_decrypt(WECOM_DOC_AES_KEY, WECOM_DOC_POST_ENCRYPT)
    assert receiver == WECOM_DOC_CORP_ID.encode() and b"<Content><![CDATA[hello]]></Content>" in msg
    assert decrypt(WECOM_DOC_AES_KEY, WECOM_DOC_POST_ENCRYPT, WECOM_DOC_CORP_ID) == msg


@pytest.fixture
def official(bot: Bot) -> Bot:
    """The app reconfigured with the official sample's token, key and corp id (an app callback)."""
    app = bot.client.app
    app[ENV].update({"WC_TOKEN": WECOM_DOC_TOKEN, "WC_AES": WECOM_DOC_AES_KEY})
    settings = app[keys.SETTINGS]
    settings.inbound["wecom"] = {**settings.inbound["wecom"], "receive_id": WECOM_DOC_CORP_ID}
    return bot


async def test_url_verification_with_the_official_sample_returns_the_plain_echostr(official: Bot) -> None:
    official.clock.now = datetime.fromtimestamp(int(WECOM_DOC_VERIFY["timestamp"]), UTC)
    resp = await official.client.get("/bot/wecom", params=WECOM_DOC_VERIFY)
    assert resp.status == 200
    assert await resp.read() == WECOM_DOC_ECHO_PLAIN.encode()  # no quotes, BOM or newline
    tampered = {**WECOM_DOC_VERIFY, "nonce": "1"}
    assert (await official.client.get("/bot/wecom", params=tampered)).status == 401


async def test_the_official_app_callback_is_verified_decrypted_and_answered_by_app_message(
    official: Bot,
) -> None:
    official.clock.now = datetime.fromtimestamp(int(WECOM_DOC_POST_QUERY["timestamp"]), UTC)
    resp = await official.client.post(
        "/bot/wecom", params=WECOM_DOC_POST_QUERY, data=WECOM_DOC_POST_XML.encode()
    )
    assert resp.status == 200 and await resp.read() == b""  # an empty answer stops WeCom's retries
    await official.deliver()
    [reply] = official.cloud.replies("wecom")
    assert reply.path == "/cgi-bin/message/send" and reply.query == {"access_token": "wx-token"}
    assert reply.json["msgtype"] == "markdown" and reply.json["agentid"] == 1000002
    assert "尚未连接" in reply.json["markdown"]["content"]  # "hello" from an unconnected member
    async with official.sessionmaker() as session:
        event = (await session.execute(select(InboundEvent))).scalar_one()
    assert event.event_id == "4561255354251345929"


def aibot_request(
    bot: Bot, doc: dict[str, Any], *, token: str = TOKEN, ts: int | None = None
) -> tuple[dict[str, str], bytes]:
    encrypt = wecom_encrypt(AES, json.dumps(doc, ensure_ascii=False).encode(), "")
    stamp = str(ts if ts is not None else int(bot.clock().timestamp()))
    query = {
        "msg_signature": wecom_signature(token, stamp, "n0nce", encrypt),
        "timestamp": stamp,
        "nonce": "n0nce",
    }
    return query, json.dumps({"encrypt": encrypt}).encode()


async def test_an_ai_bot_mention_is_answered_once_on_its_response_url(bot: Bot) -> None:
    await bot.connect("wecom", CHAT)
    url = f"{bot.cloud.base_url}/cgi-bin/aibot/response?response_code=rc-1"
    query, body = aibot_request(bot, wecom_aibot_message("m-1", CHAT, "得分", response_url=url))
    for _ in range(2):  # WeCom retries when it gets no answer in time
        assert (await bot.client.post("/bot/wecom", params=query, data=body)).status == 200
    await bot.deliver()
    [reply] = bot.cloud.replies("wecom")
    assert reply.path == "/cgi-bin/aibot/response" and reply.json["msgtype"] == "markdown"
    assert CODE in reply.json["markdown"]["content"]


async def test_a_bad_signature_or_an_old_timestamp_is_refused(bot: Bot) -> None:
    url = f"{bot.cloud.base_url}/cgi-bin/aibot/response?response_code=rc-2"
    doc = wecom_aibot_message("m-2", CHAT, "得分", response_url=url)
    query, body = aibot_request(bot, doc, token="other-token")
    assert (await bot.client.post("/bot/wecom", params=query, data=body)).status == 401
    query, body = aibot_request(bot, doc, ts=int(bot.clock().timestamp()) - 7200)
    assert (await bot.client.post("/bot/wecom", params=query, data=body)).status == 401
    async with bot.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(InboundEvent)) == 0


async def test_a_reply_url_outside_the_vendor_is_never_called(bot: Bot) -> None:
    await bot.connect("wecom", CHAT)
    doc = wecom_aibot_message("m-3", CHAT, "得分", response_url="http://169.254.169.254/latest/meta-data")
    query, body = aibot_request(bot, doc)
    assert (await bot.client.post("/bot/wecom", params=query, data=body)).status == 200
    assert await bot.deliver() == 0
    assert bot.cloud.replies("wecom") == []


async def test_a_used_up_response_url_fails_that_reply_but_not_the_chat(bot: Bot) -> None:
    await bot.connect("wecom", CHAT)
    url = f"{bot.cloud.base_url}/cgi-bin/aibot/response?response_code=rc-9"
    for msgid in ("m-4", "m-5"):  # two messages handed the same (already used) response_url
        query, body = aibot_request(bot, wecom_aibot_message(msgid, CHAT, "帮助", response_url=url))
        assert (await bot.client.post("/bot/wecom", params=query, data=body)).status == 200
    await bot.deliver()
    async with bot.sessionmaker() as session:
        rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().all()
        endpoint = (await session.execute(select(ChannelEndpoint))).scalar_one()
    assert [r.status for r in rows] == ["sent", "failed"]
    assert endpoint.disabled_at is None
