"""Slack incoming webhook: mrkdwn in one section block per part, tables in code blocks.

POST {url} (https://hooks.slack.com/services/T/B/X; the URL is the credential) with
{"text", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text"}}]}. A section's text is
≤ 3000 chars, so that is our part size. Success is HTTP 200 with the plain-text body "ok"; errors are
plain-text bodies with 4xx statuses; throttling is 429 with Retry-After (seconds).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ._http import HttpReply, dump_json, post_and_classify
from ._parts import heading_parts
from ._render import SlackFlavor, char_len
from ._vendor import header_retry_after
from .base import ChannelAdapter, Endpoint, Outcome, Part, RateSpec, Result, excerpt, redact
from .message import Message

SECTION_LIMIT_CHARS = 3000

#: Plain-text error bodies that mean the webhook is gone or misconfigured (healthchecks treats these
#: as permanent): no_service (404), invalid_token (403/400), channel_is_archived (410),
#: channel_not_found, action_prohibited, no_team, team_disabled, invalid_payload/invalid_blocks (our bug).
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410})


def with_origin(url: str, base: str | None) -> str:
    """`url` with its scheme://host:port replaced by `base`'s (tests point configured URLs at fakes)."""
    if not base:
        return url
    target, origin = urlsplit(url), urlsplit(base)
    return urlunsplit((origin.scheme, origin.netloc, target.path, target.query, ""))


class SlackAdapter(ChannelAdapter):
    kind = "slack"
    default_base_url = ""  # the configured webhook URL carries the origin
    vendor_caps = (RateSpec(1, 1.0),)
    # "1 per second, short bursts allowed": a 1.2 s spacing keeps clear of the edge.
    limits = (RateSpec(1, 1.2),)
    default_penalty_s = 60.0
    max_part_size = SECTION_LIMIT_CHARS
    size_unit = "chars"

    flavor = SlackFlavor()

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """Parts whose mrkdwn text is ≤ 3000 chars."""
        return heading_parts(
            message,
            flavor=self.flavor,
            limit=self.max_part_size,
            cost=char_len,
            unit="chars",
            sep="\n",
            payload=lambda t, text: {
                "text": text,
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            },
            dedupe_key=dedupe_key,
        )

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        url = str(endpoint.config.get("url", ""))
        if not url:
            return Result(Outcome.PERMANENT, vendor_msg="endpoint config has no 'url'")
        url = with_origin(url, endpoint.base_url or self.base_url)
        return await post_and_classify(
            session,
            url,
            kind=self.kind,
            secrets=endpoint.secrets(),
            timeout=self.timeout,
            classify=classify,
            body=dump_json(part.payload),
        )


def classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
    text = redact(reply.text.strip(), secrets)
    common = {
        "http_status": reply.status,
        "vendor_code": text[:64] or None,
        "vendor_msg": text[:200] or None,
        "latency_ms": reply.latency_ms,
        "excerpt": excerpt(reply.text, secrets),
    }
    if reply.status == 200 and text == "ok":
        return Result(Outcome.OK, **common)  # type: ignore[arg-type]
    if reply.status == 429:
        retry = header_retry_after(reply.headers, "Retry-After")
        return Result(Outcome.RATE_LIMITED, retry_after_s=retry, **common)  # type: ignore[arg-type]
    if reply.status in PERMANENT_STATUSES:
        return Result(Outcome.PERMANENT, **common)  # type: ignore[arg-type]
    if reply.status < 300:
        # 2xx without "ok" is not Slack's webhook talking (a proxy or captive portal): the message was
        # almost certainly not posted, so retry.
        return Result(Outcome.TRANSIENT, **common)  # type: ignore[arg-type]
    outcome = Outcome.TRANSIENT if reply.status >= 500 or reply.status == 408 else Outcome.PERMANENT
    return Result(outcome, **common)  # type: ignore[arg-type]
