"""WeCom (企业微信): the 智能机器人 (AI bot, API mode, JSON) and the 自建应用 (self-built app, XML)
callbacks. A plain group robot webhook (消息推送, formerly 群机器人) is push-only: it cannot
receive commands (README and the connect API say so).

Authenticity, before the payload is read: ``msg_signature = sha1("".join(sorted([token,
timestamp, nonce, encrypt])))`` compared in constant time, and the timestamp within
:data:`WINDOW_S` of our clock (WeCom documents no window, only that a nonce is unique for 2 hours:
we bound it, and dedupe on ``msgid``). Decryption (WeCom's 加解密方案): ``AESKey =
base64(EncodingAESKey + "=")`` (32 bytes), AES-256-CBC with IV ``AESKey[:16]``, PKCS#7 padding to
32-byte blocks; the plaintext is ``random(16) + msg_len(4, big-endian) + msg + receiveid``, and
``receiveid`` must be ours (``""`` for an AI bot, the corp id for an app).

URL verification: ``GET ?msg_signature&timestamp&nonce&echostr`` → the decrypted ``echostr`` as
plain text (no quotes, BOM or newline), within 1 second.

Replies: the AI bot's ``response_url`` (once, within 1 hour) or, for an app, the app message API
(``bot.inbound.senders``). The HTTP answer is an empty body (WeCom then stops retrying).

Settings (``JIXIAO_INBOUND["wecom"]``): ``token_env``, ``encoding_aes_key_env``, ``receive_id``
(``""`` for the AI bot, default; the corp id for an app), and for app replies ``corp_id``,
``corp_secret_env``, ``agent_id``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
import time
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot import keys
from bot.inbound.handle import Inbound, ReplyRoute, handle, log_request, vendor_config

VENDOR = "wecom"
#: Largest accepted clock difference of a callback, in seconds.
WINDOW_S = 3600
#: response_url is usable for one hour.
RESPONSE_URL_TTL = timedelta(hours=1)


class CryptoError(ValueError):
    """The payload does not decrypt with our EncodingAESKey, or is not addressed to us."""


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's ``msg_signature``."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("EncodingAESKey is not 43 base64 characters") from exc
    if len(key) != 32:
        raise CryptoError("EncodingAESKey must decode to 32 bytes")
    return key


def decrypt(encoding_aes_key: str, encrypt: str, receive_id: str | None) -> bytes:
    """The message inside ``encrypt``; ``receive_id`` None skips the receiver check."""
    key = aes_key(encoding_aes_key)
    try:
        data = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("encrypt is not base64") from exc
    if not data or len(data) % 16:
        raise CryptoError("encrypt has a bad length")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad:
        raise CryptoError("bad padding: not encrypted with this EncodingAESKey")
    plain = plain[:-pad]
    if len(plain) < 20:
        raise CryptoError("plaintext too short")
    (length,) = struct.unpack(">I", plain[16:20])
    msg, receiver = plain[20 : 20 + length], plain[20 + length :]
    if len(msg) != length:
        raise CryptoError("message length does not match")
    if receive_id is not None and not hmac.compare_digest(receiver, receive_id.encode()):
        raise CryptoError("the message is addressed to another receiver")
    return msg


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def _encrypt_field(raw: bytes) -> str | None:
    """The ciphertext of a callback body: JSON ``{"encrypt"}`` (AI bot) or XML ``<Encrypt>`` (app)."""
    text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        value = doc.get("encrypt") if isinstance(doc, dict) else None
        return value if isinstance(value, str) else None
    if text.startswith("<"):
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError:
            return None
        node = root.find("Encrypt")
        return node.text if node is not None and node.text else None
    return None


def parse_plain(plain: bytes, *, names: dict[str, str], now: Any) -> Inbound | None:
    """An ``Inbound`` from a decrypted AI-bot JSON message or app XML text message."""
    text = plain.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("msgtype") != "text" or not doc.get("msgid"):
            return None
        content = (doc.get("text") or {}).get("content") if isinstance(doc.get("text"), dict) else None
        url = doc.get("response_url")
        sender = str((doc.get("from") or {}).get("userid", "")) if isinstance(doc.get("from"), dict) else ""
        chat_id = str(doc.get("chatid") or (f"user:{sender}" if sender else ""))
        if not isinstance(content, str) or not chat_id or not isinstance(url, str):
            return None
        return Inbound(
            vendor=VENDOR,
            event_id=str(doc["msgid"]),
            chat_id=chat_id,
            text=content,
            route=ReplyRoute("wecom_aibot", chat_id, reply_to={"url": url}, not_after=now + RESPONSE_URL_TTL),
            mentioned=True,  # the AI bot receives group messages only when @-mentioned
            sender=sender,
        )
    root = ElementTree.fromstring(text)
    if (root.findtext("MsgType") or "") != "text" or not root.findtext("MsgId"):
        return None
    user = root.findtext("FromUserName") or ""
    if not user:
        return None
    chat_id = f"user:{user}"
    return Inbound(
        vendor=VENDOR,
        event_id=root.findtext("MsgId") or "",
        chat_id=chat_id,
        text=root.findtext("Content") or "",
        route=ReplyRoute(
            "wecom_app",
            user,
            config={
                "corp_id": names.get("corp_id", ""),
                "corp_secret_env": names.get("corp_secret_env", ""),
                "agent_id": names.get("agent_id", root.findtext("AgentID") or ""),
                "touser": user,
            },
        ),
        mentioned=True,  # an app only receives messages sent to it
        sender=user,
    )


def _check(request: web.Request, config: dict[str, Any], encrypt: str) -> str | None:
    """None when the signature and timestamp are good, else the reason."""
    q = request.query
    ts, nonce = q.get("timestamp", ""), q.get("nonce", "")
    token = str(config.get("token", ""))
    if not token or not _same(signature(token, ts, nonce, encrypt), q.get("msg_signature", "")):
        return "bad msg_signature"
    if not ts.isdigit() or abs(request.app[keys.CLOCK]().timestamp() - int(ts)) > WINDOW_S:
        return "timestamp outside the accepted window"
    return None


async def verify_url(request: web.Request) -> web.Response:
    """GET /bot/wecom: URL verification."""
    started = time.perf_counter()
    config = vendor_config(request.app, VENDOR)
    if config is None:
        raise web.HTTPNotFound()
    echostr = request.query.get("echostr", "")
    reason = _check(request, config, echostr)
    if reason is None:
        try:
            plain = decrypt(
                str(config.get("encoding_aes_key", "")), echostr, str(config.get("receive_id", ""))
            )
        except CryptoError as exc:
            reason = str(exc)
    if reason is not None:
        log_request(VENDOR, f"rejected url verification: {reason}", status=401, started=started)
        return web.Response(status=401, text="")
    log_request(VENDOR, "url_verification", status=200, started=started)
    return web.Response(body=plain, content_type="text/plain")


async def webhook(request: web.Request) -> web.Response:
    """POST /bot/wecom: a message callback."""
    started = time.perf_counter()
    app = request.app
    config = vendor_config(app, VENDOR)
    if config is None:
        raise web.HTTPNotFound()
    raw = await request.read()
    encrypt = _encrypt_field(raw)
    if encrypt is None:
        log_request(VENDOR, "rejected: no encrypt field", status=400, started=started)
        return web.Response(status=400, text="")
    reason = _check(request, config, encrypt)
    if reason is not None:
        log_request(VENDOR, f"rejected: {reason}", status=401, started=started)
        return web.Response(status=401, text="")
    try:
        plain = decrypt(str(config.get("encoding_aes_key", "")), encrypt, str(config.get("receive_id", "")))
        msg = parse_plain(plain, names=app[keys.SETTINGS].inbound.get(VENDOR, {}), now=app[keys.CLOCK]())
    except (CryptoError, ValueError, ElementTree.ParseError) as exc:
        log_request(VENDOR, f"rejected: {exc}", status=400, started=started)
        return web.Response(status=400, text="")
    if msg is None:
        log_request(VENDOR, "ignored: not a text message", status=200, started=started)
        return web.Response(text="")
    outcome = await handle(app, msg)
    log_request(VENDOR, outcome, status=200, started=started, event=msg.event_id, chat=msg.chat_id)
    return web.Response(text="")
