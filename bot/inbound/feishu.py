"""Feishu/Lark: event subscription v2.0 (``im.message.receive_v1``) over HTTP.

Authenticity, checked before the event is parsed:

- With an Encrypt Key configured (recommended), every event carries
  ``X-Lark-Signature = sha256_hex(X-Lark-Request-Timestamp + X-Lark-Request-Nonce + encrypt_key +
  raw_body)``; it is compared in constant time and the timestamp (seconds) must be within
  :data:`WINDOW_S` of our clock (Feishu documents no window: we bound it). The body
  ``{"encrypt": b64}`` is AES-256-CBC with key ``SHA256(encrypt_key)``, IV = the first 16 bytes
  of the decoded data, PKCS#7 padding.
- The URL-verification request is not signed: it is accepted only if it decrypts with our key
  (when one is set) and its ``token`` equals the Verification Token; the answer is
  ``{"challenge": …}``.
- Without an Encrypt Key nothing is signed: the event's ``header.token`` must equal the
  Verification Token (weaker; the README says so).

A re-pushed event (Feishu retries when it gets no 200 within 3 s) has the same
``header.event_id`` and is answered once. Replies go through the message API with a tenant access
token (``bot.inbound.senders.FeishuAppAdapter``).

Settings (``JIXIAO_INBOUND["feishu"]``): ``app_id``, ``app_secret_env``,
``verification_token_env``, ``encrypt_key_env``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot import keys
from bot.inbound.handle import Inbound, ReplyRoute, handle, log_request, vendor_config

VENDOR = "feishu"
#: Largest accepted clock difference of a signed request, in seconds.
WINDOW_S = 3600


class DecryptError(ValueError):
    """The body does not decrypt with our Encrypt Key."""


def decrypt(encrypt_key: str, encrypted_b64: str) -> bytes:
    """Feishu's event decryption (AES-256-CBC, key SHA256(encrypt_key), IV prefix, PKCS#7)."""
    try:
        data = base64.b64decode(encrypted_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptError("encrypt is not base64") from exc
    if len(data) < 32 or len(data) % 16:
        raise DecryptError("encrypt has a bad length")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
    padded = decryptor.update(data[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise DecryptError("bad padding: not encrypted with this Encrypt Key") from exc


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """``X-Lark-Signature`` of a request."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def _message_text(message: dict[str, Any]) -> str | None:
    if message.get("message_type") != "text":
        return None
    try:
        content = json.loads(message.get("content") or "")
    except ValueError:
        return None
    text = content.get("text") if isinstance(content, dict) else None
    return text if isinstance(text, str) else None


def parse_event(doc: dict[str, Any], *, app_id: str, app_secret_env: str) -> Inbound | None:
    """An ``Inbound`` from a v2 ``im.message.receive_v1`` text event, else None."""
    header = doc.get("header") or {}
    event = doc.get("event") or {}
    if not isinstance(header, dict) or not isinstance(event, dict):
        return None
    if header.get("event_type") != "im.message.receive_v1" or not header.get("event_id"):
        return None
    message = event.get("message") or {}
    if not isinstance(message, dict) or not message.get("chat_id"):
        return None
    text = _message_text(message)
    if text is None:
        return None
    mentions = message.get("mentions") or []
    sender = ((event.get("sender") or {}).get("sender_id") or {}).get("open_id", "")
    chat_id = str(message["chat_id"])
    return Inbound(
        vendor=VENDOR,
        event_id=str(header["event_id"]),
        chat_id=chat_id,
        text=text,
        route=ReplyRoute(
            "feishu_app",
            chat_id,
            config={"app_id": app_id, "app_secret_env": app_secret_env, "chat_id": chat_id},
        ),
        mentioned=bool(mentions) or message.get("chat_type") == "p2p",
        sender=str(sender),
    )


async def webhook(request: web.Request) -> web.Response:
    """POST /bot/feishu."""
    started = time.perf_counter()
    app = request.app
    config = vendor_config(app, VENDOR)
    if config is None:
        raise web.HTTPNotFound()
    raw = await request.read()
    encrypt_key = str(config.get("encrypt_key", ""))
    verification = str(config.get("verification_token", ""))

    def reject(reason: str, status: int = 401) -> web.Response:
        log_request(VENDOR, f"rejected: {reason}", status=status, started=started)
        return web.json_response({"code": status, "msg": reason}, status=status)

    sig = request.headers.get("X-Lark-Signature", "")
    signed = False
    if encrypt_key and sig:
        ts = request.headers.get("X-Lark-Request-Timestamp", "")
        nonce = request.headers.get("X-Lark-Request-Nonce", "")
        if not _same(signature(ts, nonce, encrypt_key, raw), sig):
            return reject("bad signature")
        now = app[keys.CLOCK]().timestamp()
        if not ts.isdigit() or abs(now - int(ts)) > WINDOW_S:
            return reject("timestamp outside the accepted window")
        signed = True
    try:
        doc = json.loads(raw)
    except ValueError:
        return reject("body is not JSON", 400)
    if not isinstance(doc, dict):
        return reject("body is not a JSON object", 400)
    if encrypt_key:
        if not isinstance(doc.get("encrypt"), str):
            return reject("body is not encrypted although an Encrypt Key is set")
        try:
            doc = json.loads(decrypt(encrypt_key, doc["encrypt"]))
        except (DecryptError, ValueError):
            return reject("body does not decrypt with the Encrypt Key")
        if not isinstance(doc, dict):
            return reject("decrypted body is not a JSON object", 400)
    if doc.get("type") == "url_verification":
        if not _same(str(doc.get("token", "")), verification):
            return reject("verification token mismatch")
        log_request(VENDOR, "url_verification", status=200, started=started)
        return web.json_response({"challenge": doc.get("challenge", "")})
    if encrypt_key and not signed:
        return reject("event without X-Lark-Signature")
    header = doc.get("header") if isinstance(doc.get("header"), dict) else {}
    if not _same(str(header.get("token", "")), verification):
        return reject("verification token mismatch")
    names = app[keys.SETTINGS].inbound.get(VENDOR, {})
    msg = parse_event(
        doc, app_id=str(config.get("app_id", "")), app_secret_env=names.get("app_secret_env", "")
    )
    if msg is None:
        log_request(VENDOR, "ignored: not a text message event", status=200, started=started)
        return web.json_response({"code": 0})
    outcome = await handle(app, msg)
    log_request(VENDOR, outcome, status=200, started=started, event=msg.event_id, chat=msg.chat_id)
    return web.json_response({"code": 0})
