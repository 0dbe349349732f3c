"""Fake vendors for the two-way bot: senders that sign/encrypt inbound events exactly as each
vendor documents (written from the vendors' documented algorithms, independently of
``bot.inbound``), and one fake "vendor cloud" that receives the replies on each vendor's real
reply paths and records them.

Documented example vectors used by the tests (all public documentation placeholders):

- Slack, "Verifying requests from Slack": signing secret ``8f742231b10e8888abcd99yyyzzz85a5``,
  timestamp ``1531420618``, a ``/webhook-collect`` slash-command body, signature
  ``v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503``.
- Feishu, "Encrypt Key 加密配置案例": key ``test key``, ciphertext
  ``P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=`` → ``hello world``.
- WeCom, 加解密方案 sample (WXBizMsgCrypt): token ``QDG6eK``, EncodingAESKey
  ``jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C``, corp id ``wx5823bf96d3bd56c7``; a URL
  verification and an app message callback with their signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# ============================================================================ documented vectors

SLACK_DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_DOC_TIMESTAMP = "1531420618"
SLACK_DOC_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

FEISHU_DOC_KEY = "test key"
FEISHU_DOC_CIPHERTEXT = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="
FEISHU_DOC_PLAINTEXT = b"hello world"

WECOM_DOC_TOKEN = "QDG6eK"
WECOM_DOC_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
WECOM_DOC_CORP_ID = "wx5823bf96d3bd56c7"
#: GET verification: msg_signature, timestamp, nonce, echostr → the plaintext WeCom expects back.
WECOM_DOC_VERIFY = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
}
WECOM_DOC_ECHO_PLAIN = "1616140317555161061"
#: POST of an app text message "hello" (MsgId 4561255354251345929).
WECOM_DOC_POST_QUERY = {
    "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "timestamp": "1409659813",
    "nonce": "1372623149",
}
WECOM_DOC_POST_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/"
    "sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HM"
    "ZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3"
    "LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVK"
    "n28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
WECOM_DOC_POST_XML = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
    f"<Encrypt><![CDATA[{WECOM_DOC_POST_ENCRYPT}]]></Encrypt>"
    "<AgentID><![CDATA[218]]></AgentID></xml>"
)


# ============================================================================ senders (signing)


def slack_headers(secret: str, timestamp: str, body: bytes) -> dict[str, str]:
    """Slack: ``v0=`` + hex HMAC-SHA256(secret, ``v0:{ts}:{body}``)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest(),
    }


def dingtalk_headers(app_secret: str, timestamp_ms: str) -> dict[str, str]:
    """DingTalk: ``sign`` = base64(HmacSHA256(key=appSecret, msg=timestamp + "\\n" + appSecret))."""
    mac = hmac.new(
        app_secret.encode("utf-8"), (timestamp_ms + "\n" + app_secret).encode("utf-8"), hashlib.sha256
    )
    return {"timestamp": timestamp_ms, "sign": base64.b64encode(mac.digest()).decode()}


def feishu_encrypt(encrypt_key: str, plaintext: bytes, iv: bytes | None = None) -> str:
    """Feishu: AES-256-CBC, key = SHA256(Encrypt Key), random IV prepended, PKCS#7, base64."""
    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = iv or os.urandom(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data) + enc.finalize()).decode()


def feishu_decrypt(encrypt_key: str, b64: str) -> bytes:
    """The inverse, for checking the documented vector from the test side."""
    raw = base64.b64decode(b64)
    key = hashlib.sha256(encrypt_key.encode()).digest()
    dec = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    data = dec.update(raw[16:]) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(data) + unpadder.finalize()


def feishu_headers(encrypt_key: str, timestamp: str, nonce: str, body: bytes) -> dict[str, str]:
    """Feishu: ``X-Lark-Signature`` = hex SHA-256 of timestamp + nonce + encrypt_key + body."""
    digest = hashlib.sha256(timestamp.encode() + nonce.encode() + encrypt_key.encode() + body).hexdigest()
    return {"X-Lark-Request-Timestamp": timestamp, "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": digest}


