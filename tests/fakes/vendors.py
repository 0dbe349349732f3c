"""Fake vendor endpoints that speak each vendor's real request/response format.

Every fake VERIFIES what it receives (signatures recomputed, size limits, msgtype, HTML well-formedness
for Telegram), records every request in `.received`, can enforce a per-key rate limit the way the
vendor does (`.over_limit` counts refusals), and otherwise replays a scripted queue of replies before
falling back to success.

    fake = WeComFake(rate_limit=(20, 60))
    base = await fake.serve(aiohttp_server)              # "http://127.0.0.1:PORT"
    fake.script(fake.throttled(), Reply(status=500), Reply.slow(1.0))
    result = await WeComAdapter(base).send(session, endpoint, part)
    assert fake.received[-1].problems == []

Precedence for each request: a validation problem (answered with the vendor's real error) first, then
the rate limit, then the scripted queue, then `ok()`. Neither of the first two consumes the script.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar

from aiohttp import web

from tests.waits import DEADLINE_S, wait_until

__all__ = [
    "FAKES",
    "DingTalkFake",
    "FakeVendor",
    "FeishuFake",
    "Received",
    "Reply",
    "SlackFake",
    "TelegramFake",
    "WeComFake",
    "WebhookFake",
]


@dataclass(frozen=True)
class Reply:
    """What the fake answers: `body` is JSON (dict/list) or text (str); `delay_s` seconds are waited
    before answering (a delay longer than the client's read timeout provokes AMBIGUOUS)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def slow(cls, delay_s: float, then: Reply | None = None) -> Reply:
        base = then or cls(200, {"errcode": 0, "errmsg": "ok"})
        return cls(base.status, base.body, base.headers, delay_s)


@dataclass
class Received:
    """One request as the fake saw it. `key` identifies the robot/chat/webhook (the rate-limit key);
    `problems` lists what the fake found wrong (empty when the request was valid)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    form: dict[str, Any]
    key: str
    at: float
    problems: list[str] = field(default_factory=list)
    throttled: bool = False
    reply_status: int | None = None
    reply_body: Any = None
    #: The query string exactly as sent (still percent-encoded), for checks of the encoding itself.
    query_string: str = ""


class FakeVendor:
    """Base class; subclasses define routes, validation, key extraction and reply builders."""

    kind: ClassVar[str]

    def __init__(
        self,
        *,
        secret: str | None = None,
        rate_limit: tuple[int, float] | None = None,
        penalty_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`secret`: verify signatures with it (None = the fake expects unsigned requests).
        `rate_limit=(count, per_seconds)`: answer the vendor's throttle reply when a key exceeds
        `count` requests in the trailing `per_seconds` window; `penalty_s` keeps the key throttled that
        long afterwards (DingTalk: 600). `clock` is epoch seconds (for signature freshness and windows)."""
        self.secret = secret
        self.rate_limit = rate_limit
        self.penalty_s = penalty_s
        self.clock = clock
        self.received: list[Received] = []
        self.over_limit = 0
        self.base_url = ""
        self._queue: deque[Reply] = deque()
        self._hits: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        #: When set to an unset Event, every reply waits for it (after the request is recorded): a test
        #: can hold the vendor's answers until it has seen what it needs in flight.
        self.hold: asyncio.Event | None = None
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    # -- scripting and inspection ----------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Queue replies for the next valid, non-throttled requests (in order)."""
        self._queue.extend(replies)

    @property
    def delivered(self) -> list[Received]:
        """Requests the fake accepted as delivered messages."""
        return [r for r in self.received if r.reply_status == 200 and self.is_ok(r.reply_body)]

    async def wait_until(
        self, predicate: Callable[[FakeVendor], bool], *, what: str, deadline_s: float = DEADLINE_S
    ) -> None:
        """Wait until ``predicate(self)`` holds (re-checked while the loop runs the fake and the
        senders); fail naming ``what`` and the requests seen so far if ``deadline_s`` seconds pass
        first. The deadline only stops a broken test from hanging: it is not a timing assertion."""
        await wait_until(
            lambda: predicate(self),
            what=f"{self.kind} fake: {what}",
            deadline_s=deadline_s,
            state=lambda: f"{len(self.received)} requests, {len(self.delivered)} delivered",
        )

    async def serve(self, aiohttp_server: Callable[..., Any]) -> str:
        """Start on 127.0.0.1 with pytest-aiohttp's `aiohttp_server`; returns and stores the base URL."""
        server = await aiohttp_server(self.app)
        self.base_url = str(server.make_url("")).rstrip("/")
        return self.base_url

    # -- vendor specifics (override) ---------------------------------------------------------------------
    def ok(self) -> Reply:
        raise NotImplementedError

    def error(self, code: int, msg: str = "error") -> Reply:
        raise NotImplementedError

    def throttled(self, retry_after_s: float | None = None) -> Reply:
        raise NotImplementedError

    def is_ok(self, body: Any) -> bool:
        return isinstance(body, dict) and body.get("errcode") == 0

    def key_of(self, rec: Received) -> str:
        return rec.path

    def validate(self, rec: Received) -> tuple[list[str], Reply | None]:
        """Problems found and the vendor's reply to them (None if valid)."""
        return [], None

    # -- machinery ---------------------------------------------------------------------------------------
    def _over_limit(self, key: str, now: float) -> bool:
        if self.rate_limit is None:
            return False
        if self._blocked_until.get(key, 0.0) > now:
            return True
        count, per = self.rate_limit
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - per:
            hits.popleft()
        if len(hits) >= count:
            if self.penalty_s:
                self._blocked_until[key] = now + self.penalty_s
            return True
        hits.append(now)
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form: dict[str, Any] = {}
        body = b""
        if request.content_type.startswith("multipart/"):
            for name, value in (await request.post()).items():
                form[name] = (
                    value
                    if isinstance(value, str)
                    else {"filename": value.filename, "content": value.file.read()}
                )
        else:
            body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        rec = Received(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            body,
            parsed,
            form,
            "",
            self.clock(),
        )
        rec.query_string = request.query_string
        rec.key = self.key_of(rec)
        self.received.append(rec)
        problems, rejection = self.validate(rec)
        if problems:
            rec.problems = problems
            reply = rejection or self.error(400, "; ".join(problems))
        elif self._over_limit(rec.key, rec.at):
            rec.throttled = True
            self.over_limit += 1
            reply = self.throttled()
        elif self._queue:
            reply = self._queue.popleft()
        else:
            reply = self.ok()
        if self.hold is not None:
            await self.hold.wait()
        rec.reply_status, rec.reply_body = reply.status, reply.body
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if isinstance(reply.body, str):
            return web.Response(status=reply.status, text=reply.body, headers=dict(reply.headers))
        return web.json_response(reply.body, status=reply.status, headers=dict(reply.headers))


def _json_problems(rec: Received) -> list[str]:
    return [] if isinstance(rec.json, dict) else ["body is not a JSON object"]


class WeComFake(FakeVendor):
    """WeCom group robot: POST /cgi-bin/webhook/send?key=KEY. `keys` (if given) are the valid keys."""

    kind = "wecom"
    CONTENT_LIMITS: ClassVar[dict[str, int]] = {"text": 2048, "markdown": 4096, "markdown_v2": 4096}

    def __init__(self, *, keys: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys = keys

    def ok(self) -> Reply:
        return Reply(200, {"errcode": 0, "errmsg": "ok"})

    def error(self, code: int, msg: str = "error") -> Reply:
        return Reply(200, {"errcode": code, "errmsg": msg})

    def throttled(self, retry_after_s: float | None = None) -> Reply:
        return self.error(45009, "api freq out of limit")

    def key_of(self, rec: Received) -> str:
        return rec.query.get("key", "")

    def validate(self, rec: Received) -> tuple[list[str], Reply | None]:
        if (
            rec.path != "/cgi-bin/webhook/send"
            or not rec.key
            or (self.keys is not None and rec.key not in self.keys)
        ):
            return ["invalid webhook url or key"], self.error(93000, "invalid webhook url")
        if problems := _json_problems(rec):
            return problems, self.error(40058, "invalid json")
        msgtype = rec.json.get("msgtype")
        if msgtype not in self.CONTENT_LIMITS:
            return [f"msgtype {msgtype!r} not supported"], self.error(40008, "invalid message type")
        content = (rec.json.get(msgtype) or {}).get("content", "")
        size = len(content.encode("utf-8"))
        if not content:
            return ["empty content"], self.error(44004, "empty content")
        if size > self.CONTENT_LIMITS[msgtype]:
            return [f"{msgtype} content is {size} bytes > {self.CONTENT_LIMITS[msgtype]}"], self.error(
                45002, "content size out of limit"
            )
        return [], None


class DingTalkFake(FakeVendor):
    """DingTalk custom robot: POST /robot/send?access_token=T[&timestamp&sign]; verifies the HMAC."""

    kind = "dingtalk"
    TEXT_LIMIT_BYTES = 20000

    def ok(self) -> Reply:
        return Reply(200, {"errcode": 0, "errmsg": "ok"})

    def error(self, code: int, msg: str = "error") -> Reply:
        return Reply(200, {"errcode": code, "errmsg": msg})

    def throttled(self, retry_after_s: float | None = None) -> Reply:
        return self.error(130101, "send too fast, exceed 20 times per minute")

    def key_of(self, rec: Received) -> str:
        return rec.query.get("access_token", "")

    def validate(self, rec: Received) -> tuple[list[str], Reply | None]:
        if rec.path != "/robot/send" or not rec.key:
            return ["missing access_token"], self.error(300001, "token is not exist")
        if self.secret is not None:
            ts, got = rec.query.get("timestamp", ""), rec.query.get("sign", "")
            if not ts.isdigit() or abs(int(ts) / 1000 - self.clock()) > 3600:
                return [f"timestamp {ts!r} missing or more than 1 h off"], self.error(
                    310000, "invalid timestamp"
                )
            digest = hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(base64.b64encode(digest).decode(), got):
                return ["sign mismatch"], self.error(310000, "sign not match")
        if problems := _json_problems(rec):
            return problems, self.error(400105, "invalid json")
        msgtype = rec.json.get("msgtype")
        if msgtype not in ("text", "markdown", "link", "actionCard", "feedCard"):
            return [f"msgtype {msgtype!r} not supported"], self.error(400105, "msgtype not supported")
        if msgtype == "markdown":
            md = rec.json.get("markdown") or {}
            if not md.get("title") or not md.get("text"):
                return ["markdown needs title and text"], self.error(400105, "param error")
            size = len(md["text"].encode("utf-8"))
            if size > self.TEXT_LIMIT_BYTES:
                return [f"markdown text is {size} bytes > {self.TEXT_LIMIT_BYTES}"], self.error(
                    460101, "message too long"
                )
        return [], None


class FeishuFake(FakeVendor):
    """Feishu custom bot: POST /open-apis/bot/v2/hook/TOKEN; verifies the body-borne signature."""

    kind = "feishu"
    BODY_LIMIT_BYTES = 20 * 1024

    def ok(self) -> Reply:
        return Reply(200, {"code": 0, "data": {}, "msg": "success"})

    def error(self, code: int, msg: str = "error") -> Reply:
        return Reply(200, {"code": code, "data": {}, "msg": msg})

    def throttled(self, retry_after_s: float | None = None) -> Reply:
        headers = {} if retry_after_s is None else {"x-ogw-ratelimit-reset": str(int(retry_after_s))}
        return Reply(200, {"code": 11232, "data": {}, "msg": "frequency limited psm"}, headers)

    def is_ok(self, body: Any) -> bool:
        return isinstance(body, dict) and body.get("code") == 0

    def key_of(self, rec: Received) -> str:
        return rec.path.rsplit("/", 1)[-1]

    def validate(self, rec: Received) -> tuple[list[str], Reply | None]:
        if not rec.path.startswith("/open-apis/bot/v2/hook/") or not rec.key:
            return ["bad hook path"], self.error(
                19001, "param invalid: incoming webhook access token invalid"
            )
        if len(rec.body) > self.BODY_LIMIT_BYTES:
            # The custom-bot guide: a body over 20 KB is refused as 9499 "Bad Request", the same
            # answer as malformed JSON; it is not a throttle.
            return [f"body is {len(rec.body)} bytes > {self.BODY_LIMIT_BYTES}"], self.error(
                9499, "Bad Request"
            )
        if problems := _json_problems(rec):
            return problems, self.error(9499, "Bad Request")
        if self.secret is not None:
            ts, got = str(rec.json.get("timestamp", "")), str(rec.json.get("sign", ""))
            if not ts.isdigit() or abs(int(ts) - self.clock()) > 3600:
                return [f"timestamp {ts!r} missing or more than 1 h off"], self.error(
                    19021, "sign match fail"
                )
            digest = hmac.new(f"{ts}\n{self.secret}".encode(), b"", hashlib.sha256).digest()
            if not hmac.compare_digest(base64.b64encode(digest).decode(), got):
                return ["sign mismatch"], self.error(
                    19021, "sign match fail or timestamp is not within one hour"
                )
        msg_type = rec.json.get("msg_type")
        if msg_type not in ("text", "post", "image", "share_chat", "interactive"):
            return [f"msg_type {msg_type!r} not supported"], self.error(19002, "params error, msg_type need")
        if msg_type == "interactive" and not isinstance(rec.json.get("card"), dict):
            return ["interactive without card"], self.error(19002, "card is required")
        return [], None


_TELEGRAM_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
}


class _TelegramHtml(HTMLParser):
    """Checks text the way Bot API's HTML parse mode does: only its tags, properly nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.chars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TELEGRAM_TAGS:
            self.errors.append(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f'can\'t parse entities: Unexpected end tag "{tag}"')

    def handle_data(self, data: str) -> None:
        self.chars += len(data)


class TelegramFake(FakeVendor):
    """Bot API: POST /bot{token}/sendMessage (JSON) and /bot{token}/sendDocument (multipart).
    `tokens`/`chats` (if given) are the valid bot tokens and chat ids."""

    kind = "telegram"
    TEXT_LIMIT_CHARS = 4096
    _PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>sendMessage|sendDocument)$")

    def __init__(
        self, *, tokens: set[str] | None = None, chats: set[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.tokens, self.chats = tokens, chats
        self._next_id = 100

    def ok(self) -> Reply:
        self._next_id += 1
        return Reply(200, {"ok": True, "result": {"message_id": self._next_id, "date": int(self.clock())}})

    def error(self, code: int, msg: str = "Bad Request") -> Reply:
        return Reply(code, {"ok": False, "error_code": code, "description": msg})

    def throttled(self, retry_after_s: float | None = None) -> Reply:
        after = int(retry_after_s or 3)
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {after}",
            "parameters": {"retry_after": after},
        }
        return Reply(429, body)

    def is_ok(self, body: Any) -> bool:
        return isinstance(body, dict) and body.get("ok") is True

    def _fields(self, rec: Received) -> dict[str, Any]:
        return rec.json if isinstance(rec.json, dict) else rec.form

    def key_of(self, rec: Received) -> str:
        match = self._PATH.match(rec.path)
        return f"{match['token'] if match else ''}:{self._fields(rec).get('chat_id', '')}"

    def validate(self, rec: Received) -> tuple[list[str], Reply | None]:
        match = self._PATH.match(rec.path)
        if not match:
            return [f"unknown method path {rec.path}"], self.error(404, "Not Found")
        if self.tokens is not None and match["token"] not in self.tokens:
            return ["unknown bot token"], self.error(401, "Unauthorized")
        fields = self._fields(rec)
        chat = str(fields.get("chat_id", ""))
        if not chat or (self.chats is not None and chat not in self.chats):
            return [f"chat {chat!r} not found"], self.error(400, "Bad Request: chat not found")
        if match["method"] == "sendDocument":
            if not isinstance(fields.get("document"), dict):
                return ["sendDocument without a document file"], self.error(
                    400, "Bad Request: there is no document in the request"
                )
            text, limit = str(fields.get("caption", "")), 1024
        else:
            text, limit = str(fields.get("text", "")), self.TEXT_LIMIT_CHARS
            if not text:
                return ["empty text"], self.error(400, "Bad Request: message text is empty")
            # Stricter than Telegram, which still tolerates it: Bot API 7.0 replaced the field with
            # link_preview_options, and we want to notice if a sender goes back to the old one.
            if "disable_web_page_preview" in fields:
                return ["pre-7.0 disable_web_page_preview; use link_preview_options"], self.error(
                    400, "Bad Request: disable_web_page_preview is deprecated"
                )
            preview = fields.get("link_preview_options")
            if preview is not None and not isinstance(preview, dict):
                return ["link_preview_options is not an object"], self.error(
                    400, "Bad Request: can't parse link preview options"
                )
        if fields.get("parse_mode") == "HTML":
            parser = _TelegramHtml()
            parser.feed(text)
            parser.close()
            errors = parser.errors + ([f"unclosed tags {parser.stack}"] if parser.stack else [])
            if errors:
                return errors, self.error(400, "Bad Request: " + errors[0])
            length = parser.chars
        else:
            length = len(html.unescape(text))
        if length > limit:
            return [f"text is {length} chars > {limit}"], self.error(400, "Bad Request: message is too long")
        return [], None


class SlackFake(FakeVendor):
    """Slack incoming webhook: POST /services/T/B/X; answers text bodies like Slack does."""

    kind = "slack"
    SECTION_LIMIT_CHARS = 3000

    def ok(self) -> Reply:
        return Reply(200, "ok")

    def error(self, code: int, msg: str = "invalid_payload") -> Reply:
        return Reply(code, msg)

    def throttled(self, retry_after_s: float | None = None) -> Reply:
        return Reply(429, "rate_limited", {"Retry-After": str(int(retry_after_s or 1))})

    def is_ok(self, body: Any) -> bool:
        return body == "ok"

    def validate(self, rec: Received) -> tuple[list[str], Reply | None]:
        if not rec.path.startswith("/services/") or rec.path.count("/") < 4:
            return ["unknown webhook path"], self.error(404, "no_service")
        if problems := _json_problems(rec):
            return problems, self.error(400, "invalid_payload")
        if not rec.json.get("text") and not rec.json.get("blocks"):
            return ["neither text nor blocks"], self.error(400, "no_text")
        for block in rec.json.get("blocks") or []:
            text = ((block or {}).get("text") or {}).get("text", "")
            if block.get("type") == "section" and len(text) > self.SECTION_LIMIT_CHARS:
                return [f"section text is {len(text)} chars > {self.SECTION_LIMIT_CHARS}"], self.error(
                    400, "invalid_blocks"
                )
        return [], None


class WebhookFake(FakeVendor):
    """Generic receiver of our signed webhook, verifying it as the README documents (written
    here from that text, not with our signing code): HMAC-SHA256 keyed with the secret over
    ``timestamp + "." + raw body``, hex, prefixed "sha256="; timestamps more than 300 s from the
    receiver's clock are replays."""

    #: Largest accepted distance between X-Jixiao-Timestamp and the receiver's clock (seconds).
    MAX_AGE_S = 300

    kind = "webhook"

    def ok(self) -> Reply:
        return Reply(200, {"ok": True, "id": f"m{len(self.received)}"})

    def error(self, code: int, msg: str = "error") -> Reply:
        return Reply(code, {"ok": False, "error": msg})

    def throttled(self, retry_after_s: float | None = None) -> Reply:
        return Reply(429, {"ok": False, "error": "slow down"}, {"Retry-After": str(int(retry_after_s or 2))})

    def is_ok(self, body: Any) -> bool:
        return isinstance(body, dict) and body.get("ok") is True

    def validate(self, rec: Received) -> tuple[list[str], Reply | None]:
        ts = rec.headers.get("X-Jixiao-Timestamp", "")
        if not ts.isdigit():
            return ["missing X-Jixiao-Timestamp"], self.error(400, "missing timestamp")
        if self.secret is not None:
            signed = ts.encode("ascii") + b"." + rec.body
            want = "sha256=" + hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, rec.headers.get("X-Jixiao-Signature", "")):
                return ["signature mismatch"], self.error(401, "bad signature")
            if abs(self.clock() - int(ts)) > self.MAX_AGE_S:
                return ["stale timestamp (replay?)"], self.error(401, "stale timestamp")
        if problems := _json_problems(rec):
            return problems, self.error(400, "invalid json")
        return [], None


#: kind → fake class, for tests and benchmarks that loop over channels.
FAKES: dict[str, type[FakeVendor]] = {
    cls.kind: cls for cls in (WeComFake, DingTalkFake, FeishuFake, TelegramFake, SlackFake, WebhookFake)
}
