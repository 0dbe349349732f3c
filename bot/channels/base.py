"""The adapter contract shared by every channel: outcomes, results, endpoints, rate specs, parts.

The outbox worker (elsewhere) renders a `Message` into `Part`s once, then calls `send()` per part and
acts on `Result.outcome`:

- OK            — delivered; `vendor_msg_id` if the vendor returned one.
- RATE_LIMITED  — the vendor throttled us; pause the endpoint for `retry_after_s` (or the adapter's
                  `default_penalty_s`) and retry without counting an attempt.
- TRANSIENT     — not delivered, worth retrying with backoff (5xx, connection refused, DNS, busy).
- PERMANENT     — will not succeed until someone fixes configuration or content (bad key, signature,
                  keyword, blocked bot, archived channel, malformed payload). Do not retry.
- AMBIGUOUS     — the request was sent but we never saw the answer (read timeout, dropped connection):
                  it may or may not have been delivered.

Adapters never raise for vendor or network failures; they return a `Result`. They hold no I/O
resources of their own: the caller owns the `aiohttp.ClientSession`.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal
from urllib.parse import quote, quote_plus

import aiohttp

from bot.logs import redact_tokens

from .message import Attachment, Message

__all__ = [
    "EXCERPT_MAX_BYTES",
    "SECRET_CONFIG_KEYS",
    "ChannelAdapter",
    "Endpoint",
    "Outcome",
    "Part",
    "RateSpec",
    "Result",
    "parse_retry_after",
    "part_key",
    "redact",
]

#: Result.excerpt is capped at this many UTF-8 bytes (the delivery_attempt column stays small).
EXCERPT_MAX_BYTES = 2048

#: Endpoint.config keys whose values are credentials. For Slack and generic webhooks the URL itself is
#: the credential, so "url" is on the list too.
SECRET_CONFIG_KEYS = frozenset(
    {"key", "secret", "token", "access_token", "password", "url", "webhook", "webhook_url", "sign"}
)

REDACTED = "***"

# Credential-shaped substrings redacted even when we do not know the exact value (e.g. a vendor echoing
# a URL in an error message). Order matters little; each pattern is independent.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"(?i)\b(key|access_token|token|sign|secret|password|timestamp_sign)=([^&\s\"'<>]+)"),
        rf"\1={REDACTED}",
    ),
    (
        re.compile(r"(?i)(\"(?:key|access_token|token|sign|secret|password)\"\s*:\s*\")[^\"]*\""),
        rf'\1{REDACTED}"',
    ),
    (re.compile(r"/bot\d+:[A-Za-z0-9_-]+"), f"/bot{REDACTED}"),
    (re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b"), REDACTED),  # bare Telegram bot token
    (re.compile(r"(hooks\.slack\.com/services)/[A-Za-z0-9/_-]+"), rf"\1/{REDACTED}"),
    (re.compile(r"(/open-apis/bot/v2/hook)/[A-Za-z0-9_-]+"), rf"\1/{REDACTED}"),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove credentials from `text`: every given secret (raw, URL-quoted and form-quoted) plus
    anything shaped like a key, token, sign or webhook URL. Secrets shorter than 4 chars are ignored
    (redacting "1" would shred the text and protects nothing)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return redact_tokens(text)  # personal link / report URLs a vendor echoes back


def excerpt(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Redact, then cut to at most EXCERPT_MAX_BYTES UTF-8 bytes without splitting a character.
    Redacting before cutting matters: a cut could otherwise leave half a secret unrecognised."""
    clean = redact(text, secrets)
    raw = clean.encode("utf-8")
    if len(raw) <= EXCERPT_MAX_BYTES:
        return clean
    return raw[: EXCERPT_MAX_BYTES - 3].decode("utf-8", errors="ignore") + "..."


def part_key(dedupe_key: str | None, index: int, total: int) -> str | None:
    """Dedupe key of part `index` of `total`: the message key itself when unsplit, else "key#p{i}"."""
    if dedupe_key is None:
        return None
    return dedupe_key if total == 1 else f"{dedupe_key}#p{index}"


