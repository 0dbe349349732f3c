"""Vendor rate windows shared by every replica on one PostgreSQL database (table ``rate_bucket``).

Each bucket row holds a sliding log: the send times (epoch seconds, from the senders' clocks)
still inside its window. :meth:`RateWindows.acquire` is ONE statement (one round trip, its own
transaction): it locks the rows of the buckets a send must fit in (in key order, so concurrent
acquirers never deadlock), drops the times that left each window, and appends ``now`` to every
bucket only if ALL of them have room — all or nothing, like the in-process limiter. Because the
rows are locked, two replicas can never both take the last slot of a window: whatever the number
of replicas, the vendor never sees more than the budget in any window.

``replacing`` moves a reservation: the send booked a slot before writing its in-flight attempt,
and re-takes it at the moment the request really leaves (``bot.outbox``), so the recorded time is
never earlier than the send. The old time is removed only if the new one fits.
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

_ACQUIRE = """
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::double precision[]) AS r(key, cnt, per)
), cur AS (
    SELECT b.key, req.cnt, req.per,
           ARRAY(
               SELECT t FROM unnest(array_remove(b.sends, $5::double precision)) AS t
               WHERE t > $4::double precision - req.per ORDER BY t
           ) AS live
    FROM rate_bucket AS b JOIN req ON req.key = b.key
    ORDER BY b.key
    FOR UPDATE OF b
), verdict AS (
    SELECT count(*) = cardinality($1::text[]) AND coalesce(bool_and(cardinality(live) < cnt), false) AS ok
    FROM cur
), upd AS (
    UPDATE rate_bucket AS b SET sends = cur.live || $4::double precision
    FROM cur, verdict
    WHERE b.key = cur.key AND verdict.ok
    RETURNING b.key
)
SELECT cur.key, cur.cnt, cur.per, cur.live, verdict.ok, (SELECT count(*) FROM upd) AS written
FROM cur, verdict
"""


@dataclass(frozen=True, slots=True)
class Window:
    """One window a send must fit in: ``key`` (unique per bucket and budget), at most ``count``
    sends per ``per_seconds``."""

    key: str
    count: int
    per_seconds: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :meth:`RateWindows.acquire`: ``ok`` if ``now`` was recorded in every window;
    ``live`` the send times inside each window (after the change) by key; ``wait_s`` until every
    window has room (0.0 when ``ok``)."""

    ok: bool
    live: dict[str, list[float]]
    wait_s: float


class RateWindows:
    """The shared sliding logs on a PostgreSQL (asyncpg) engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.driver != "asyncpg":
            raise ValueError("shared rate windows need PostgreSQL through asyncpg")
        self.engine = engine
        self._known: set[str] = set()

    async def acquire(
        self, windows: Sequence[Window], *, now: float, replacing: float | None = None
    ) -> Verdict:
        """Record a send at ``now`` (epoch seconds) in every window if all have room."""
        keys = sorted({w.key for w in windows})
        by_key = {w.key: w for w in windows}
        if not keys:
            return Verdict(True, {}, 0.0)
        raw = await self.engine.raw_connection()
        driver = raw.driver_connection
        broken = False
        try:
            missing = [k for k in keys if k not in self._known]
            if missing:
                await driver.execute(_ENSURE, missing)  # type: ignore[union-attr]
                self._known.update(missing)
            rows = await driver.fetch(  # type: ignore[union-attr]
                _ACQUIRE,
                keys,
                [by_key[k].count for k in keys],
                [float(by_key[k].per_seconds) for k in keys],
                float(now),
                replacing,
            )
        except Exception as error:
            broken = connection_is_broken(error)
            if broken:
                note_disconnect(self.engine)
            raise
        finally:
            clean = not broken and not driver.is_closed() and not driver.is_in_transaction()  # type: ignore[union-attr]
            await greenlet_spawn(raw.close if clean else raw.invalidate)
        ok = bool(rows and rows[0]["ok"])
        live = {r["key"]: list(r["live"]) + ([now] if ok else []) for r in rows}
        if ok:
            return Verdict(True, live, 0.0)
        wait = 0.0
        for r in rows:
            times = list(r["live"])
            if len(times) >= r["cnt"]:
                oldest = times[len(times) - r["cnt"]]
                wait = max(wait, oldest + r["per"] - now)
        if len(rows) < len(keys):  # a row vanished meanwhile: create it again and retry soon
            self._known.difference_update(keys)
        return Verdict(False, live, max(wait, 0.001))
