"""Telegram: the secret-token header, replays, unconnected chats, the reply in the group, and
setWebhook."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bot.inbound.telegram import set_webhook
from scheduler.recompute import recompute
from store.models import InboundEvent, OutboxMessage, SeenChat
from tests.fakes.inbound import telegram_update
from tests.inbound.conftest import CODE, ENV_VALUES, Bot

CHAT = -1001234567890


async def post(
    bot: Bot, update: dict[str, Any] | bytes, *, secret: str | None = ENV_VALUES["TG_SECRET"]
) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    body = update if isinstance(update, bytes) else json.dumps(update, ensure_ascii=False).encode()
    return await bot.client.post("/bot/telegram", data=body, headers=headers)


async def test_score_command_in_a_connected_group_is_answered_in_that_group_with_the_table(bot: Bot) -> None:
    await recompute(bot.sessionmaker, CODE, now=bot.clock())
    await bot.connect("telegram", str(CHAT))
    resp = await post(bot, telegram_update(1, CHAT, "/score@jixiao_bot"))
    assert resp.status == 200
    assert await bot.deliver() == 1
    [reply] = bot.cloud.replies("telegram")
    assert reply.json["chat_id"] == str(CHAT)
    text = reply.json["text"]
    assert "总分" in text and "等级" in text and "<pre>" in text  # the table, as summaries render it
    assert CODE in text and "较上次汇总的变化" in text
    assert ENV_VALUES["TG_TOKEN"] not in text and "/l/" not in text  # no secret, no personal link


async def test_a_wrong_secret_token_is_refused_before_the_body_is_read(bot: Bot) -> None:
    resp = await post(bot, b"this is not json at all", secret="wrong-secret")
    assert resp.status == 401  # not 400: the body was never parsed
    resp = await post(bot, telegram_update(2, CHAT, "/score"), secret=None)
    assert resp.status == 401
    async with bot.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(InboundEvent)) == 0
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def test_a_replayed_update_is_answered_once(bot: Bot) -> None:
    await bot.connect("telegram", str(CHAT))
    update = telegram_update(3, CHAT, "/help")
    for _ in range(3):
        assert (await post(bot, update)).status == 200
    await bot.deliver()
    assert len(bot.cloud.replies("telegram")) == 1
    async with bot.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


async def test_an_unconnected_group_gets_one_line_on_how_an_admin_connects_it_and_is_listed(bot: Bot) -> None:
    resp = await post(bot, telegram_update(4, CHAT, "/score@jixiao_bot", title="新群"))
    assert resp.status == 200
    await bot.deliver()
    [reply] = bot.cloud.replies("telegram")
    body = reply.json["text"]
    assert "尚未连接" in body and f"jixiao bot connect telegram {CHAT}" in body
    assert "总分" not in body
    async with bot.sessionmaker() as session:
        seen = (await session.execute(select(SeenChat))).scalar_one()
    assert (seen.vendor, seen.chat_id, seen.title, seen.first_text) == (
        "telegram",
        str(CHAT),
        "新群",
        "/score@jixiao_bot",
    )


async def test_a_command_for_another_bot_gets_no_answer(bot: Bot) -> None:
    await bot.connect("telegram", str(CHAT))
    assert (await post(bot, telegram_update(5, CHAT, "/score@other_bot"))).status == 200
    assert await bot.deliver() == 0


async def test_unknown_command_gets_the_help_naming_the_connected_project(bot: Bot) -> None:
    await bot.connect("telegram", str(CHAT))
    await post(bot, telegram_update(6, CHAT, "@jixiao_bot 你好"))
    await bot.deliver()
    [reply] = bot.cloud.replies("telegram")
    assert (
        "未识别的命令" in reply.json["text"] and "/score" in reply.json["text"] and CODE in reply.json["text"]
    )


async def test_each_request_and_its_outcome_is_logged_without_the_secret(bot: Bot, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="jixiao.inbound")
    await post(bot, telegram_update(7, CHAT, "/help"))
    await post(bot, telegram_update(8, CHAT, "/help"), secret="bad")
    lines = [r.getMessage() for r in caplog.records if r.name == "jixiao.inbound"]
    assert any("unconnected" in line and "event=7" in line for line in lines)
    assert any("rejected" in line for line in lines)
    assert not any(ENV_VALUES["TG_SECRET"] in line or "bad" in line.split("rejected")[0] for line in lines)


async def test_set_webhook_registers_the_url_the_secret_and_only_message_updates(aiohttp_server: Any) -> None:
    from aiohttp import web

    got: list[Any] = []

    async def handler(request: web.Request) -> web.Response:
        got.append((request.path, await request.json()))
        return web.json_response({"ok": True, "result": True, "description": "Webhook was set"})

    app = web.Application()
    app.router.add_post("/bot{token}/setWebhook", handler)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        await set_webhook(
            session,
            token="123:abc",
            public_url="https://jixiao.example.cn/",
            secret_token="s3cret_-token",
            base_url=str(server.make_url("")),
        )
    [(path, body)] = got
    assert path == "/bot123:abc/setWebhook"
    assert body["url"] == "https://jixiao.example.cn/bot/telegram"
    assert body["secret_token"] == "s3cret_-token"
    assert body["allowed_updates"] == ["message"]
