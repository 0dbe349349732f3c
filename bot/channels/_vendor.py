"""Helpers for adapters whose vendors answer JSON `{errcode|code, errmsg|msg}` (WeCom, DingTalk,
Feishu): most failures, throttling included, come back as HTTP 200 with a non-zero code."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from ._http import HttpReply, http_status_outcome
from .base import Outcome, Result, excerpt, parse_retry_after, redact


def classify_coded(
    reply: HttpReply,
    *,
    code: object,
    message: str | None,
    secrets: Iterable[str],
    rate_limited: Collection[int],
    permanent: Collection[int],
    transient: Collection[int] = (),
    unknown: Outcome = Outcome.TRANSIENT,
    retry_after_s: float | None = None,
    msg_id: str | None = None,
) -> Result:
    """Map an HTTP reply plus the body's vendor code to a Result.

    No parsable code: classify by HTTP status (a 200 without a code is AMBIGUOUS — something answered,
    but not the vendor API we know). Code 0 → OK. Listed codes map as given; any other non-zero code
    gets `unknown` (TRANSIENT by default, so the outbox's bounded retries apply and the code is
    recorded for an admin to look at).
    """
    secrets = tuple(secrets)
    common = {
        "http_status": reply.status,
        "vendor_msg": None if message is None else redact(str(message), secrets)[:500],
        "latency_ms": reply.latency_ms,
        "excerpt": excerpt(reply.text, secrets),
        "retry_after_s": retry_after_s,
    }
    try:
        number = int(code)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        outcome = http_status_outcome(reply.status)
        if outcome is Outcome.OK:
            outcome = Outcome.AMBIGUOUS
        return Result(outcome, vendor_code=None if code is None else str(code), **common)  # type: ignore[arg-type]
    if number == 0 and 200 <= reply.status < 300:
        return Result(Outcome.OK, vendor_code="0", vendor_msg_id=msg_id, **common)  # type: ignore[arg-type]
    if number in rate_limited or reply.status == 429:
        outcome = Outcome.RATE_LIMITED
    elif number in permanent:
        outcome = Outcome.PERMANENT
    elif number in transient or reply.status >= 500:
        outcome = Outcome.TRANSIENT
    else:
        outcome = unknown
    return Result(outcome, vendor_code=str(number), **common)  # type: ignore[arg-type]


def header_retry_after(headers: Mapping[str, str], *names: str) -> float | None:
    """First parsable retry-after value among `names` (seconds)."""
    for name in names:
        value = parse_retry_after(headers.get(name))
        if value is not None:
            return value
    return None


def errcode_classifier(
    *, rate_limited: Collection[int], permanent: Collection[int], transient: Collection[int] = ()
) -> Callable[[HttpReply, tuple[str, ...]], Result]:
    """A ``classify`` for the Tencent/Alibaba robot body shape ``{"errcode": N, "errmsg": "…"}``
    (WeCom, DingTalk), with that vendor's code lists."""

    def classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
        body = reply.json if isinstance(reply.json, dict) else {}
        return classify_coded(
            reply,
            code=body.get("errcode"),
            message=body.get("errmsg"),
            secrets=secrets,
            rate_limited=rate_limited,
            permanent=permanent,
            transient=transient,
        )

    return classify
