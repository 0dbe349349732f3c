"""Personal links: tokens, URLs, and the guard in front of ``GET /l/{token}``.

A token is ``base64url(HMAC-SHA256(server secret, "link:" + token_salt))[:32]`` (192 bits; see
``store.campaigns``). Only its SHA-256 is stored. ``link_url`` rebuilds the URL from the secret and
the stored salt when a message is actually sent (outbox worker, reminder job), so the raw token is
never written anywhere.

Every failure — malformed, unknown, revoked, campaign closed / not yet open / past its window —
gets the SAME page with the same status (404), so the response never tells a guesser whether a
token exists. Failed lookups are counted per client address (``request.remote``): each adds an
increasing delay (capped), and too many in the window get 429 for everything from that client.
The counter is in memory, per process; units behind one office NAT share it, which is why only
failures count and the limits are generous.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot import keys
from bot.errors import error_page
from store.campaigns import hash_token, is_well_formed_token, make_link_token
from store.models import Link

__all__ = [
    "THROTTLE",
    "FailureThrottle",
    "hash_token",
    "is_well_formed_token",
    "link_url",
    "make_link_token",
    "not_found_page",
    "setup",
]


def link_url(public_url: str, secret: bytes, link: Link) -> str:
    """The personal URL of ``link`` (``{public_url}/l/{token}``), rebuilt from the secret + salt."""
    return f"{public_url.rstrip('/')}/l/{make_link_token(secret, link.token_salt)}"


@dataclass
class _Client:
    failures: int
    window_start: float


class FailureThrottle:
    """Slows down and finally refuses clients that keep presenting bad link tokens.

    After the n-th failure within ``window_s`` seconds the response waits
    ``min(base_delay_s × 2^(n-1), max_delay_s)``; from ``limit`` failures on, the client gets 429
    until the window ends. ``sleep`` and ``clock`` are injectable so tests never wait.
    At most ``max_clients`` addresses are remembered (oldest forgotten first) to bound memory.
    """

    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = 600.0,
        limit: int = 30,
        base_delay_s: float = 0.1,
        max_delay_s: float = 3.0,
        max_clients: int = 10_000,
    ) -> None:
        self.sleep, self.clock = sleep, clock
        self.window_s, self.limit = window_s, limit
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def _entry(self, client: str) -> _Client | None:
        entry = self._clients.get(client)
        if entry is not None and self.clock() - entry.window_start >= self.window_s:
            del self._clients[client]
            return None
        return entry

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it is not blocked."""
        entry = self._entry(client)
        if entry is None or entry.failures < self.limit:
            return None
        return max(1, int(entry.window_start + self.window_s - self.clock()) + 1)

    async def failed(self, client: str) -> None:
        """Count a failure for ``client`` and wait the corresponding delay."""
        entry = self._entry(client)
        if entry is None:
            entry = self._clients[client] = _Client(0, self.clock())
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        entry.failures += 1
        await self.sleep(min(self.base_delay_s * 2 ** (entry.failures - 1), self.max_delay_s))

    def failures(self, client: str) -> int:
        entry = self._entry(client)
        return entry.failures if entry else 0


THROTTLE = web.AppKey("link_throttle", FailureThrottle)

SECURITY_HEADERS = {
    # The token is in the URL: never cache the page, never leak it through Referer.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def client_of(request: web.Request) -> str:
    return request.remote or "unknown"


def guard(request: web.Request) -> web.Response | None:
    """A 429 page (with Retry-After) for a client over its failure budget, else None."""
    retry = request.app[THROTTLE].retry_after(client_of(request))
    if retry is None:
        return None
    resp = error_page(
        request,
        429,
        "请求过于频繁",
        "请求过于频繁，请稍后再试。",
        "Too many requests",
        "Too many failed attempts from your network; please wait and try again.",
    )
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Retry-After"] = str(retry)
    return resp


def not_found_page(request: web.Request) -> web.Response:
    """The one page for every unusable link (same body and status whatever the reason)."""
    resp = error_page(
        request,
        404,
        "链接无效或已过期",
        "这个链接无法使用：可能已过期、已被更换，或地址不完整。请使用最新收到的消息中的链接，或联系项目联系人。",
        "Link not valid",
        "This link cannot be used: it may have expired, been replaced, or been copied incompletely. "
        "Use the link in the latest message you received, or contact the project coordinator.",
    )
    resp.headers.update(SECURITY_HEADERS)
    return resp


async def link_failed(request: web.Request) -> web.Response:
    """Count the failure (with its delay) and answer with the not-found page."""
    await request.app[THROTTLE].failed(client_of(request))
    return not_found_page(request)


async def get_link_page(request: web.Request) -> web.StreamResponse:
    # The page itself lives in bot.pages (imported here to keep one import direction).
    from bot.pages import unit_page

    refused = guard(request)
    if refused is not None:
        return refused
    token = request.match_info["token"]
    if not is_well_formed_token(token):
        return await link_failed(request)
    return await unit_page(request, token)


def setup(app: web.Application, *, start_workers: bool) -> None:
    """Register ``GET /l/{token}`` and the failure throttle."""
    del start_workers
    if THROTTLE not in app:
        app[THROTTLE] = FailureThrottle()
    app.router.add_get("/l/{token}", get_link_page, name="unit_link")
    # Touch SECRET early so a misconfigured app fails at build time, not on the first unit.
    assert isinstance(app[keys.SECRET], bytes)