def wecom_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom: SHA-1 over the sorted, concatenated token, timestamp, nonce and ciphertext."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def wecom_encrypt(encoding_aes_key: str, msg: bytes, receive_id: str = "") -> str:
    """WeCom: random(16) + len(4, network order) + msg + receiveid, PKCS#7 to 32-byte blocks,
    AES-256-CBC with key base64(EncodingAESKey + "=") and IV = key[:16], base64."""
    key = base64.b64decode(encoding_aes_key + "=")
    plain = os.urandom(16) + struct.pack("!I", len(msg)) + msg + receive_id.encode()
    n = 32 - len(plain) % 32
    plain += bytes([n]) * n
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def wecom_decrypt(encoding_aes_key: str, encrypt: str) -> tuple[bytes, bytes]:
    """(msg, receiveid) of a ciphertext, for checking the documented vector from the test side."""
    key = base64.b64decode(encoding_aes_key + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(base64.b64decode(encrypt)) + dec.finalize()
    plain = plain[: -plain[-1]]
    (n,) = struct.unpack("!I", plain[16:20])
    return plain[20 : 20 + n], plain[20 + n :]


# ============================================================================ event bodies


def telegram_update(update_id: int, chat_id: int, text: str, *, title: str = "项目协调群") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id * 10,
            "from": {"id": 1001, "is_bot": False, "first_name": "王", "username": "wang"},
            "chat": {"id": chat_id, "title": title, "type": "supergroup"},
            "date": 1772413200,
            "text": text,
            "entities": [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
            if text.startswith("/")
            else [],
        },
    }


def feishu_event(event_id: str, chat_id: str, text: str, *, token: str) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": "im.message.receive_v1",
            "create_time": "1772413200000",
            "token": token,
            "app_id": "cli_test",
            "tenant_key": "tk",
        },
        "event": {
            "sender": {"sender_id": {"open_id": "ou_1", "user_id": "u1"}, "sender_type": "user"},
            "message": {
                "message_id": f"om_{event_id}",
                "chat_id": chat_id,
                "chat_type": "group",
                "message_type": "text",
                "content": json.dumps({"text": f"@_user_1 {text}"}, ensure_ascii=False),
                "mentions": [{"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "绩效机器人"}],
            },
        },
    }


def dingtalk_message(
    msg_id: str, conversation_id: str, text: str, *, webhook: str, expires_ms: int
) -> dict[str, Any]:
    return {
        "conversationId": conversation_id,
        "atUsers": [{"dingtalkId": "$:LWCP_v1:$bot"}],
        "chatbotCorpId": "ding1",
        "chatbotUserId": "$:LWCP_v1:$bot",
        "msgId": msg_id,
        "senderNick": "王五",
        "isAdmin": False,
        "senderStaffId": "staff-7",
        "sessionWebhookExpiredTime": expires_ms,
        "createAt": expires_ms - 90 * 60 * 1000,
        "senderCorpId": "ding1",
        "conversationType": "2",
        "senderId": "$:LWCP_v1:$sender",
        "conversationTitle": "绩效协调群",
        "isInAtList": True,
        "sessionWebhook": webhook,
        "text": {"content": f" {text}"},
        "robotCode": "dingbot",
        "msgtype": "text",
    }


def wecom_aibot_message(msgid: str, chatid: str, text: str, *, response_url: str) -> dict[str, Any]:
    return {
        "msgid": msgid,
        "aibotid": "AIBOTID",
        "chatid": chatid,
        "chattype": "group",
        "from": {"userid": "zhangsan"},
        "response_url": response_url,
        "msgtype": "text",
        "text": {"content": f"@绩效机器人 {text}"},
    }


def slack_command_body(command: str, text: str, *, channel: str, response_url: str, trigger: str) -> bytes:
    return urlencode(
        {
            "token": "legacy",
            "team_id": "T1",
            "channel_id": channel,
            "channel_name": "jixiao",
            "user_id": "U2",
            "user_name": "wang",
            "command": command,
            "text": text,
            "response_url": response_url,
            "trigger_id": trigger,
        }
    ).encode()


def slack_mention_event(event_id: str, channel: str, text: str) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": "T1",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1772413200,
        "event": {
            "type": "app_mention",
            "user": "U2",
            "text": f"<@U0BOT> {text}",
            "ts": "1.1",
            "channel": channel,
        },
    }


# ============================================================================ the reply side


@dataclass
class Got:
    """One reply request as the fake cloud saw it."""

    vendor: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    text: str


