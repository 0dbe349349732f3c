"""Per-endpoint rate limiting for outbound sends: sliding-window logs from each adapter's ``limits``.

A sliding *log* (the exact send times in the trailing window) rather than a token bucket: it is
the same rule the vendors apply ("at most N in any 60 s"), so when our budget is N the vendor
never sees N+1 in any window, whatever the burst pattern. Budgets come from
``ChannelAdapter.limits``, which sit slightly under the vendor caps (WeCom/DingTalk 18/60 s,
Feishu 4/s + 90/60 s, Telegram 1/s per chat + 18/60 s + 25/s global, Slack 1/1.2 s) so that
network jitter between our clock and the vendor's cannot push a window over.

Times are float seconds from the worker's injected clock (``clock().timestamp()``), so tests run
on virtual time. ``try_acquire`` checks and records atomically (no await in between): the time
recorded is the moment just before the request leaves, not a reservation that might be used late.

Across restarts: nothing is kept in memory between processes; instead the worker seeds a new
limiter from the ``delivery_attempt`` table (one row per request, inserted before the request) for
the longest window, so a restarted worker counts the previous process's sends. Within one
process, every worker must share one limiter.

Across replicas (several ``jixiao serve`` on one PostgreSQL database): :class:`SharedRateLimiter`
keeps the same sliding logs in the database (``store.rate_buckets``: one locked row per bucket,
one statement per acquire), so the replicas together stay within each budget. The worker uses it
automatically on PostgreSQL; SQLite is one machine and keeps the in-process limiter.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.channels.base import RateSpec
from store.rate_buckets import RateWindows, Window


@dataclass(frozen=True, slots=True)
class Bucket:
    """One window to respect: ``key`` (e.g. ``ep:12`` or ``global:telegram``) and its budget."""

    key: str
    spec: RateSpec


def buckets_for(endpoint_id: int, kind: str, limits: Iterable[RateSpec]) -> tuple[Bucket, ...]:
    """The windows one send to ``endpoint_id`` must fit in: per-endpoint specs keyed by the
    endpoint, ``global`` specs keyed by the channel kind (Telegram's 30/s per bot)."""
    return tuple(
        Bucket(f"global:{kind}" if spec.scope == "global" else f"ep:{endpoint_id}", spec) for spec in limits
    )


class RateLimiter:
    """Sliding-window send logs keyed by ``(bucket key, count, per_seconds)``, plus pauses.

    Not thread-safe; all calls happen on the event loop, and none of them await.
    """

    def __init__(self) -> None:
        self._logs: dict[tuple[str, int, float], deque[float]] = {}
        self._paused: dict[str, float] = {}

    def _log(self, bucket: Bucket) -> deque[float]:
        key = (bucket.key, bucket.spec.count, bucket.spec.per_seconds)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque()
        return log

    @staticmethod
    def _prune(log: deque[float], per: float, now: float) -> None:
        # A send at t counts against every window (now - per, now]; older ones are gone.
        while log and log[0] <= now - per:
            log.popleft()

    def delay(self, buckets: Sequence[Bucket], now: float) -> float:
        """Seconds from ``now`` until every bucket has room (0.0 if a send may go now)."""
        wait = 0.0
        for bucket in buckets:
            until = self._paused.get(bucket.key, 0.0)
            if until > now:
                wait = max(wait, until - now)
            log = self._log(bucket)
            self._prune(log, bucket.spec.per_seconds, now)
            if len(log) >= bucket.spec.count:
                # The oldest send that must leave the window before we have room.
                oldest = log[len(log) - bucket.spec.count]
                wait = max(wait, oldest + bucket.spec.per_seconds - now)
        return wait

    def try_acquire(self, buckets: Sequence[Bucket], now: float) -> float:
        """Record a send at ``now`` if every bucket has room and return 0.0; otherwise record
        nothing and return the seconds to wait (> 0)."""
        wait = self.delay(buckets, now)
        if wait > 0:
            return wait
        for bucket in buckets:
            self._log(bucket).append(now)
        return 0.0

    async def acquire(
        self, buckets: Sequence[Bucket], now: float, *, replacing: float | None = None
    ) -> float:
        """:meth:`try_acquire`, awaitable (the shared limiter asks the database). With
        ``replacing``, the send recorded at that time is moved to ``now`` if ``now`` fits without
        it; otherwise it stays where it was and the wait is returned."""
        if replacing is None:
            return self.try_acquire(buckets, now)
        self.unrecord(buckets, replacing)
        wait = self.try_acquire(buckets, now)
        if wait > 0:
            self.record(buckets, replacing)
        return wait

    def record(self, buckets: Sequence[Bucket], at: float) -> None:
        """Count a send made at ``at`` (seeding from the persisted send log after a restart).
        Kept sorted so windows stay exact even if seeds arrive out of order."""
        for bucket in buckets:
            log = self._log(bucket)
            if not log or log[-1] <= at:
                log.append(at)
            else:
                self._logs[(bucket.key, bucket.spec.count, bucket.spec.per_seconds)] = deque(
                    sorted((*log, at))
                )

    def unrecord(self, buckets: Sequence[Bucket], at: float) -> None:
        """Forget one send recorded at ``at`` (a reservation that is being re-taken later)."""
        for bucket in buckets:
            log = self._log(bucket)
            try:
                log.remove(at)
            except ValueError:
                pass  # already pruned out of the window

    def pause(self, key: str, until: float) -> None:
        """No send to bucket ``key`` before ``until`` (vendor throttling); never shortens a pause."""
        if until > self._paused.get(key, 0.0):
            self._paused[key] = until

    def sends_in_window(self, bucket: Bucket, now: float) -> int:
        """How many recorded sends fall in the bucket's window ending at ``now``."""
        log = self._log(bucket)
        self._prune(log, bucket.spec.per_seconds, now)
        return len(log)


def window_of(bucket: Bucket) -> Window:
    """The database row of a bucket: one per key AND budget (Feishu has two windows per endpoint)."""
    return Window(
        f"{bucket.key}|{bucket.spec.count}/{bucket.spec.per_seconds:g}",
        bucket.spec.count,
        bucket.spec.per_seconds,
    )


class SharedRateLimiter(RateLimiter):
    """The sliding logs kept in PostgreSQL for every replica (``store.rate_buckets``).

    :meth:`acquire` is the authority (one statement per call). The in-memory logs inherited from
    :class:`RateLimiter` mirror what the database returned, so :meth:`delay` (used to skip
    endpoints whose window is full when claiming) stays a free, slightly stale estimate; pauses
    stay in memory (the worker also persists them on the endpoint row, which every replica's
    claims and attempt starts respect). ``try_acquire`` is not used with a shared limiter.
    """

    def __init__(self, windows: RateWindows) -> None:
        super().__init__()
        self.windows = windows
        self.acquires = 0  # statements sent (observability, benchmarks)

    async def acquire(
        self, buckets: Sequence[Bucket], now: float, *, replacing: float | None = None
    ) -> float:
        paused = max((self._paused.get(b.key, 0.0) - now for b in buckets), default=0.0)
        if paused > 0:
            return paused
        windows = {window_of(b).key: b for b in buckets}
        self.acquires += 1
        verdict = await self.windows.acquire([window_of(b) for b in buckets], now=now, replacing=replacing)
        for key, times in verdict.live.items():
            bucket = windows.get(key)
            if bucket is not None:
                self._logs[(bucket.key, bucket.spec.count, bucket.spec.per_seconds)] = deque(sorted(times))
        return 0.0 if verdict.ok else verdict.wait_s
