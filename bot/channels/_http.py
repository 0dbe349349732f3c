"""One HTTP POST with transport failures classified; shared by the HTTP adapters."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from .base import Outcome, Result, excerpt, redact

log = logging.getLogger("jixiao.channels")

__all__ = ["HttpReply", "dump_json", "post"]


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A vendor's answer. `text` is the decoded body; `json` the parsed body or None."""

    status: int
    headers: CIMultiDictProxy[str]
    text: str
    json: Any
    latency_ms: float


def dump_json(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON. We serialise ourselves so size checks and HMACs see the exact bytes sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _safe_target(url: str) -> str:
    # Only scheme and host go to logs: paths and queries carry keys and tokens.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    kind: str,
    secrets: Iterable[str],
    timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's own per-phase timeouts are the point
    body: bytes | None = None,
    data: aiohttp.FormData | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpReply | Result:
    """POST `body` (JSON bytes) or `data` (multipart) to `url`.

    Returns the reply, or a Result when no reply was obtained:
    - connection refused, DNS failure, connect timeout → TRANSIENT (the request never left);
    - read timeout, server disconnect or broken payload after sending → AMBIGUOUS (it may have landed).
    """
    secrets = tuple(secrets)
    send_headers = dict(headers or {})
    if body is not None:
        send_headers.setdefault("Content-Type", "application/json; charset=utf-8")
    started = time.perf_counter()

    def failed(outcome: Outcome, exc: BaseException) -> Result:
        latency = (time.perf_counter() - started) * 1000
        message = redact(f"{type(exc).__name__}: {exc}", secrets)
        log.info("%s send to %s failed: %s (%s)", kind, _safe_target(url), outcome, message)
        return Result(outcome, vendor_msg=message, latency_ms=latency, excerpt=excerpt(message, secrets))

    try:
        async with session.post(
            url, data=body if body is not None else data, headers=send_headers, timeout=timeout
        ) as resp:
            raw = await resp.read()
            text = raw.decode("utf-8", errors="replace")
            try:
                parsed: Any = json.loads(text) if text.strip() else None
            except ValueError:
                parsed = None
            latency = (time.perf_counter() - started) * 1000
            log.debug("%s send to %s → HTTP %s in %.0f ms", kind, _safe_target(url), resp.status, latency)
            return HttpReply(resp.status, resp.headers, text, parsed, latency)
    except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
        # ConnectionTimeoutError: the connect phase timed out, nothing was sent.
        return failed(Outcome.TRANSIENT, exc)
    except (
        aiohttp.SocketTimeoutError,
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientPayloadError,
        TimeoutError,
    ) as exc:
        return failed(Outcome.AMBIGUOUS, exc)
    except aiohttp.InvalidURL as exc:
        # A malformed configured URL will never work.
        return failed(Outcome.PERMANENT, exc)
    except (aiohttp.ClientError, OSError) as exc:
        # Resets and other socket errors after connecting: we cannot tell whether the vendor acted.
        return failed(Outcome.AMBIGUOUS, exc)


def http_status_outcome(status: int) -> Outcome:
    """Fallback classification by HTTP status alone (used when the body carries no vendor code)."""
    if 200 <= status < 300:
        return Outcome.OK
    if status == 429:
        return Outcome.RATE_LIMITED
    if status in (408, 425) or status >= 500:
        return Outcome.TRANSIENT
    return Outcome.PERMANENT


async def post_and_classify(
    session: aiohttp.ClientSession,
    url: str,
    *,
    kind: str,
    secrets: tuple[str, ...],
    timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's own per-phase timeouts are the point
    classify: Callable[[HttpReply, tuple[str, ...]], Result],
    body: bytes | None = None,
    data: aiohttp.FormData | None = None,
    headers: Mapping[str, str] | None = None,
) -> Result:
    """:func:`post`, then the vendor's ``classify`` of the reply (network failures come back as
    their own Result). Every HTTP adapter sends through this."""
    reply = await post(
        session, url, kind=kind, secrets=secrets, timeout=timeout, body=body, data=data, headers=headers
    )
    return reply if isinstance(reply, Result) else classify(reply, secrets)