def parse_retry_after(value: str | float | int | None) -> float | None:
    """Seconds to wait from a Retry-After-like value (delta-seconds or an HTTP date); None if absent
    or unparsable. Negative values become 0."""
    if value is None or value == "":
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    from email.utils import parsedate_to_datetime  # stdlib; only needed for the rare HTTP-date form

    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Outcome(StrEnum):
    """How a send ended; stored as text in delivery_attempt.outcome."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Result:
    """The classified outcome of one send.

    `retry_after_s` is in seconds and set only when the vendor told us (header or body).
    `latency_ms` is wall time of the request in milliseconds. `excerpt` is the start of the vendor's
    reply (≤ 2 KB, secrets redacted). `details` carries structured extras such as Telegram's
    `migrate_to_chat_id`.
    """

    outcome: Outcome
    http_status: int | None = None
    vendor_code: str | None = None
    vendor_msg: str | None = None
    retry_after_s: float | None = None
    vendor_msg_id: str | None = None
    latency_ms: float = 0.0
    excerpt: str = ""
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@dataclass(frozen=True, slots=True)
class RateSpec:
    """At most `count` requests per `per_seconds` seconds. `scope` is "endpoint" (per robot, chat or
    webhook) or "global" (per bot token / whole process, e.g. Telegram's 30/s)."""

    count: int
    per_seconds: float
    scope: Literal["endpoint", "global"] = "endpoint"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to send: a configured robot, chat, webhook or mailbox.

    `config` holds vendor settings (webhook key/url, secret, chat_id, token, email `to`…); its secret
    values never appear in repr(). `base_url` overrides the vendor origin (tests point it at fakes).
    """

    kind: str
    name: str
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)
    base_url: str | None = None

    def secrets(self) -> tuple[str, ...]:
        """The credential values in `config`, for redaction."""
        return tuple(str(v) for k, v in self.config.items() if k in SECRET_CONFIG_KEYS and v)

    def __repr__(self) -> str:
        shown = {k: (REDACTED if k in SECRET_CONFIG_KEYS else v) for k, v in self.config.items()}
        return (
            f"Endpoint(kind={self.kind!r}, name={self.name!r}, config={shown!r}, base_url={self.base_url!r})"
        )


@dataclass(frozen=True, slots=True)
class Part:
    """One request's worth of a rendered message.

    `payload` is the vendor request body (JSON-able) WITHOUT credentials or signatures; those are added
    in `send()` so a stored part never holds a secret and signatures are always fresh. `size` is the
    measured size of what the vendor limits, in `unit` ("bytes" of UTF-8 or "chars"). `index`/`total`
    are 1-based part numbers. `op` selects the vendor call ("message", or "document" for a file).
    `dedupe_key` is set by the caller (outbox) and used where a vendor supports it (email Message-ID).
    """

    payload: Mapping[str, Any]
    index: int = 1
    total: int = 1
    size: int = 0
    unit: Literal["bytes", "chars"] = "bytes"
    op: str = "message"
    attachments: tuple[Attachment, ...] = ()
    dedupe_key: str | None = None


#: Connect timeout short (a refused or unroutable host is TRANSIENT and cheap to retry); read timeout
#: generous because a late answer is AMBIGUOUS and costs a possible duplicate.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=15.0)


class ChannelAdapter(ABC):
    """Base for every channel adapter. Subclasses set the class attributes and implement
    `render()` and `send()`; `send()` must classify every vendor reply and never raise for vendor or
    network failures."""

    kind: ClassVar[str]
    #: The vendor origin used when neither the endpoint nor the constructor overrides it.
    default_base_url: ClassVar[str] = ""
    #: Budgets our rate limiter should use: slightly under the vendor caps.
    limits: ClassVar[tuple[RateSpec, ...]] = ()
    #: The vendor's documented caps, for reference and for fakes that enforce them.
    vendor_caps: ClassVar[tuple[RateSpec, ...]] = ()
    #: Seconds to pause the endpoint after RATE_LIMITED when the vendor gave no retry-after.
    default_penalty_s: ClassVar[float] = 60.0
    #: Maximum size of one part, in `size_unit`.
    max_part_size: ClassVar[int] = 0
    size_unit: ClassVar[Literal["bytes", "chars"]] = "bytes"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`base_url` overrides the vendor origin for every endpoint without its own override.
        `clock` returns epoch seconds; it feeds signature timestamps (inject it in tests)."""
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.clock = clock

    def base_for(self, endpoint: Endpoint) -> str:
        """The origin to call for `endpoint`: its override, then ours, then the vendor's."""
        return (endpoint.base_url or self.base_url or self.default_base_url).rstrip("/")

    @abstractmethod
    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """Turn `message` into parts that each fit the vendor's size limit (pure, no I/O)."""

    @abstractmethod
    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        """Send one part and classify the reply."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"
