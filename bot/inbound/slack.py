"""Slack: the Events API (``app_mention``, and direct messages) and slash commands, one URL.

Authenticity, before the body is parsed: ``X-Slack-Signature == "v0=" + hex(HMAC_SHA256(
signing_secret, "v0:" + X-Slack-Request-Timestamp + ":" + raw_body))`` in constant time, and the
timestamp no more than :data:`WINDOW_S` (5 minutes) from our clock, as Slack documents. The
``url_verification`` challenge is signed too and answered after the check.

Slack wants a 2xx within 3 seconds: the request is acknowledged as soon as the reply is in the
outbox (building it is one short read), and the reply is posted by the delivery worker — to the
slash command's ``response_url`` (``response_type: in_channel``; valid 30 minutes) or, for an
``app_mention``, with ``chat.postMessage`` and the bot token. Slack retries an unacknowledged
event with the same ``event_id`` (header ``X-Slack-Retry-Num``): answered once.

Settings (``JIXIAO_INBOUND["slack"]``): ``signing_secret_env``, ``bot_token_env`` (for
``app_mention`` replies).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot import keys
from bot.inbound.commands import ALIASES
from bot.inbound.handle import Inbound, ReplyRoute, handle, log_request, vendor_config

VENDOR = "slack"
#: Slack's replay window, in seconds.
WINDOW_S = 300
#: A slash command's response_url takes posts for 30 minutes.
RESPONSE_URL_TTL = timedelta(minutes=30)


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """``X-Slack-Signature`` of a request (version v0)."""
    digest = hmac.new(signing_secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return "v0=" + digest.hexdigest()


def parse_command(form: dict[str, str], *, now: datetime) -> Inbound | None:
    """A slash command (``/score`` or e.g. ``/jixiao 得分``) as an ``Inbound``."""
    command, text = form.get("command", ""), form.get("text", "")
    channel, url, trigger = (
        form.get("channel_id", ""),
        form.get("response_url", ""),
        form.get("trigger_id", ""),
    )
    if not command or not channel or not url or not trigger:
        return None
    # "/score" is itself the command; a generic "/jixiao 得分" carries it in the text.
    said = command if command.lstrip("/").lower() in ALIASES else text
    return Inbound(
        vendor=VENDOR,
        event_id=f"cmd:{trigger}",
        chat_id=channel,
        text=said,
        route=ReplyRoute("slack_response", channel, reply_to={"url": url}, not_after=now + RESPONSE_URL_TTL),
        mentioned=True,
        sender=form.get("user_name") or form.get("user_id", ""),
        title=form.get("channel_name", ""),
    )


def parse_event(doc: dict[str, Any], *, bot_token_env: str) -> Inbound | None:
    """An ``app_mention`` (or a direct message) as an ``Inbound``; other events are None."""
    event = doc.get("event")
    if doc.get("type") != "event_callback" or not isinstance(event, dict) or not doc.get("event_id"):
        return None
    is_mention = event.get("type") == "app_mention"
    is_dm = event.get("type") == "message" and event.get("channel_type") == "im" and not event.get("bot_id")
    if not (is_mention or is_dm) or event.get("subtype"):
        return None
    channel, text = event.get("channel"), event.get("text")
    if not isinstance(channel, str) or not isinstance(text, str):
        return None
    return Inbound(
        vendor=VENDOR,
        event_id=str(doc["event_id"]),
        chat_id=channel,
        text=text,
        route=ReplyRoute("slack_bot", channel, config={"token_env": bot_token_env, "channel": channel}),
        mentioned=True,
        sender=str(event.get("user", "")),
    )


async def webhook(request: web.Request) -> web.Response:
    """POST /bot/slack: events (JSON) and slash commands (form-encoded)."""
    started = time.perf_counter()
    app = request.app
    config = vendor_config(app, VENDOR)
    if config is None:
        raise web.HTTPNotFound()
    raw = await request.read()
    ts = request.headers.get("X-Slack-Request-Timestamp", "")
    got = request.headers.get("X-Slack-Signature", "")
    secret = str(config.get("signing_secret", ""))

    def reject(reason: str, status: int = 401) -> web.Response:
        log_request(VENDOR, f"rejected: {reason}", status=status, started=started)
        return web.json_response({"ok": False, "error": reason}, status=status)

    if not secret or not got or not hmac.compare_digest(signature(secret, ts, raw).encode(), got.encode()):
        return reject("bad signature")
    now = app[keys.CLOCK]()
    if not ts.isdigit() or abs(now.timestamp() - int(ts)) > WINDOW_S:
        return reject("timestamp older than 5 minutes")
    names = app[keys.SETTINGS].inbound.get(VENDOR, {})
    if request.content_type == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
        msg = parse_command(form, now=now)
        if msg is None:
            return reject("not a slash command", 400)
        outcome = await handle(app, msg)
        log_request(VENDOR, outcome, status=200, started=started, event=msg.event_id, chat=msg.chat_id)
        return web.Response(status=200, text="")
    try:
        doc = json.loads(raw)
    except ValueError:
        return reject("body is not JSON", 400)
    if not isinstance(doc, dict):
        return reject("body is not a JSON object", 400)
    if doc.get("type") == "url_verification":
        log_request(VENDOR, "url_verification", status=200, started=started)
        return web.json_response({"challenge": doc.get("challenge", "")})
    msg = parse_event(doc, bot_token_env=names.get("bot_token_env", ""))
    if msg is None:
        log_request(VENDOR, "ignored: not a mention", status=200, started=started)
        return web.json_response({})
    outcome = await handle(app, msg)
    log_request(
        VENDOR,
        outcome,
        status=200,
        started=started,
        event=msg.event_id,
        chat=msg.chat_id,
        retry=request.headers.get("X-Slack-Retry-Num"),
    )
    return web.json_response({})
