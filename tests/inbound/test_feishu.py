"""Feishu: the documented decryption example, URL verification, signature and window checks, and
the reply through the message API with a tenant access token."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from bot.inbound.feishu import decrypt
from store.models import InboundEvent
from tests.fakes.inbound import (
    FEISHU_DOC_CIPHERTEXT,
    FEISHU_DOC_KEY,
    FEISHU_DOC_PLAINTEXT,
    feishu_decrypt,
    feishu_encrypt,
    feishu_event,
    feishu_headers,
)
from tests.inbound.conftest import CODE, ENV_VALUES, Bot

KEY = ENV_VALUES["FS_ENCRYPT"]
VERIFY = ENV_VALUES["FS_VERIFY"]
CHAT = "oc_5ad11d72b830411d72b836c20"


def test_the_documented_encrypt_key_example_decrypts_to_hello_world() -> None:
    assert feishu_decrypt(FEISHU_DOC_KEY, FEISHU_DOC_CIPHERTEXT) == FEISHU_DOC_PLAINTEXT  # the test's own AES
    assert decrypt(FEISHU_DOC_KEY, FEISHU_DOC_CIPHERTEXT) == FEISHU_DOC_PLAINTEXT  # ours


async def send(
    bot: Bot, doc: dict[str, Any], *, ts: int | None = None, key: str = KEY, sign: bool = True
) -> Any:
    body = json.dumps({"encrypt": feishu_encrypt(KEY, json.dumps(doc, ensure_ascii=False).encode())}).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        stamp = str(ts if ts is not None else int(bot.clock().timestamp()))
        headers.update(feishu_headers(key, stamp, "nonce-42", body))
    return await bot.client.post("/bot/feishu", data=body, headers=headers)


async def test_url_verification_echoes_the_challenge_after_decrypting_it(bot: Bot) -> None:
    resp = await send(
        bot, {"challenge": "ajls384kdjx98XX", "token": VERIFY, "type": "url_verification"}, sign=False
    )
    assert resp.status == 200
    assert await resp.json() == {"challenge": "ajls384kdjx98XX"}
    wrong = await send(bot, {"challenge": "x", "token": "not-ours", "type": "url_verification"}, sign=False)
    assert wrong.status == 401


async def test_a_signed_encrypted_mention_is_answered_through_the_message_api(bot: Bot) -> None:
    await bot.connect("feishu", CHAT)
    resp = await send(bot, feishu_event("ev-1", CHAT, "未填", token=VERIFY))
    assert resp.status == 200
    await bot.deliver()
    [reply] = bot.cloud.replies("feishu")
    assert reply.path == "/open-apis/im/v1/messages" and reply.query == {"receive_id_type": "chat_id"}
    assert reply.headers["Authorization"] == "Bearer t-tenant"
    assert reply.json["receive_id"] == CHAT and reply.json["msg_type"] == "interactive"
    card = json.loads(reply.json["content"])
    assert "问卷回收率" in json.dumps(card, ensure_ascii=False) and CODE in json.dumps(
        card, ensure_ascii=False
    )


async def test_a_bad_signature_an_old_timestamp_or_a_missing_signature_is_refused(bot: Bot) -> None:
    event = feishu_event("ev-2", CHAT, "得分", token=VERIFY)
    assert (await send(bot, event, key="some-other-key")).status == 401
    assert (await send(bot, event, ts=int(bot.clock().timestamp()) - 2 * 3600)).status == 401
    assert (await send(bot, event, sign=False)).status == 401
    async with bot.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(InboundEvent)) == 0


async def test_a_re_pushed_event_is_answered_once(bot: Bot) -> None:
    await bot.connect("feishu", CHAT)
    event = feishu_event("ev-3", CHAT, "帮助", token=VERIFY)
    assert (await send(bot, event)).status == 200
    assert (await send(bot, event)).status == 200  # Feishu re-pushes with a new timestamp and nonce
    await bot.deliver()
    assert len(bot.cloud.replies("feishu")) == 1


async def test_an_unconnected_chat_gets_the_connect_line(bot: Bot) -> None:
    await send(bot, feishu_event("ev-4", "oc_new", "得分", token=VERIFY))
    await bot.deliver()
    [reply] = bot.cloud.replies("feishu")
    text = json.loads(reply.json["content"])["elements"][0]["content"].replace("\\", "")  # markdown escapes
    assert "尚未连接" in text and "jixiao bot connect feishu oc_new" in text
