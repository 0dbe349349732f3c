"""Telegram: the webhook and ``setWebhook``.

Authenticity: Telegram sends the ``secret_token`` given to ``setWebhook`` in the header
``X-Telegram-Bot-Api-Secret-Token``; it is compared in constant time BEFORE the body is parsed.
Updates are not signed and carry no timestamp, so there is no replay window: a replayed update is
caught by its ``update_id`` (unique ``inbound_event`` row). Groups: with privacy mode on (the
default) the bot receives ``/cmd@bot`` commands, replies to it and mentions.

Settings (``JIXIAO_INBOUND["telegram"]``): ``secret_token_env`` (1–256 of ``A-Za-z0-9_-``),
``token_env`` (the bot token, used for replies and ``setWebhook``), ``username`` (the bot's
@username, so ``/score@other_bot`` is left to the other bot).
"""

from __future__ import annotations

import hmac
import json
import re
import time
from typing import Any

import aiohttp
from aiohttp import web

from bot import keys
from bot.inbound.handle import Inbound, ReplyRoute, handle, log_request, vendor_config

VENDOR = "telegram"
SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def secret_matches(expected: str, got: str | None) -> bool:
    """Constant-time comparison of the webhook secret (False when either is empty)."""
    if not expected or not got:
        return False
    return hmac.compare_digest(expected.encode(), got.encode())


def parse_update(update: Any, *, token_env: str, username: str) -> Inbound | None:
    """An ``Inbound`` from an Update with a text message in a chat, else None."""
    if not isinstance(update, dict) or "update_id" not in update:
        return None
    message = update.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return None
    chat = message.get("chat") or {}
    if not isinstance(chat, dict) or chat.get("id") is None:
        return None
    chat_id = str(chat["id"])
    sender = message.get("from") or {}
    name = str(sender.get("username") or sender.get("id") or "") if isinstance(sender, dict) else ""
    return Inbound(
        vendor=VENDOR,
        event_id=str(update["update_id"]),
        chat_id=chat_id,
        text=message["text"],
        route=ReplyRoute("telegram_bot", chat_id, config={"token_env": token_env, "chat_id": chat_id}),
        mentioned=chat.get("type") == "private",  # in a private chat everything is for us
        sender=name,
        title=str(chat.get("title") or chat.get("username") or ""),
        bot_names=(username,) if username else (),
    )


async def webhook(request: web.Request) -> web.Response:
    """POST /bot/telegram: verify the secret header, then answer the update (always 200 once
    authentic, so Telegram does not redeliver)."""
    started = time.perf_counter()
    app = request.app
    config = vendor_config(app, VENDOR)
    if config is None:
        raise web.HTTPNotFound()
    expected = str(config.get("secret_token", ""))
    if not secret_matches(expected, request.headers.get("X-Telegram-Bot-Api-Secret-Token")):
        log_request(VENDOR, "rejected: bad secret token", status=401, started=started)
        return web.json_response({"ok": False, "error": "bad secret token"}, status=401)
    raw = await request.read()
    try:
        update = json.loads(raw)
    except ValueError:
        log_request(VENDOR, "rejected: body is not JSON", status=400, started=started)
        return web.json_response({"ok": False, "error": "body is not JSON"}, status=400)
    token_env = app[keys.SETTINGS].inbound.get(VENDOR, {}).get("token_env", "")
    msg = parse_update(update, token_env=token_env, username=str(config.get("username", "")))
    if msg is None:
        log_request(VENDOR, "ignored: not a text message", status=200, started=started)
        return web.json_response({"ok": True})
    outcome = await handle(app, msg)
    log_request(VENDOR, outcome, status=200, started=started, event=msg.event_id, chat=msg.chat_id)
    return web.json_response({"ok": True})


async def set_webhook(
    session: aiohttp.ClientSession,
    *,
    token: str,
    public_url: str,
    secret_token: str,
    base_url: str = "https://api.telegram.org",
    max_connections: int = 40,
) -> dict[str, Any]:
    """Call ``setWebhook`` with ``{public_url}/bot/telegram``, the secret token and
    ``allowed_updates=["message"]``. Returns Telegram's JSON answer; raises ValueError on a
    malformed secret or a refusal (the message never contains the token)."""
    if not SECRET_TOKEN_RE.match(secret_token):
        raise ValueError("secret_token must be 1–256 characters of A-Z, a-z, 0-9, _ and -")
    body = {
        "url": f"{public_url.rstrip('/')}/bot/telegram",
        "secret_token": secret_token,
        "allowed_updates": ["message"],
        "max_connections": max_connections,
        "drop_pending_updates": False,
    }
    async with session.post(f"{base_url.rstrip('/')}/bot{token}/setWebhook", json=body) as resp:
        try:
            answer = await resp.json(content_type=None)
        except ValueError:
            answer = None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        description = answer.get("description") if isinstance(answer, dict) else f"HTTP {resp.status}"
        raise ValueError(f"setWebhook refused: {description}")
    return answer
