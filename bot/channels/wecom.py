"""WeCom (企业微信) group robot: markdown_v2 messages, which support tables.

POST {base}/cgi-bin/webhook/send?key=KEY with {"msgtype": "markdown_v2", "markdown_v2": {"content"}};
content ≤ 4096 bytes UTF-8. Failures come back as HTTP 200 with a non-zero `errcode`.
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from ._http import dump_json, post_and_classify
from ._parts import heading_parts
from ._render import MarkdownFlavor, utf8_len
from ._vendor import errcode_classifier
from .base import ChannelAdapter, Endpoint, Outcome, Part, RateSpec, Result
from .message import Message

#: errcode → outcome. 45009 and -1 are in channels.md; the permanent set mixes channels.md (60020 IP not
#: allowlisted) with WeCom's global error table as commonly quoted [2nd, verify]: 93000 invalid webhook
#: URL/key, 93004 robot disabled, 93008 robot not in the chat, 93017 robot removed, 40008 invalid
#: msgtype, 40058 invalid/missing field, 44004 empty content, 45002 content too long.
RATE_LIMITED_CODES = frozenset({45009})
PERMANENT_CODES = frozenset({93000, 93004, 93008, 93017, 60020, 40008, 40058, 44004, 45002})
TRANSIENT_CODES = frozenset({-1})


class WeComAdapter(ChannelAdapter):
    kind = "wecom"
    default_base_url = "https://qyapi.weixin.qq.com"
    vendor_caps = (RateSpec(20, 60.0),)
    limits = (RateSpec(18, 60.0),)
    default_penalty_s = 65.0  # wecom-notifier waits a fixed 65 s after 45009
    max_part_size = 4096
    size_unit = "bytes"

    flavor = MarkdownFlavor(tables=True)

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """Parts whose markdown_v2 content is ≤ 4096 UTF-8 bytes."""
        return heading_parts(
            message,
            flavor=self.flavor,
            limit=self.max_part_size,
            cost=utf8_len,
            unit="bytes",
            sep="\n\n",
            payload=lambda t, text: {"msgtype": "markdown_v2", "markdown_v2": {"content": text}},
            dedupe_key=dedupe_key,
        )

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        key = str(endpoint.config.get("key", ""))
        if not key:
            return Result(Outcome.PERMANENT, vendor_msg="endpoint config has no 'key'")
        url = f"{self.base_for(endpoint)}/cgi-bin/webhook/send?key={quote(key, safe='')}"
        return await post_and_classify(
            session,
            url,
            kind=self.kind,
            secrets=endpoint.secrets(),
            timeout=self.timeout,
            classify=classify,
            body=dump_json(part.payload),
        )


classify = errcode_classifier(
    rate_limited=RATE_LIMITED_CODES, permanent=PERMANENT_CODES, transient=TRANSIENT_CODES
)
