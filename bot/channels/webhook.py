"""Generic signed webhook: the message as structured JSON, for receivers we do not know.

POST {url} with JSON {"title", "text", "blocks": [...], "link", "part": {"index", "total"},
"sent_at", "attachments": [{"filename", "mime", "size", "base64"}]} and headers
  X-Jixiao-Timestamp: <epoch seconds, decimal>
  X-Jixiao-Signature: sha256=<lowercase hex HMAC-SHA256(key=secret, msg=timestamp + "." + raw body)>
The signed message is the timestamp header's exact text, one ".", then the raw body bytes, so the
timestamp is covered: a receiver recomputes the HMAC, compares in constant time, and rejects a
timestamp more than 5 minutes from its clock (replays). The secret comes from ``secret_env``.
An endpoint that names a secret variable which is not set is never sent unsigned: the send is
a PERMANENT failure naming the variable (and writing such an endpoint is refused up front).
2xx → OK; 429 → RATE_LIMITED (Retry-After); other 4xx → PERMANENT; 5xx/408 → TRANSIENT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import aiohttp

from ._http import HttpReply, dump_json, http_status_outcome, post_and_classify
from ._render import MarkdownFlavor, split_message
from ._vendor import header_retry_after
from .base import ChannelAdapter, Endpoint, Outcome, Part, RateSpec, Result, excerpt, part_key, redact
from .message import Bullets, Message, Table, Text
from .slack import with_origin

SIGNATURE_HEADER = "X-Jixiao-Signature"
TIMESTAMP_HEADER = "X-Jixiao-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Header value for `body` sent at `timestamp` (the X-Jixiao-Timestamp text): "sha256=" + hex
    HMAC-SHA256 keyed with the endpoint secret over ``timestamp + "." + body``."""
    message = timestamp.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _block(block: Text | Table | Bullets) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    if isinstance(block, Bullets):
        return {"type": "bullets", "items": list(block.items)}
    return {"type": "table", "headers": list(block.headers), "rows": [list(r) for r in block.rows]}


class WebhookAdapter(ChannelAdapter):
    kind = "webhook"
    default_base_url = ""
    vendor_caps = ()
    limits = (RateSpec(60, 60.0),)  # our own courtesy budget; receivers vary
    default_penalty_s = 60.0
    max_part_size = 1_000_000  # receivers' default body caps are around 1 MiB (aiohttp's is 1 MiB)
    size_unit = "bytes"

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """One part: raw structured blocks (receivers escape for their own output) plus `text`, an
        escaped markdown rendering for receivers that just display text."""
        (text,) = split_message(
            message, MarkdownFlavor(tables=True), limit=10**9, cost=len, overhead=lambda title: 0
        )
        payload: dict[str, Any] = {
            "title": message.title,
            "text": text.body,
            "blocks": [_block(b) for b in message.blocks],
            "link": None if message.link is None else {"url": message.link.url, "text": message.link.text},
            "part": {"index": 1, "total": 1},
        }
        if dedupe_key is not None:
            payload["dedupe_key"] = dedupe_key  # lets receivers drop our at-least-once duplicates
        size = len(dump_json(payload)) + sum(len(a.content) * 4 // 3 for a in message.attachments)
        return [
            Part(
                payload,
                1,
                1,
                size,
                "bytes",
                attachments=message.attachments,
                dedupe_key=part_key(dedupe_key, 1, 1),
            )
        ]

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        url = str(endpoint.config.get("url", ""))
        if not url:
            return Result(Outcome.PERMANENT, vendor_msg="endpoint config has no 'url'")
        url = with_origin(url, endpoint.base_url or self.base_url)
        ts = str(int(self.clock()))
        payload = {**part.payload, "sent_at": int(ts)}
        if part.attachments:
            payload["attachments"] = [
                {
                    "filename": a.filename,
                    "mime": a.mime,
                    "size": len(a.content),
                    "base64": base64.b64encode(a.content).decode(),
                }
                for a in part.attachments
            ]
        body = dump_json(payload)
        headers = {TIMESTAMP_HEADER: ts}
        if "secret" in endpoint.config:  # configured (secret_env): signed, or not sent at all
            secret = str(endpoint.config["secret"] or "")
            if not secret:
                return Result(
                    Outcome.PERMANENT,
                    vendor_msg="webhook signing secret is not set: the variable named by secret_env is "
                    "missing from the environment and .env; not sent unsigned",
                )
            headers[SIGNATURE_HEADER] = signature(secret, ts, body)
        return await post_and_classify(
            session,
            url,
            kind=self.kind,
            secrets=endpoint.secrets(),
            timeout=self.timeout,
            classify=classify,
            body=body,
            headers=headers,
        )


def classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
    outcome = http_status_outcome(reply.status)
    retry = header_retry_after(reply.headers, "Retry-After") if outcome is Outcome.RATE_LIMITED else None
    msg_id = reply.json.get("id") if isinstance(reply.json, dict) else None
    return Result(
        outcome,
        http_status=reply.status,
        vendor_code=str(reply.status),
        vendor_msg=redact(reply.text.strip(), secrets)[:200] or None,
        retry_after_s=retry,
        vendor_msg_id=None if msg_id is None or outcome is not Outcome.OK else str(msg_id),
        latency_ms=reply.latency_ms,
        excerpt=excerpt(reply.text, secrets),
    )
