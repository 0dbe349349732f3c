"""Telegram Bot API: HTML messages, tables in <pre>, attachments via sendDocument.

POST {base}/bot{TOKEN}/sendMessage with {chat_id, text, parse_mode: "HTML"}; text ≤ 4096 chars after
entity parsing (we measure the raw HTML, which is never shorter, so parts always fit).
Attachments: POST {base}/bot{TOKEN}/sendDocument as multipart (document, caption ≤ 1024 chars).
Replies are {"ok": true, "result": {...}} or {"ok": false, "error_code", "description",
"parameters": {"retry_after" | "migrate_to_chat_id"}}.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from ._http import HttpReply, dump_json, post_and_classify
from ._render import HtmlFlavor, char_len, html_escape, split_message
from ._vendor import header_retry_after
from .base import (
    ChannelAdapter,
    Endpoint,
    Outcome,
    Part,
    RateSpec,
    Result,
    excerpt,
    parse_retry_after,
    part_key,
    redact,
)
from .message import Message

TEXT_LIMIT_CHARS = 4096
CAPTION_LIMIT_CHARS = 1024

#: Descriptions that mean "this chat will never accept our messages" (after healthchecks' list).
PERMANENT_DESCRIPTIONS = (
    "chat not found",
    "bot was blocked",
    "bot was kicked",
    "user is deactivated",
    "not enough rights",
    "have no rights",
    "group chat was deactivated",
    "need administrator rights",
    "bot is not a member",
)


class TelegramAdapter(ChannelAdapter):
    kind = "telegram"
    default_base_url = "https://api.telegram.org"
    vendor_caps = (RateSpec(1, 1.0), RateSpec(20, 60.0), RateSpec(30, 1.0, scope="global"))
    limits = (RateSpec(1, 1.0), RateSpec(18, 60.0), RateSpec(25, 1.0, scope="global"))
    default_penalty_s = 30.0  # Telegram nearly always says retry_after; this is only a fallback
    max_part_size = TEXT_LIMIT_CHARS
    size_unit = "chars"

    flavor = HtmlFlavor()

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """Text parts ≤ 4096 chars of HTML, then one sendDocument part per attachment."""
        texts = split_message(
            message,
            self.flavor,
            limit=self.max_part_size,
            cost=char_len,
            overhead=lambda title: char_len(self.flavor.heading(title) + "\n\n"),
        )
        total = len(texts) + len(message.attachments)
        parts = []
        for t in texts:
            text = f"{self.flavor.heading(t.title)}\n\n{t.body}".rstrip()
            # Bot API 7.0 replaced disable_web_page_preview with link_preview_options.
            payload = {"text": text, "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}}
            parts.append(
                Part(
                    payload,
                    t.index,
                    total,
                    char_len(text),
                    "chars",
                    dedupe_key=part_key(dedupe_key, t.index, total),
                )
            )
        for offset, attachment in enumerate(message.attachments, start=len(texts) + 1):
            caption = html_escape(attachment.filename)[:CAPTION_LIMIT_CHARS]
            parts.append(
                Part(
                    {"caption": caption, "parse_mode": "HTML"},
                    offset,
                    total,
                    len(attachment.content),
                    "bytes",
                    op="document",
                    attachments=(attachment,),
                    dedupe_key=part_key(dedupe_key, offset, total),
                )
            )
        return parts

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        token = str(endpoint.config.get("token", ""))
        chat_id = endpoint.config.get("chat_id")
        if not token or chat_id in (None, ""):
            return Result(Outcome.PERMANENT, vendor_msg="endpoint config needs 'token' and 'chat_id'")
        secrets = endpoint.secrets()
        base = f"{self.base_for(endpoint)}/bot{token}"
        form: aiohttp.FormData | None = None
        body: bytes | None = None
        if part.op == "document":
            # Browsers send UTF-8 filenames raw; the default percent-quoting would show up as "%E6%B1%87…".
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("chat_id", str(chat_id))
            for name, value in part.payload.items():
                form.add_field(name, str(value))
            for attachment in part.attachments:
                form.add_field(
                    "document", attachment.content, filename=attachment.filename, content_type=attachment.mime
                )
        else:
            body = dump_json({"chat_id": chat_id, **part.payload})
        method = "sendDocument" if form is not None else "sendMessage"
        return await post_and_classify(
            session,
            f"{base}/{method}",
            kind=self.kind,
            secrets=secrets,
            timeout=self.timeout,
            classify=classify,
            body=body,
            data=form,
        )


def classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
    body: dict[str, Any] = reply.json if isinstance(reply.json, dict) else {}
    params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    description = redact(str(body.get("description") or ""), secrets)[:500] or None
    code = body.get("error_code", reply.status)
    common: dict[str, Any] = {
        "http_status": reply.status,
        "vendor_msg": description,
        "latency_ms": reply.latency_ms,
        "excerpt": excerpt(reply.text, secrets),
    }
    if body.get("ok") is True and reply.status == 200:
        result = body.get("result") if isinstance(body.get("result"), dict) else {}
        msg_id = result.get("message_id")
        return Result(
            Outcome.OK, vendor_code="0", vendor_msg_id=None if msg_id is None else str(msg_id), **common
        )
    if "ok" not in body:
        # Not the Bot API talking (a proxy page, an empty body): decide by status, never call it OK.
        outcome = Outcome.TRANSIENT if reply.status >= 500 or reply.status < 300 else Outcome.PERMANENT
        if reply.status == 429:
            outcome = Outcome.RATE_LIMITED
        return Result(outcome, retry_after_s=header_retry_after(reply.headers, "Retry-After"), **common)
    if reply.status == 429 or code == 429:
        retry = parse_retry_after(params.get("retry_after")) or header_retry_after(
            reply.headers, "Retry-After"
        )
        return Result(Outcome.RATE_LIMITED, vendor_code="429", retry_after_s=retry, **common)
    if "migrate_to_chat_id" in params:
        # The group became a supergroup: permanent for this chat id; the caller should update the endpoint.
        details = {"migrate_to_chat_id": str(params["migrate_to_chat_id"])}
        return Result(Outcome.PERMANENT, vendor_code=str(code), details=details, **common)
    if reply.status >= 500 or (isinstance(code, int) and code >= 500):
        return Result(Outcome.TRANSIENT, vendor_code=str(code), **common)
    # 400 (chat not found, can't parse entities, message too long), 401 bad token, 403 blocked/kicked:
    # none of them improves by retrying the same request.
    return Result(Outcome.PERMANENT, vendor_code=str(code), **common)
