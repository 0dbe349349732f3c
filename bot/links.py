"""Personal links: tokens, URLs, and the guard in front of ``GET /l/{token}``.

A token is ``base64url(HMAC-SHA256(server secret, "link:" + token_salt))[:32]`` (192 bits; see
``store.campaigns``). Only its SHA-256 is stored. ``link_url`` rebuilds the URL from the secret and
the stored salt when a message is actually sent (outbox worker, reminder job), so the raw token is
never written anywhere.

Every failure — malformed, unknown, revoked, campaign closed / not yet open / past its window —
gets the SAME page with the same status (404), so the response never tells a guesser whether a
token exists. Failed lookups are counted per client address (:func:`client_of`): each adds an
increasing delay (capped), and failures past the budget in the window answer 429 instead of 404.

The throttle never refuses a valid token: only a failed lookup is counted or refused, so one
mistyped link behind an office NAT or a reverse proxy does not lock out every unit behind it.
Counting is atomic (the count is taken and compared with no ``await`` in between), so a burst
of concurrent guesses is counted in full and gets at most ``limit`` 404s. The counter is in
memory, per process. Behind a reverse proxy, set ``JIXIAO_TRUSTED_PROXIES`` (CIDRs): only a
peer inside those networks is believed about ``X-Forwarded-For``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address

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
    """Slows down, then refuses, clients that keep presenting bad link tokens.

    The n-th failure within ``window_s`` seconds waits ``min(base_delay_s × 2^(n-1),
    max_delay_s)`` before its 404; failures past ``limit`` in the window get 429 at once (no
    wait) until the window ends. Only failures are counted and refused: a valid token is served
    whatever the count. ``sleep`` and ``clock`` are injectable so tests never wait. At most
    ``max_clients`` addresses are remembered (oldest forgotten first) to bound memory.
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
        """Seconds until ``client``'s failures are forgotten, or None while under the budget."""
        entry = self._entry(client)
        if entry is None or entry.failures < self.limit:
            return None
        return max(1, int(entry.window_start + self.window_s - self.clock()) + 1)

    def count(self, client: str) -> int:
        """Count one failure for ``client`` and return its failures in the window (this one
        included). Synchronous on purpose: count and decision cannot interleave."""
        entry = self._entry(client)
        if entry is None:
            entry = self._clients[client] = _Client(0, self.clock())
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        entry.failures += 1
        return entry.failures

    async def failed(self, client: str) -> int | None:
        """Count a failure for ``client``. Within the budget: wait the failure's delay and
        return None (answer 404); past it: return the Retry-After seconds (answer 429)."""
        n = self.count(client)
        if n > self.limit:
            return self.retry_after(client) or 1
        await self.sleep(min(self.base_delay_s * 2 ** (n - 1), self.max_delay_s))
        return None

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
    """The address the throttle counts against.

    ``request.remote`` unless that peer is a configured trusted proxy
    (``Settings.trusted_proxies``); then ``X-Forwarded-For`` is read from the right, skipping
    trusted hops, and the first address not trusted is the client. A client can prepend any
    text to the header, so nothing left of the first untrusted hop is believed."""
    remote = request.remote or "unknown"
    networks = request.app[keys.SETTINGS].trusted_proxy_networks
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop[:64]
    return hops[0][:64] if hops else remote


def _trusted(address: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def too_many_page(request: web.Request, retry_after: int) -> web.Response:
    """429 (with Retry-After) for a client past its failure budget presenting a bad token."""
    resp = error_page(
        request,
        429,
        "请求过于频繁",
        "请求过于频繁，请稍后再试。",
        "Too many requests",
        "Too many failed attempts from your network; please wait and try again.",
    )
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Retry-After"] = str(retry_after)
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
    """Count the failure: within the budget the not-found page (after the failure's delay),
    past it 429."""
    retry = await request.app[THROTTLE].failed(client_of(request))
    if retry is not None:
        return too_many_page(request, retry)
    return not_found_page(request)


async def get_link_page(request: web.Request) -> web.StreamResponse:
    # The page itself lives in bot.pages (imported here to keep one import direction).
    from bot.pages import unit_page

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
