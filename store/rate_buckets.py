"""Vendor rate windows shared by every replica on one PostgreSQL database (table ``rate_bucket``).

Each bucket row holds a sliding log: send times (epoch seconds, from the senders' clocks) still
inside its window. Two statements, each one round trip in its own transaction, each locking the
rows it touches in key order (so concurrent callers never deadlock):

- :meth:`RateWindows.reserve` drops the times that left each window and appends up to ``want``
  copies of ``until`` to EVERY bucket of the request (as many as the fullest bucket has room for,
  all buckets the same number). A granted slot may be used for one request leaving at any moment
  in ``[now, until]``; ``until`` is recorded, not ``now``, because the log must never hold a time
  earlier than the request it stands for.
- :meth:`RateWindows.settle` corrects the log afterwards, off the request's critical path: a used
  slot's ``until`` is replaced by the moment its request really left (earlier, so the slot leaves
  the window sooner), an unused one is removed.

Why the cap holds whatever the number of replicas, their batches and their crashes: a request
leaving at ``a`` is represented in the log, from the moment it was granted, by a time ``r >= a``
(``until``, then possibly ``a`` itself). A grant at ``now`` for requests leaving at ``a >= now``
counts every logged time ``> now - per``; any earlier request ``a_i`` within ``per`` of ``a`` has
``r_i >= a_i > a - per >= now - per``, so it was counted, and the bucket's row lock makes the
count and the append one atomic step. Hence no window of ``per`` seconds ever holds more than the
budget. Lowering ``r`` to ``a`` keeps ``r >= a``; removing an unused slot removes a request that
never happened; a replica that dies with reserved slots leaves them logged at ``until`` (they
simply expire ``per`` seconds later). Removal takes out ONE occurrence per value; two replicas
logging the identical float are interchangeable (they leave the window together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from store.db import connection_is_broken, note_disconnect

_ENSURE = """
INSERT INTO rate_bucket (key, sends)
SELECT k, '{}'::double precision[] FROM unnest($1::text[]) AS k
ON CONFLICT (key) DO NOTHING
"""

# $1 keys, $2 budgets, $3 windows (s), $4 now, $5 until, $6 want.
_RESERVE = """
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::double precision[]) AS r(key, cnt, per)
), cur AS (
    SELECT b.key, req.cnt, req.per,
           ARRAY(
               SELECT t FROM unnest(b.sends) AS t
               WHERE t > $4::double precision - req.per ORDER BY t
           ) AS live
    FROM rate_bucket AS b JOIN req ON req.key = b.key
    ORDER BY b.key
    FOR UPDATE OF b
), verdict AS (
    SELECT CASE WHEN count(*) = cardinality($1::text[])
                THEN greatest(0, least($6::int, min(cnt - cardinality(live))))
                ELSE 0 END AS n
    FROM cur
), upd AS (
    UPDATE rate_bucket AS b
    SET sends = cur.live || array_fill($5::double precision, ARRAY[verdict.n])
    FROM cur, verdict
    WHERE b.key = cur.key AND verdict.n > 0
    RETURNING b.key
)
SELECT cur.key, cur.cnt, cur.per, cur.live, verdict.n, (SELECT count(*) FROM upd) AS written
FROM cur, verdict
"""

# $1 keys, $2 times, $3 add (true) / remove one occurrence (false). One row per change.
_SETTLE = """
WITH ch AS (
    SELECT * FROM unnest($1::text[], $2::double precision[], $3::boolean[]) AS c(key, t, add)
), locked AS (
    SELECT b.key, b.sends FROM rate_bucket AS b
    WHERE b.key IN (SELECT key FROM ch)
    ORDER BY b.key
    FOR UPDATE OF b
), fixed AS (
    SELECT l.key, ARRAY(
        SELECT x.t FROM (
            SELECT t, row_number() OVER (PARTITION BY t) AS rn FROM unnest(l.sends) AS t
        ) AS x
        WHERE x.rn > (SELECT count(*) FROM ch WHERE ch.key = l.key AND NOT ch.add AND ch.t = x.t)
        UNION ALL
        SELECT ch.t FROM ch WHERE ch.key = l.key AND ch.add
        ORDER BY 1
    ) AS sends
    FROM locked AS l
)
UPDATE rate_bucket AS b SET sends = fixed.sends FROM fixed WHERE b.key = fixed.key
"""


@dataclass(frozen=True, slots=True)
class Window:
    """One window a send must fit in: ``key`` (unique per bucket and budget), at most ``count``
    sends per ``per_seconds``."""

    key: str
    count: int
    per_seconds: float


@dataclass(frozen=True, slots=True)
class Grant:
    """The outcome of :meth:`RateWindows.reserve`: ``granted`` slots (0..want) logged at ``until``
    in every window; ``live`` the logged times inside each window after the change, by key;
    ``wait_s`` until every window has room for one more (0.0 when something was granted)."""

    granted: int
    live: dict[str, list[float]]
    wait_s: float

    @property
    def ok(self) -> bool:
        return self.granted > 0


@dataclass(frozen=True, slots=True)
class Change:
    """A correction for :meth:`RateWindows.settle`: in window ``key``, remove one logged ``until``
    and, if ``sent_at`` is set, log that instead (the moment the request left, ``<= until``)."""

    key: str
    until: float
    sent_at: float | None = None


class RateWindows:
    """The shared sliding logs on a PostgreSQL (asyncpg) engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.driver != "asyncpg":
            raise ValueError("shared rate windows need PostgreSQL through asyncpg")
        self.engine = engine
        self._known: set[str] = set()

    async def _run(self, keys: Sequence[str], statement: str, *args: object, fetch: bool) -> list:
        """One statement on a pooled connection (after creating missing bucket rows)."""
        raw = await self.engine.raw_connection()
        driver = raw.driver_connection
        broken = False
        try:
            missing = [k for k in keys if k not in self._known]
            if missing:
                await driver.execute(_ENSURE, missing)  # type: ignore[union-attr]
                self._known.update(missing)
            if fetch:
                return list(await driver.fetch(statement, *args))  # type: ignore[union-attr]
            await driver.execute(statement, *args)  # type: ignore[union-attr]
            return []
        except Exception as error:
            broken = connection_is_broken(error)
            if broken:
                note_disconnect(self.engine)
            raise
        finally:
            clean = not broken and not driver.is_closed() and not driver.is_in_transaction()  # type: ignore[union-attr]
            await greenlet_spawn(raw.close if clean else raw.invalidate)

    async def reserve(
        self, windows: Sequence[Window], *, now: float, until: float | None = None, want: int = 1
    ) -> Grant:
        """Grant up to ``want`` slots for requests leaving in ``[now, until]`` (``until`` defaults to
        ``now``: one request leaving at once). All windows get the same number, or none."""
        keys = sorted({w.key for w in windows})
        by_key = {w.key: w for w in windows}
        until = now if until is None else until
        if until < now:
            raise ValueError("until must not be earlier than now")
        if not keys:
            return Grant(max(want, 0), {}, 0.0)
        rows = await self._run(
            keys,
            _RESERVE,
            keys,
            [by_key[k].count for k in keys],
            [float(by_key[k].per_seconds) for k in keys],
            float(now),
            float(until),
            int(want),
            fetch=True,
        )
        granted = int(rows[0]["n"]) if rows else 0
        live = {r["key"]: list(r["live"]) + [until] * granted for r in rows}
        if granted:
            return Grant(granted, live, 0.0)
        wait = 0.0
        for r in rows:
            times = list(r["live"])
            if len(times) >= r["cnt"]:
                oldest = times[len(times) - r["cnt"]]
                wait = max(wait, oldest + r["per"] - now)
        if len(rows) < len(keys):  # a row vanished meanwhile: create it again and retry soon
            self._known.difference_update(keys)
        return Grant(0, live, max(wait, 0.001))

    async def acquire(self, windows: Sequence[Window], *, now: float) -> Grant:
        """One slot for a request leaving now (``reserve`` with ``want=1``, ``until=now``)."""
        return await self.reserve(windows, now=now)

    async def settle(self, changes: Sequence[Change]) -> None:
        """Apply corrections (see :class:`Change`) in one statement. Only ever lowers or removes
        logged times that stand for requests that left earlier or never left."""
        for change in changes:
            if change.sent_at is not None and change.sent_at > change.until:
                raise ValueError("a slot cannot be settled later than its until")
        keys_, times, adds = [], [], []
        for change in changes:
            keys_.append(change.key)
            times.append(float(change.until))
            adds.append(False)
            if change.sent_at is not None:
                keys_.append(change.key)
                times.append(float(change.sent_at))
                adds.append(True)
        if not keys_:
            return
        await self._run(sorted(set(keys_)), _SETTLE, keys_, times, adds, fetch=False)
