"""DingTalk: an enterprise internal app's robot in HTTP callback mode.

Authenticity, before the body is parsed: the headers ``timestamp`` (milliseconds) and
``sign = base64(HmacSHA256(key=appSecret, msg=timestamp + "\\n" + appSecret))``; the sign is
compared in constant time and the timestamp must be within one hour of our clock (DingTalk's
documented window). The body itself is not signed, so a replay inside the window is caught by
its ``msgId`` (unique ``inbound_event`` row). In groups the robot only receives messages that
@-mention it.

The reply goes to the message's ``sessionWebhook`` (no token needed) before
``sessionWebhookExpiredTime``; the outbox row's ``not_after`` is that expiry, so a reply that
could not be delivered in time is given up rather than sent to a dead URL.

Settings (``JIXIAO_INBOUND["dingtalk"]``): ``app_secret_env``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot import keys
from bot.inbound.handle import Inbound, ReplyRoute, handle, log_request, vendor_config

VENDOR = "dingtalk"
#: DingTalk's window for the callback timestamp, in seconds.
WINDOW_S = 3600


def sign(app_secret: str, timestamp_ms: str) -> str:
    """The ``sign`` header DingTalk computes for ``timestamp_ms``."""
    digest = hmac.new(app_secret.encode(), f"{timestamp_ms}\n{app_secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def parse_message(doc: Any, *, now: datetime) -> Inbound | None:
    """An ``Inbound`` from a robot text message, else None."""
    if not isinstance(doc, dict) or doc.get("msgtype") != "text" or not doc.get("msgId"):
        return None
    text = (doc.get("text") or {}).get("content") if isinstance(doc.get("text"), dict) else None
    chat_id = doc.get("conversationId")
    url = doc.get("sessionWebhook")
    if not isinstance(text, str) or not chat_id or not isinstance(url, str):
        return None
    expires = doc.get("sessionWebhookExpiredTime")
    not_after = None
    if isinstance(expires, int | float) or (isinstance(expires, str) and expires.isdigit()):
        not_after = datetime.fromtimestamp(int(expires) / 1000, UTC)
    staff = str(doc.get("senderStaffId") or "")
    reply_to: dict[str, Any] = {"url": url}
    if staff:
        reply_to["at_user"] = staff
    return Inbound(
        vendor=VENDOR,
        event_id=str(doc["msgId"]),
        chat_id=str(chat_id),
        text=text,
        route=ReplyRoute("dingtalk_session", str(chat_id), reply_to=reply_to, not_after=not_after),
        # DingTalk delivers group messages only when the robot is @-mentioned (and strips the
        # mention from text.content); single chats are always for the robot.
        mentioned=True,
        sender=str(doc.get("senderNick") or staff),
        title=str(doc.get("conversationTitle") or ""),
    )


async def webhook(request: web.Request) -> web.Response:
    """POST /bot/dingtalk."""
    started = time.perf_counter()
    app = request.app
    config = vendor_config(app, VENDOR)
    if config is None:
        raise web.HTTPNotFound()
    secret = str(config.get("app_secret", ""))
    ts = request.headers.get("timestamp", "")
    got = request.headers.get("sign", "")

    def reject(reason: str, status: int = 401) -> web.Response:
        log_request(VENDOR, f"rejected: {reason}", status=status, started=started)
        return web.json_response({"errcode": status, "errmsg": reason}, status=status)

    if not secret or not ts or not got or not hmac.compare_digest(sign(secret, ts).encode(), got.encode()):
        return reject("bad sign")
    now = app[keys.CLOCK]()
    if not ts.isdigit() or abs(now.timestamp() - int(ts) / 1000) > WINDOW_S:
        return reject("timestamp more than 1 hour off")
    raw = await request.read()
    try:
        doc = json.loads(raw)
    except ValueError:
        return reject("body is not JSON", 400)
    msg = parse_message(doc, now=now)
    if msg is None:
        log_request(VENDOR, "ignored: not a text message", status=200, started=started)
        return web.json_response({})
    outcome = await handle(app, msg)
    log_request(VENDOR, outcome, status=200, started=started, event=msg.event_id, chat=msg.chat_id)
    return web.json_response({})
