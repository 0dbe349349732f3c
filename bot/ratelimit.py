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
keeps the same sliding logs in the database (``store.rate_buckets``: one locked row per bucket),
so the replicas together stay within each budget. Slots are booked in batches (one statement for
several queued requests of an endpoint) and the moment each request leaves is checked locally, so
most requests cost no limiter round trip. The worker uses it automatically on PostgreSQL (any
number of replicas may run delivery workers); SQLite is one machine and keeps the in-process
limiter.

The worker's protocol for both: :meth:`RateLimiter.reserve` before writing the in-flight
attempt, :meth:`RateLimiter.take` at the moment the request leaves (or :meth:`RateLimiter.release`
if it will not), :meth:`RateLimiter.close` when the worker stops.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bot.channels.base import RateSpec
from store.rate_buckets import Change, RateWindows, Window

log = logging.getLogger("jixiao.ratelimit")


@dataclass(slots=True)
class Slot:
    """A granted rate-limit slot for one request to ``buckets``: ``at`` is the time the limiter
    records for it (in-process: the reservation, then the moment the request leaves; shared:
    ``until``, the latest moment the request may leave, then corrected after it left)."""

    buckets: tuple[Bucket, ...]
    at: float
    until: float | None = None
    taken: bool = False


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

    async def reserve(self, buckets: Sequence[Bucket], now: float, *, want: int = 1) -> Slot | float:
        """A slot for one request to ``buckets``, or the seconds to wait (> 0) when there is none.

        In-process: the send is recorded at ``now``; :meth:`take` moves it to the moment the
        request really leaves. ``want`` (how many requests the caller has queued for these
        buckets) only matters to the shared limiter, which books slots in batches."""
        wait = self.try_acquire(buckets, now)
        return wait if wait > 0 else Slot(tuple(buckets), now)

    async def take(self, slot: Slot, now: float) -> float:
        """The request of ``slot`` leaves at ``now``: 0.0 if it may (the slot is recorded at
        ``now`` from then on), else the seconds to wait (nothing changed; call again)."""
        if now == slot.at:
            return 0.0
        self.unrecord(slot.buckets, slot.at)
        wait = self.try_acquire(slot.buckets, now)
        if wait > 0:
            self.record(slot.buckets, slot.at)
            return wait
        slot.at = now
        return 0.0

    def release(self, slot: Slot) -> None:
        """The slot's request will not be made. In-process the slot stays counted
        (conservative, and at most one per refused attempt start)."""

    async def close(self) -> None:
        """Hand back what is booked and not used (the shared limiter); nothing to do here."""

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


@dataclass
class _Pool:
    """Booked, unused slots of one bucket set and how fast this process uses them."""

    untils: list[float] = field(default_factory=list)
    #: Moving average of the seconds between two requests on these buckets while busy.
    gap_s: float = 0.1
    last_take: float | None = None
    booking: asyncio.Task[None] | None = None


