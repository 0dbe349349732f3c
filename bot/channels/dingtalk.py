"""DingTalk (钉钉) custom robot, signed ("加签"): markdown messages without tables.

POST {base}/robot/send?access_token=T&timestamp=MS&sign=S with {"msgtype": "markdown",
"markdown": {"title", "text"}}. `sign = urlquote(base64(HMAC_SHA256(key=secret,
msg=f"{timestamp_ms}\\n{secret}")))`, built fresh on every request (a reused URL is a known bug
source). Failures come back as HTTP 200 with a non-zero `errcode`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

import aiohttp

from ._http import dump_json, post_and_classify
from ._parts import heading_parts
from ._render import MarkdownFlavor, utf8_len
from ._vendor import errcode_classifier
from .base import ChannelAdapter, Endpoint, Outcome, Part, RateSpec, Result
from .message import Message

#: 130101 "send too fast" (channels.md; the robot is throttled for 10 min). 410100 is the same
#: throttle in DingTalk's newer error table [2nd, verify]. 90030 "webhook over limit" is a quota:
#: treated as a rate limit so the endpoint pauses instead of failing messages.
RATE_LIMITED_CODES = frozenset({130101, 410100, 90030})
#: 310000 sign mismatch / bad timestamp / missing keyword / IP not allowed (channels.md). The token
#: codes are from DingTalk's robot error table [2nd, verify]: 300001 token missing, 300005 token does not
#: exist, 400013 group dissolved, 400101 access_token missing, 400102 robot disabled, 400105 msgtype
#: not supported, 460101 message too long. 400106 robot not in the group and 430101–430104 (message
#: holds an unsafe external link / forbidden content) are from the vendor error list as checked for
#: issue 7; none of them is fixed by retrying.
PERMANENT_CODES = frozenset(
    {310000, 300001, 300005, 400013, 400101, 400102, 400105, 400106, 460101} | set(range(430101, 430105))
)
TRANSIENT_CODES = frozenset({-1})


def sign(secret: str, timestamp_ms: str) -> str:
    """The base64 HMAC-SHA256 signature (not yet URL-encoded)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class DingTalkAdapter(ChannelAdapter):
    kind = "dingtalk"
    default_base_url = "https://oapi.dingtalk.com"
    vendor_caps = (RateSpec(20, 60.0),)
    limits = (RateSpec(18, 60.0),)  # going over costs a 10-minute penalty: stay well under
    default_penalty_s = 600.0
    #: DingTalk documents no markdown size; 20000 bytes is the commonly quoted message cap [2nd]. We keep
    #: a margin so a cap nearer 20 KB still holds.
    max_part_size = 18000
    size_unit = "bytes"

    # DingTalk's renderer joins single newlines; a blank line between text lines keeps them apart.
    flavor = MarkdownFlavor(tables=False, line_end="\n\n")

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """Parts whose markdown text is ≤ 18000 UTF-8 bytes; tables become list items."""
        # markdown.title is what the notification preview shows; it is plain text, not markdown.
        return heading_parts(
            message,
            flavor=self.flavor,
            limit=self.max_part_size,
            cost=utf8_len,
            unit="bytes",
            sep="\n\n",
            payload=lambda t, text: {"msgtype": "markdown", "markdown": {"title": t.title, "text": text}},
            dedupe_key=dedupe_key,
        )

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        token = str(endpoint.config.get("access_token", ""))
        if not token:
            return Result(Outcome.PERMANENT, vendor_msg="endpoint config has no 'access_token'")
        url = f"{self.base_for(endpoint)}/robot/send?access_token={quote(token, safe='')}"
        secret = endpoint.config.get("secret")
        if secret:
            ts = str(int(self.clock() * 1000))
            url += f"&timestamp={ts}&sign={quote(sign(str(secret), ts), safe='')}"
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