@dataclass
class VendorCloud:
    """Answers each vendor's reply API on one 127.0.0.1 server and records what it got.

    Telegram ``/bot{token}/sendMessage``; Feishu ``/open-apis/auth/v3/tenant_access_token/internal``
    and ``/open-apis/im/v1/messages``; DingTalk ``/robot/sendBySession``; WeCom AI bot
    ``/cgi-bin/aibot/response`` (each response code usable once, like response_url), WeCom app
    ``/cgi-bin/gettoken`` and ``/cgi-bin/message/send``; Slack ``/commands/…`` (response_url) and
    ``/api/chat.postMessage``. Credentials are checked: a wrong bot token, app secret or tenant
    token gets the vendor's error.
    """

    telegram_token: str = "123456:TEST-token"
    feishu_app_secret: str = "feishu-app-secret"
    wecom_corp_secret: str = "wecom-corp-secret"
    slack_bot_token: str = "xoxb-test"
    got: list[Got] = field(default_factory=list)
    base_url: str = ""
    _used_codes: set[str] = field(default_factory=set)

    def replies(self, vendor: str) -> list[Got]:
        """Message deliveries (token fetches excluded)."""
        token_paths = ("/open-apis/auth/v3/tenant_access_token/internal", "/cgi-bin/gettoken")
        return [g for g in self.got if g.vendor == vendor and g.path not in token_paths]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def serve(self, aiohttp_server: Any) -> str:
        server = await aiohttp_server(self.app())
        self.base_url = str(server.make_url("")).rstrip("/")
        return self.base_url

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = request.path
        vendor = (
            "telegram"
            if path.startswith("/bot")
            else "feishu"
            if path.startswith("/open-apis")
            else "dingtalk"
            if path.startswith("/robot")
            else "wecom"
            if path.startswith("/cgi-bin")
            else "slack"
        )
        self.got.append(Got(vendor, path, dict(request.query), dict(request.headers), body, text))
        if vendor == "telegram":
            if path != f"/bot{self.telegram_token}/sendMessage":
                return web.json_response(
                    {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
                )
            if not isinstance(body, dict) or not body.get("chat_id") or not body.get("text"):
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "Bad Request"}, status=400
                )
            return web.json_response({"ok": True, "result": {"message_id": len(self.got)}})
        if path == "/open-apis/auth/v3/tenant_access_token/internal":
            if body != {"app_id": "cli_test", "app_secret": self.feishu_app_secret}:
                return web.json_response({"code": 10014, "msg": "app secret invalid"})
            return web.json_response(
                {"code": 0, "msg": "ok", "tenant_access_token": "t-tenant", "expire": 7200}
            )
        if path == "/open-apis/im/v1/messages":
            if request.headers.get("Authorization") != "Bearer t-tenant":
                return web.json_response({"code": 99991663, "msg": "invalid access token"})
            if request.query.get("receive_id_type") != "chat_id" or not isinstance(body, dict):
                return web.json_response({"code": 230001, "msg": "invalid param"})
            json.loads(body["content"])  # content must be a JSON string
            return web.json_response({"code": 0, "msg": "success", "data": {"message_id": "om_reply"}})
        if path == "/robot/sendBySession":
            ok = request.query.get("session") and isinstance(body, dict) and body.get("msgtype")
            return web.json_response(
                {"errcode": 0, "errmsg": "ok"} if ok else {"errcode": 400, "errmsg": "bad"}
            )
        if path == "/cgi-bin/aibot/response":
            code = request.query.get("response_code", "")
            if not code or code in self._used_codes:
                return web.json_response({"errcode": 93000, "errmsg": "response_url used or invalid"})
            self._used_codes.add(code)
            return web.json_response({"errcode": 0, "errmsg": "ok"})
        if path == "/cgi-bin/gettoken":
            if request.query.get("corpsecret") != self.wecom_corp_secret:
                return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
            return web.json_response(
                {"errcode": 0, "errmsg": "ok", "access_token": "wx-token", "expires_in": 7200}
            )
        if path == "/cgi-bin/message/send":
            ok = request.query.get("access_token") == "wx-token"
            return web.json_response(
                {"errcode": 0, "errmsg": "ok"} if ok else {"errcode": 40014, "errmsg": "invalid"}
            )
        if path == "/api/chat.postMessage":
            if request.headers.get("Authorization") != f"Bearer {self.slack_bot_token}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "channel": body.get("channel"), "ts": "2.2"})
        if path.startswith("/commands/"):
            return web.Response(text="ok")
        return web.Response(status=404, text="no_service")


def form(text: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