class SharedRateLimiter(RateLimiter):
    """The sliding logs kept in PostgreSQL for every replica (``store.rate_buckets``).

    The database is the authority; what costs a round trip is kept off each request's path:

    - Slots are booked in batches: one statement books slots for several requests queued on the
      same buckets (``want``), as many as this process is expected to use within ``horizon_s``
      (from the measured gap between its requests, at most ``max_batch``), each usable until
      ``until`` (``hold_s`` plus twice the expected time to use the batch). While the first slot
      of a batch is used, the next batch is booked in the background, so a busy endpoint's
      requests find a slot waiting instead of a round trip. A generous ``until`` costs nothing
      for a slot that is used (its log entry is corrected to the send time); only unused slots
      occupy the window until handed back, which is why batches are small (what this process
      uses within ``horizon_s``) rather than everything it has queued.
    - :meth:`take` (the request leaves) is local: a slot may be used while ``now <= until``. The
      logged ``until`` is corrected to the real send time by a background writer
      (:meth:`flush`, one statement per ``settle_s`` for all buckets), which only makes the slot
      leave the window sooner: the cap never depends on the correction arriving.
    - A slot not usable any more (``until`` closer than ``min_left_s``), or given back
      (:meth:`release`, :meth:`close`), is removed from the log by the same writer. A replica
      that dies leaves its booked slots logged at ``until``: they expire by themselves ``per``
      seconds later.

    The in-memory logs inherited from :class:`RateLimiter` mirror what the database returned, so
    :meth:`delay` (used to skip endpoints whose window is full when claiming) stays a free,
    slightly stale (conservative) estimate; pauses stay in memory (the worker also persists them
    on the endpoint row, which every replica's claims and attempt starts respect).
    ``try_acquire`` is not used with a shared limiter.
    """

    def __init__(
        self,
        windows: RateWindows,
        *,
        hold_s: float = 5.0,
        horizon_s: float = 2.0,
        max_batch: int = 16,
        min_left_s: float = 0.25,
        settle_s: float = 0.05,
    ) -> None:
        super().__init__()
        self.windows = windows
        self.hold_s = hold_s
        self.horizon_s = horizon_s
        self.max_batch = max(1, max_batch)
        self.min_left_s = min_left_s
        self.settle_s = settle_s
        self._pools: dict[tuple[str, ...], _Pool] = {}
        self._changes: list[Change] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Observability and benchmarks: statements sent (reservations on a request's path,
        #: reservations booked ahead in the background, corrections), slots granted, slots
        #: handed back unused (of which expired in the pool, and late at take).
        self.stats = {
            "reserve_statements": 0,
            "ahead_statements": 0,
            "settle_statements": 0,
            "granted": 0,
            "returned": 0,
            "expired": 0,
            "late": 0,
        }

    @property
    def acquires(self) -> int:
        """Limiter statements sent so far (reservations + corrections)."""
        return sum(self.stats[k] for k in ("reserve_statements", "ahead_statements", "settle_statements"))

    def _paused_for(self, buckets: Sequence[Bucket], now: float) -> float:
        return max((self._paused.get(b.key, 0.0) - now for b in buckets), default=0.0)

    @staticmethod
    def _pool_key(buckets: Sequence[Bucket]) -> tuple[str, ...]:
        return tuple(sorted(window_of(b).key for b in buckets))

    def _batch(self, pool: _Pool, want: int) -> int:
        """How many slots to book for ``want`` queued requests: what this process will use
        within ``horizon_s`` at its measured pace."""
        pace = max(1, math.ceil(self.horizon_s / max(pool.gap_s, 1e-3)))
        return max(1, min(want, self.max_batch, pace))

    def _until(self, pool: _Pool, now: float, n: int) -> float:
        return now + self.hold_s + 2.0 * pool.gap_s * (n - 1)

    async def reserve(self, buckets: Sequence[Bucket], now: float, *, want: int = 1) -> Slot | float:
        paused = self._paused_for(buckets, now)
        if paused > 0:
            return paused
        key = self._pool_key(buckets)
        pool = self._pools.setdefault(key, _Pool())
        until = self._from_pool(key, pool, now + self.min_left_s)
        if until is None and pool.booking is not None:
            await asyncio.wait({pool.booking})  # a batch booked ahead is on its way
            until = self._from_pool(key, pool, now + self.min_left_s)
        if until is None:
            n = self._batch(pool, want)
            until = self._until(pool, now, n)
            wait = await self._book(buckets, key, pool, now, until, n)
            if wait > 0:
                return wait
            until = self._from_pool(key, pool, now)
            assert until is not None
        if not pool.untils and want > 1 and pool.booking is None:
            # Book the next batch while this request goes out. Booking "at now" (a moment
            # already past when the statement runs) is conservative: it counts more of the log.
            n = self._batch(pool, want - 1)
            pool.booking = asyncio.get_running_loop().create_task(
                self._book_ahead(buckets, key, pool, now, self._until(pool, now, n), n),
                name="rate-limit-book-ahead",
            )
        return Slot(tuple(buckets), until, until)

    async def _book_ahead(
        self, buckets: Sequence[Bucket], key: tuple[str, ...], pool: _Pool, now: float, until: float, n: int
    ) -> None:
        try:
            await self._book(buckets, key, pool, now, until, n, ahead=True)
        except Exception:
            log.warning("rate limiter: booking ahead failed (the next request books itself)", exc_info=True)
        finally:
            pool.booking = None

    async def take(self, slot: Slot, now: float) -> float:
        if slot.taken:
            return 0.0
        paused = self._paused_for(slot.buckets, now)
        if paused > 0:
            return paused
        windows = [window_of(b) for b in slot.buckets]
        key = self._pool_key(slot.buckets)
        pool = self._pools.setdefault(key, _Pool())
        if slot.until is not None and now > slot.until:
            # Too late for this slot (the attempt start took longer than its hold): the request
            # may not go on it. Hand it back and use another, or book one leaving now.
            self.stats["late"] += 1
            self._give_back(key, slot.until)
            slot.until = None
        if slot.until is None:
            until = self._from_pool(key, pool, now)
            if until is None:
                wait = await self._book(slot.buckets, key, pool, now, now, 1)
                if wait > 0:
                    return wait
                until = self._from_pool(key, pool, now)
                assert until is not None
            slot.until = until
        slot.taken = True
        slot.at = now
        if pool.last_take is not None and 0 < now - pool.last_take < 10.0:
            pool.gap_s = 0.8 * pool.gap_s + 0.2 * (now - pool.last_take)
        pool.last_take = now
        if now < slot.until:
            self._queue([Change(w.key, slot.until, now) for w in windows])
        return 0.0

    def _from_pool(self, key: tuple[str, ...], pool: _Pool, not_before: float) -> float | None:
        """The earliest booked slot usable until ``not_before`` or later; slots that expire
        before are handed back."""
        if not pool.untils:
            return None
        for until in [u for u in pool.untils if u < not_before]:
            self.stats["expired"] += 1
            self._give_back(key, until)
        pool.untils = sorted(u for u in pool.untils if u >= not_before)
        return pool.untils.pop(0) if pool.untils else None

    async def _book(
        self,
        buckets: Sequence[Bucket],
        key: tuple[str, ...],
        pool: _Pool,
        now: float,
        until: float,
        want: int,
        *,
        ahead: bool = False,
    ) -> float:
        """Book up to ``want`` slots usable until ``until`` in one statement into the pool:
        0.0, or the seconds to wait (> 0) when there is no room."""
        windows = [window_of(b) for b in buckets]
        counter = "ahead_statements" if ahead else "reserve_statements"
        self.stats[counter] += 1
        grant = await self.windows.reserve(windows, now=now, until=until, want=want)
        if not grant.granted and not ahead and any(c.key in key for c in self._changes):
            # Our own corrections (slots handed back, send times lowered) are still queued and
            # would make room: write them now and ask again.
            await self.flush()
            self.stats[counter] += 1
            grant = await self.windows.reserve(windows, now=now, until=until, want=want)
        by_key = {window_of(b).key: b for b in buckets}
        for wkey, times in grant.live.items():
            bucket = by_key.get(wkey)
            if bucket is not None:
                self._logs[(bucket.key, bucket.spec.count, bucket.spec.per_seconds)] = deque(sorted(times))
        if not grant.granted:
            return grant.wait_s
        self.stats["granted"] += grant.granted
        pool.untils.extend([until] * grant.granted)
        return 0.0

    def release(self, slot: Slot) -> None:
        if slot.taken or slot.until is None:
            return
        self._give_back(self._pool_key(slot.buckets), slot.until)
        slot.until = None

    async def close(self) -> None:
        """Hand back every booked, unused slot and write the pending corrections."""
        booking = [p.booking for p in self._pools.values() if p.booking is not None]
        if booking:
            await asyncio.wait(booking)
        for key, pool in self._pools.items():
            for until in pool.untils:
                self._give_back(key, until)
            pool.untils.clear()
        await self.flush()

    def _give_back(self, key: tuple[str, ...], until: float) -> None:
        self.stats["returned"] += 1
        self._queue([Change(k, until) for k in key])

    def _queue(self, changes: Sequence[Change]) -> None:
        self._changes.extend(changes)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_soon(), name="rate-limit-settle"
            )

    async def _flush_soon(self) -> None:
        while self._changes:
            await asyncio.sleep(self.settle_s)  # real time: lets corrections share a statement
            await self.flush()

    async def flush(self) -> None:
        """Write the queued corrections now (one statement). A failure only leaves the logged
        ``until`` times in place, which is conservative: they leave the window a little later."""
        changes, self._changes = self._changes, []
        if not changes:
            return
        self.stats["settle_statements"] += 1
        try:
            await self.windows.settle(changes)
        except Exception:
            log.warning(
                "rate limiter: %d corrections not written (slots stay booked)", len(changes), exc_info=True
            )
