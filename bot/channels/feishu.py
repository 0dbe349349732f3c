"""Feishu/Lark (飞书) custom bot, optionally signed: interactive cards with a markdown element.

POST {base}/open-apis/bot/v2/hook/TOKEN with {"msg_type": "interactive", "card": {...}} and, when the
bot has a secret, "timestamp" (epoch SECONDS as a string) and "sign" in the same JSON body, where
sign = base64(HMAC_SHA256(key=f"{timestamp}\\n{secret}", msg=b"")). The whole request body must be
≤ 20 KB. Failures usually come back as HTTP 200 with a non-zero `code`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote

import aiohttp

from ._http import HttpReply, dump_json, post_and_classify
from ._render import MarkdownFlavor, split_message
from ._vendor import classify_coded, header_retry_after
from .base import ChannelAdapter, Endpoint, Outcome, Part, RateSpec, Result, part_key
from .message import Message

#: 11232 bot frequency limit and 99991400 OpenAPI-wide limit (channels.md, Feishu frequency-control doc).
RATE_LIMITED_CODES = frozenset({11232, 99991400})
#: 19021 sign failure / timestamp > 1 h off, 19024 keyword missing (channels.md, Feishu custom-bot
#: guide); 19022 IP not allowed, 19001 invalid hook token, 19002 bad parameters: named in the same
#: guide's error list as quoted by third parties; not confirmed from a vendor page we could read, kept
#: permanent because each names a configuration fault that no retry fixes.
PERMANENT_CODES = frozenset({19001, 19002, 19021, 19022, 19024})
#: 9499 is the gateway's generic "Bad Request" (malformed JSON, body over 20 KB, …) — permanent. The
#: same code also carries "too many request" when the gateway throttles, so for 9499 the message text
#: decides (see `classify`): throttling words → RATE_LIMITED, anything else → PERMANENT. Retrying an
#: oversized card as if throttled paused the bot 60 s per try and never failed the message.
BAD_REQUEST_CODE = 9499
_THROTTLE_WORDS = ("too many request", "frequency limit", "rate limit")

#: Vendor cap is 20 KB of request body; we budget 19 000 bytes and reserve room for timestamp+sign.
BODY_LIMIT_BYTES = 19_000
SIGN_RESERVE_BYTES = 96


def sign(secret: str, timestamp_s: str) -> str:
    """base64(HMAC_SHA256(key=f"{timestamp}\\n{secret}", msg=b"")) — the key/message order is unusual."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _json_len(text: str) -> int:
    # Bytes `text` adds inside a JSON string (escapes included); additive over concatenation.
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def _card(title: str, body: str) -> dict[str, Any]:
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": title}},
            "elements": [{"tag": "markdown", "content": body}],
        },
    }


class FeishuAdapter(ChannelAdapter):
    kind = "feishu"
    default_base_url = "https://open.feishu.cn"
    vendor_caps = (RateSpec(5, 1.0), RateSpec(100, 60.0))
    limits = (RateSpec(4, 1.0), RateSpec(90, 60.0))
    default_penalty_s = 60.0
    max_part_size = BODY_LIMIT_BYTES
    size_unit = "bytes"

    # Legacy card markdown has no tables; rows become list items (see MarkdownFlavor).
    flavor = MarkdownFlavor(tables=False)

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """Parts whose full JSON request body (plus signature room) is ≤ 19 000 bytes."""
        texts = split_message(
            message,
            self.flavor,
            limit=self.max_part_size - SIGN_RESERVE_BYTES,
            cost=_json_len,
            overhead=lambda title: len(dump_json(_card(title, ""))),
        )
        parts = []
        for t in texts:
            payload = _card(t.title, t.body)
            size = len(dump_json(payload)) + SIGN_RESERVE_BYTES
            parts.append(
                Part(
                    payload,
                    t.index,
                    t.total,
                    size,
                    "bytes",
                    dedupe_key=part_key(dedupe_key, t.index, t.total),
                )
            )
        return parts

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        token = str(endpoint.config.get("token", ""))
        if not token:
            return Result(Outcome.PERMANENT, vendor_msg="endpoint config has no 'token'")
        url = f"{self.base_for(endpoint)}/open-apis/bot/v2/hook/{quote(token, safe='')}"
        payload = dict(part.payload)
        secret = endpoint.config.get("secret")
        if secret:
            ts = str(int(self.clock()))
            payload["timestamp"] = ts
            payload["sign"] = sign(str(secret), ts)
        return await post_and_classify(
            session,
            url,
            kind=self.kind,
            secrets=endpoint.secrets(),
            timeout=self.timeout,
            classify=classify,
            body=dump_json(payload),
        )


def classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
    body = reply.json if isinstance(reply.json, dict) else {}
    # Older deployments answer {"StatusCode": 0, "StatusMessage": "success"}.
    code = body.get("code", body.get("StatusCode"))
    msg = body.get("msg", body.get("StatusMessage"))
    rate_limited, permanent = RATE_LIMITED_CODES, PERMANENT_CODES
    if str(code) == str(BAD_REQUEST_CODE):
        throttled = any(word in str(msg or "").lower() for word in _THROTTLE_WORDS)
        if throttled:
            rate_limited = rate_limited | {BAD_REQUEST_CODE}
        else:
            permanent = permanent | {BAD_REQUEST_CODE}
    return classify_coded(
        reply,
        code=code,
        message=msg,
        secrets=secrets,
        rate_limited=rate_limited,
        permanent=permanent,
        retry_after_s=header_retry_after(reply.headers, "x-ogw-ratelimit-reset", "Retry-After"),
    )
