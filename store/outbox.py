"""The outbox: every message that leaves the process is a row written in the caller's transaction.

``enqueue`` is idempotent by ``dedupe_key`` (``INSERT … ON CONFLICT DO NOTHING``), so a job that
runs twice, a retried request or a restart never sends twice. Dedupe key conventions:
``invite:{campaign}:{unit}``, ``remind:{campaign}:{unit}:{n}``, ``summary:{schedule}:{fire_iso}``.
The delivery worker (``bot.outbox``) claims, sends and records attempts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, case, func, insert, or_, select, text, union_all, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from store.access import Grants, endpoint_visible_clause
from store.db import fetch_autocommit
from store.errors import Conflict, Invalid, NotFound, StoreError
from store.models import ChannelEndpoint, DeliveryAttempt, Link, OutboxMessage


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


async def ensure_endpoint(
    session: AsyncSession, kind: str, address: str, *, name: str = "", config: dict[str, Any] | None = None
) -> ChannelEndpoint:
    """The endpoint row for (kind, address), created if missing (race-safe)."""
    stmt = (
        _insert(session, ChannelEndpoint)
        .values(kind=kind, address=address, name=name, config=config or {}, consecutive_failures=0)
        .on_conflict_do_nothing(index_elements=["kind", "address"])
    )
    await session.execute(stmt)
    row = (
        await session.execute(
            select(ChannelEndpoint).where(ChannelEndpoint.kind == kind, ChannelEndpoint.address == address)
        )
    ).scalar_one()
    if config is not None and row.config != config:
        row.config = dict(config)
    if name and row.name != name:
        row.name = name
    return row


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """What :func:`ensure_endpoints` should hold for one (kind, address): as ``ensure_endpoint``'s
    ``name`` (empty: leave as is) and ``config`` (None: leave as is)."""

    name: str = ""
    config: dict[str, Any] | None = None


#: Per channel kind: the config key naming the environment variable that holds a coordinator
#: endpoint's secret (the adapter reads the value under the key without ``_env``: wecom ``key``,
#: dingtalk ``access_token``, feishu/telegram ``token``, slack ``url``, webhook ``secret``, email
#: ``password``), and whether the endpoint needs it (email falls back to the server's SMTP settings).
SECRET_ENV_KEYS: dict[str, tuple[str, bool]] = {
    "wecom": ("key_env", True),
    "dingtalk": ("access_token_env", True),
    "feishu": ("token_env", True),
    "telegram": ("token_env", True),
    "slack": ("url_env", True),
    "webhook": ("secret_env", True),
    "email": ("password_env", False),
}


async def add_coordinator_endpoint(
    session: AsyncSession,
    *,
    project_id: int,
    grants: Grants,
    kind: str,
    address: str,
    env_name: str,
    name: str = "",
) -> ChannelEndpoint:
    """Add (or update) a coordinator chat endpoint for ``project_id``, as an admin of it.

    Validated by the summary schedules' rule for ``params.endpoints``
    (:func:`store.schedules.check_params`, i.e. :class:`config.definition.ChannelRef`): the secret
    is referenced by variable name only. Errors carry ``where`` = ``kind`` | ``address`` | ``env``.
    An existing (kind, address) the grants do not show (another project's) is refused, not taken
    over; a visible one gets the new name and config like :func:`ensure_endpoint`.
    """
    from store.schedules import check_params

    if kind not in SECRET_ENV_KEYS:
        raise Invalid(f"未知渠道 {kind!r}", f"unknown channel kind {kind!r}", where="kind")
    key, required = SECRET_ENV_KEYS[kind]
    address, env_name, name = address.strip(), env_name.strip(), name.strip()[:200]
    if not address:
        raise Invalid("请填写地址", "the address is required", where="address")
    if required and not env_name:
        raise Invalid("请填写保存密钥的环境变量名", "name the environment variable that holds the secret",
                      where="env")  # fmt: skip
    config = {key: env_name} if env_name else {}
    try:
        check_params({"endpoints": [{"kind": kind, "address": address, "name": name, "config": config}]})
    except StoreError as exc:
        field = exc.where.rsplit(".", 1)[-1]
        raise type(exc)(exc.zh, exc.en, where="env" if field == "config" else field) from None
    existing = (
        await session.execute(
            select(ChannelEndpoint.id).where(ChannelEndpoint.kind == kind, ChannelEndpoint.address == address)
        )
    ).scalar_one_or_none()
    if existing is not None:
        visible = await session.execute(
            select(ChannelEndpoint.id).where(ChannelEndpoint.id == existing, endpoint_visible_clause(grants))
        )
        if visible.scalar_one_or_none() is None:
            raise Conflict("该地址已被其他项目的端点使用，请换一个名称或地址",
                           "another project's endpoint has this address: choose another name or address",
                           where="address")  # fmt: skip
    row = await ensure_endpoint(session, kind, address, name=name, config=config)
    if row.project_id is None:
        row.project_id = project_id
    return row


#: (kind, address) pairs per statement in ``ensure_endpoints``: 5 bound values a row for the
#: INSERT and 2 for the SELECT stay far below SQLite's 32,766-variable limit.
ENDPOINT_CHUNK = 1000


async def ensure_endpoints(
    session: AsyncSession,
    pairs: Mapping[tuple[str, str], EndpointSpec] | Iterable[tuple[str, str]],
    *,
    chunk: int = ENDPOINT_CHUNK,
) -> dict[tuple[str, str], ChannelEndpoint]:
    """``ensure_endpoint`` for many (kind, address) pairs: the rows by pair, missing ones created.

    Per ``chunk`` distinct pairs: one multi-row ``INSERT … ON CONFLICT(kind, address) DO NOTHING``
    and one SELECT, instead of two statements per pair (10,000 units: 20,000 round trips). Given
    a mapping, each row's name/config is brought up to date like ``ensure_endpoint`` does (only
    rows that differ are written). Pairs are handled in sorted order so that two transactions
    creating overlapping endpoints on PostgreSQL wait for each other instead of deadlocking.
    """
    specs: dict[tuple[str, str], EndpointSpec] = (
        dict(pairs) if isinstance(pairs, Mapping) else dict.fromkeys(pairs, EndpointSpec())
    )
    table = ChannelEndpoint.__table__  # type: ignore[attr-defined]
    stmt = _insert(session, table).on_conflict_do_nothing(index_elements=["kind", "address"])
    ordered = sorted(specs)
    postgres = session.get_bind().dialect.name == "postgresql"
    out: dict[tuple[str, str], ChannelEndpoint] = {}
    for start in range(0, len(ordered), max(1, chunk)):
        part = ordered[start : start + chunk]
        rows = [
            {
                "kind": kind,
                "address": address,
                "name": specs[(kind, address)].name,
                "config": dict(specs[(kind, address)].config or {}),
                "consecutive_failures": 0,
            }
            for kind, address in part
        ]
        # A list of parameter sets: SQLAlchemy's "insertmanyvalues" renders one multi-row INSERT
        # (asyncpg, and SQLite with RETURNING); without RETURNING SQLite takes one executemany.
        await session.execute(
            stmt.returning(table.c.id), rows, execution_options={"insertmanyvalues_page_size": chunk}
        )
        addresses = sorted({address for _, address in part})
        kinds = sorted({kind for kind, _ in part})
        if postgres:
            # One array parameter each, not IN (…) with 1,000 parameters: after five executions
            # PostgreSQL switches the prepared statement to a generic plan that scanned the table
            # comparing each row with every parameter (0.33 s per chunk at 10,000 endpoints).
            where = and_(
                ChannelEndpoint.address == any_(bindparam("addresses", addresses, type_=ARRAY(String))),
                ChannelEndpoint.kind == any_(bindparam("kinds", kinds, type_=ARRAY(String))),
            )
        else:
            where = and_(ChannelEndpoint.address.in_(addresses), ChannelEndpoint.kind.in_(kinds))
        found = await session.execute(select(ChannelEndpoint).where(where))
        wanted = set(part)  # the query matches addresses and kinds separately: keep exact pairs
        for row in found.scalars():
            if (row.kind, row.address) in wanted:
                out[(row.kind, row.address)] = row
    for key, row in out.items():
        spec = specs[key]
        if spec.config is not None and row.config != spec.config:
            row.config = dict(spec.config)
        if spec.name and row.name != spec.name:
            row.name = spec.name
    return out


async def enqueue(
    session: AsyncSession,
    *,
    dedupe_key: str,
    endpoint_id: int,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    project_id: int | None = None,
    campaign_id: int | None = None,
    link_id: int | None = None,
) -> bool:
    """Add a message unless one with ``dedupe_key`` exists. Returns True when a row was added.

    ``payload`` is the platform-neutral message (JSON of ``bot.channels.message.Message``);
    ``not_before`` defers the first attempt (quiet hours); ``not_after`` is when it becomes useless.
    """
    stmt = (
        _insert(session, OutboxMessage)
        .values(
            dedupe_key=dedupe_key,
            endpoint_id=endpoint_id,
            kind=kind,
            payload=payload,
            status="pending",
            attempt_count=0,
            throttle_count=0,
            next_attempt_at=not_before or now,
            not_after=not_after,
            project_id=project_id,
            campaign_id=campaign_id,
            link_id=link_id,
            last_error="",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One row for :func:`enqueue_many`; the fields mean what ``enqueue``'s arguments mean."""

    dedupe_key: str
    endpoint_id: int
    kind: str
    payload: dict[str, Any]
    not_before: datetime | None = None
    not_after: datetime | None = None
    project_id: int | None = None
    campaign_id: int | None = None
    link_id: int | None = None


#: Rows per multi-row INSERT in ``enqueue_many``: 14 bound values a row stays far below SQLite's
#: 32,766-variable limit, and a few hundred rows already make the per-statement cost negligible.
ENQUEUE_CHUNK = 500


async def enqueue_many(
    session: AsyncSession, messages: Sequence[NewMessage], *, now: datetime, chunk: int = ENQUEUE_CHUNK
) -> set[str]:
    """``enqueue`` for many rows at once: one multi-row ``INSERT … ON CONFLICT(dedupe_key) DO
    NOTHING RETURNING dedupe_key`` per ``chunk`` rows. Returns the dedupe keys that were added
    (keys already present, or repeated within ``messages``, are skipped as ``enqueue`` skips them).

    Measured on SQLite: 10,000 rows one ``enqueue`` at a time took 22 s (one statement and one
    thread hop each); this is one statement per chunk.
    """
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    added: set[str] = set()
    rows = [
        {
            "dedupe_key": m.dedupe_key,
            "endpoint_id": m.endpoint_id,
            "kind": m.kind,
            "payload": m.payload,
            "status": "pending",
            "attempt_count": 0,
            "throttle_count": 0,
            "next_attempt_at": m.not_before or now,
            "not_after": m.not_after,
            "project_id": m.project_id,
            "campaign_id": m.campaign_id,
            "link_id": m.link_id,
            "last_error": "",
            "created_at": now,
        }
        for m in messages
    ]
    stmt = (
        _insert(session, table)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.dedupe_key)
    )
    for start in range(0, len(rows), max(1, chunk)):
        # A list of parameter sets with RETURNING: SQLAlchemy's "insertmanyvalues" renders it as
        # multi-row INSERT statements (one compiled form, cached) on both SQLite and asyncpg.
        result = await session.execute(
            stmt, rows[start : start + chunk], execution_options={"insertmanyvalues_page_size": chunk}
        )
        added.update(result.scalars())
    return added


# ============================================================================ delivery (claims, attempts)
#
# Status machine of an outbox row (the worker in ``bot.outbox`` drives it):
#
#   pending --claim_due--> sending --mark_sent--> sent
#                             |----reschedule--> pending   (backoff, throttling, limiter wait)
#                             |----mark_failed-> failed    (PERMANENT: no retry)
#                             '----mark_dead---> dead      (gave up: attempts, age, not_after)
#
# Every transition out of ``sending`` is conditional on ``lease_owner`` (and status), so a worker
# whose lease expired and was taken over cannot overwrite the new owner's state. Delivery is
# at-least-once: a row whose lease expired mid-send is claimed again and its in-flight attempt is
# recorded as AMBIGUOUS (the vendor may or may not have it; none of the chat APIs take an
# idempotency key).

#: Outcome stored on an attempt row before its request is made (healthchecks' "Sending" pattern).
IN_FLIGHT = "in_flight"
AMBIGUOUS = "ambiguous"
#: Progress of a multi-part row: how many leading parts were delivered (payload key).
PARTS_SENT_KEY = "_parts_sent"


def _endpoint_open_clause(now: datetime) -> Any:
    """The row's endpoint is neither disabled nor paused (correlated, usable inside UPDATE).

    A scalar subquery on the endpoint's primary key, evaluated per row, not ``EXISTS``:
    PostgreSQL turns an ``EXISTS`` into a join, and on a table never analysed (a bulk enqueue
    with autovacuum off) it drove each claim from ``channel_endpoint`` through all due rows of
    every endpoint (≈ 80,000 index entries per claim with 4,000 queued) instead of walking
    ``ix_outbox_due`` in order and stopping at the claim's limit."""
    ep = ChannelEndpoint.__table__  # type: ignore[attr-defined]
    return (
        select(and_(ep.c.disabled_at.is_(None), or_(ep.c.paused_until.is_(None), ep.c.paused_until <= now)))
        .where(ep.c.id == OutboxMessage.endpoint_id)
        .scalar_subquery()
    )


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    worker_id: str,
    lease_s: float,
    limit: int,
    per_endpoint_limit: int | None = None,
    exclude_endpoint_ids: Collection[int] = (),
) -> list[OutboxMessage]:
    """Lease up to ``limit`` due rows to ``worker_id`` until ``now + lease_s`` (seconds).

    Due means ``pending`` with ``next_attempt_at <= now``, or ``sending`` with an expired lease
    (its worker died or hung: the in-flight attempt is recorded AMBIGUOUS and the row is taken
    over). Rows of a disabled or paused endpoint, or of ``exclude_endpoint_ids`` (the caller's
    rate limiter has no room for them), are skipped; ``per_endpoint_limit`` caps how many rows of
    one endpoint a single claim takes, so one busy endpoint cannot starve the others.

    Exclusivity does not depend on locks: each row is taken by a conditional
    ``UPDATE … WHERE id IN (…) AND <still due>`` and only the ids the UPDATE returns are ours, so
    two workers never both own a row, on SQLite (no SKIP LOCKED; BEGIN IMMEDIATE serialises
    writers) and on PostgreSQL (READ COMMITTED re-checks the WHERE after a concurrent update).
    On PostgreSQL the candidates are additionally locked ``FOR UPDATE SKIP LOCKED`` so concurrent
    workers pick different rows instead of queueing behind each other.
    """
    if limit <= 0:
        return []
    open_ = _endpoint_open_clause(now)
    if exclude_endpoint_ids:
        open_ = and_(open_, OutboxMessage.endpoint_id.not_in(list(exclude_endpoint_ids)))  # type: ignore[attr-defined]
    # Look at the first ``scan`` due rows only, not at every due row: ranking the whole backlog
    # made each claim O(queue) (10,000 pending rows: the claim dominated the worker). Two scans,
    # each an ordered range of ix_outbox_due (an OR across them would defeat the index): fresh
    # pending rows, and rows whose lease expired. A busy endpoint with more than
    # ``per_endpoint_limit`` rows in the window yields fewer rows this time; the caller excludes it
    # next time (it holds enough), so the following claim sees the other endpoints' rows.
    scan = max(4 * limit, 200)
    fresh = (
        select(OutboxMessage.id, OutboxMessage.endpoint_id, OutboxMessage.next_attempt_at)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now, open_)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(scan)
    )
    expired = (
        select(OutboxMessage.id, OutboxMessage.endpoint_id, OutboxMessage.next_attempt_at)
        .where(OutboxMessage.status == "sending", OutboxMessage.lease_until < now, open_)  # type: ignore[operator]
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(scan)
    )
    window = union_all(fresh.subquery().select(), expired.subquery().select()).subquery()
    if per_endpoint_limit is None:
        candidates = select(window.c.id).order_by(window.c.next_attempt_at, window.c.id).limit(limit)
    else:
        # Window function over at most 2·scan rows: the first N due rows of each endpoint.
        ranked = select(
            window.c.id,
            window.c.next_attempt_at,
            func.row_number()
            .over(partition_by=window.c.endpoint_id, order_by=(window.c.next_attempt_at, window.c.id))
            .label("rn"),
        ).subquery()
        candidates = (
            select(ranked.c.id)
            .where(ranked.c.rn <= per_endpoint_limit)
            .order_by(ranked.c.next_attempt_at, ranked.c.id)
            .limit(limit)
        )
    if session.get_bind().dialect.name == "postgresql":
        # FOR UPDATE is not allowed next to a window function or UNION: lock in an outer query.
        # Rows are locked in id order, like every multi-row lock on the outbox (no deadlocks).
        candidates = (
            select(OutboxMessage.id)
            .where(OutboxMessage.id.in_(candidates.scalar_subquery()))  # type: ignore[union-attr]
            .order_by(OutboxMessage.id)
            .with_for_update(skip_locked=True)
        )
    ids = list((await session.execute(candidates)).scalars())
    if not ids:
        return []
    lease_until = now + timedelta(seconds=lease_s)
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    taken: list[int] = []
    stale: list[int] = []
    # Two conditional UPDATEs (fresh rows, then expired leases) so we know which rows were stale.
    for was_stale, cond in (
        (False, and_(table.c.status == "pending", table.c.next_attempt_at <= now)),
        (True, and_(table.c.status == "sending", table.c.lease_until < now)),
    ):
        values: dict[str, Any] = {"status": "sending", "lease_until": lease_until, "lease_owner": worker_id}
        if was_stale:
            values["last_outcome"] = AMBIGUOUS
            values["last_error"] = "lease expired during send: outcome unknown"
        got = list(
            (
                await session.execute(
                    update(table).where(table.c.id.in_(ids), cond).values(**values).returning(table.c.id)
                )
            ).scalars()
        )
        (stale if was_stale else taken).extend(got)
    if stale:
        # The previous owner's request may or may not have reached the vendor.
        attempts = DeliveryAttempt.__table__  # type: ignore[attr-defined]
        # The old owner's attempts: locked in id order after their rows (the order of every
        # outbox transaction, see record_deliveries), whatever the old owner is doing.
        in_flight = select(attempts.c.id).where(
            attempts.c.outbox_id.in_(stale), attempts.c.outcome == IN_FLIGHT
        )
        if session.get_bind().dialect.name == "postgresql":
            in_flight = in_flight.order_by(attempts.c.id).with_for_update()
        await session.execute(
            update(attempts)
            .where(attempts.c.id.in_(in_flight.scalar_subquery()), attempts.c.outcome == IN_FLIGHT)
            .values(
                outcome=AMBIGUOUS,
                finished_at=now,
                excerpt="lease expired before the worker reported a result (worker stopped or hung)",
            )
        )
    mine = taken + stale
    if not mine:
        return []
    rows = (
        await session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.id.in_(mine))  # type: ignore[union-attr]
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
    ).scalars()
    return list(rows)


def _owned(message_id: int, worker_id: str) -> Any:
    return and_(
        OutboxMessage.id == message_id,
        OutboxMessage.status == "sending",
        OutboxMessage.lease_owner == worker_id,
    )


@dataclass(frozen=True, slots=True)
class AttemptStart:
    """A request about to be made for an outbox row (see :func:`record_attempt_starts`).

    ``new_attempt`` counts a new try of the row (its first part); later parts of the same try
    pass False and share its ``attempt_no``. ``note`` (≤ 200 chars) goes into the excerpt.
    """

    message_id: int
    started_at: datetime
    new_attempt: bool = True
    note: str = ""


#: PostgreSQL: every attempt start of a batch as ONE statement (see :func:`record_attempt_starts`).
#: The rows are locked first, in id order (the ``locked`` CTE is materialised, so every lock is
#: taken before any row is updated), like every outbox transaction (:func:`record_deliveries`);
#: the UPDATE then re-checks lease, status and the endpoint on each row's latest version (READ
#: COMMITTED), and the in-flight attempts are inserted from what it returned. The placeholders
#: are filled by :data:`_PG_STARTS` (asyncpg, ``$n``) and :data:`_PG_STARTS_TEXT` (a session).
#:
#: Written so that the primary key is the only way in, whatever the statistics say: the lease
#: check is one ``IS TRUE`` expression (no index matches it) and the endpoint check a scalar
#: subquery (never turned into a join). Without that, on a table never analysed (bulk enqueue,
#: autovacuum off) the planner drove the UPDATE from ``channel_endpoint`` through the endpoint
#: and ``ix_outbox_due`` indexes, reading every ``sending`` index entry, dead ones included, on
#: each start: 8,000 index entries per start after 10,000 sends, most of PostgreSQL's CPU.
_PG_STARTS_TEMPLATE = """
WITH s AS (
    SELECT * FROM unnest(CAST({ids} AS int[]), CAST({new} AS boolean[]),
                         CAST({started} AS timestamptz[]), CAST({notes} AS text[]))
        AS s(message_id, new_attempt, started_at, note)
), locked AS MATERIALIZED (
    SELECT o.id FROM outbox_message AS o
    WHERE o.id = ANY(CAST({ids} AS int[]))
    ORDER BY o.id
    FOR UPDATE
), upd AS (
    UPDATE outbox_message AS o
    SET lease_owner = CAST({worker} AS text),
        attempt_count = o.attempt_count + CASE WHEN s.new_attempt THEN 1 ELSE 0 END
    FROM locked JOIN s ON s.message_id = locked.id
    WHERE o.id = locked.id
      AND (o.status = 'sending' AND o.lease_owner = CAST({worker} AS text)) IS TRUE
      AND (
          SELECT e.disabled_at IS NULL
                 AND (e.paused_until IS NULL OR e.paused_until <= CAST({now} AS timestamptz))
          FROM channel_endpoint AS e WHERE e.id = o.endpoint_id
      )
    RETURNING o.id, o.attempt_count, s.started_at, s.note
)
INSERT INTO delivery_attempt (outbox_id, attempt_no, worker_id, started_at, outcome, excerpt)
SELECT upd.id, upd.attempt_count, CAST({worker} AS text), upd.started_at, 'in_flight', upd.note
FROM upd ORDER BY upd.id
RETURNING id, outbox_id, attempt_no
"""
_PG_STARTS = _PG_STARTS_TEMPLATE.format(ids="$1", new="$2", started="$3", notes="$4", worker="$5", now="$6")
_PG_STARTS_TEXT = text(
    _PG_STARTS_TEMPLATE.format(
        ids=":ids", new=":new", started=":started", notes=":notes", worker=":worker", now=":now"
    )
)


def _pg_start_args(
    starts: Sequence[AttemptStart], worker_id: str, now: datetime
) -> tuple[list[int], list[bool], list[datetime], list[str], str, datetime]:
    for at in (now, *(st.started_at for st in starts)):
        if at.utcoffset() is None:
            raise ValueError("attempt start times must be timezone-aware")
    if len({st.message_id for st in starts}) != len(starts):
        raise ValueError("at most one attempt start per message in one call")
    return (
        [st.message_id for st in starts],
        [st.new_attempt for st in starts],
        [st.started_at for st in starts],
        [st.note[:200] for st in starts],
        worker_id,
        now,
    )


async def record_attempt_starts(
    session: AsyncSession, starts: Sequence[AttemptStart], *, worker_id: str, now: datetime
) -> dict[int, tuple[int, int]]:
    """Insert one ``delivery_attempt`` row per start as ``in_flight`` BEFORE the requests are made.

    Returns ``{message_id: (attempt_id, attempt_no)}`` for the rows that may be sent. A row missing
    from the result must not be sent: it is no longer leased to ``worker_id``, or its endpoint was
    disabled or paused meanwhile (e.g. by another worker after a permanent error or a throttle;
    checked at ``now``). One attempt row is written per HTTP request, so the table is also the
    persisted send log the rate limiter is seeded from after a restart. At most one start per
    message in one call (parts of a split message are sent one after the other).

    Set-based, so the worker can record the starts of every send that became ready at the same
    moment at once: on PostgreSQL one statement (:data:`_PG_STARTS_TEMPLATE`; the delivery worker
    runs the same statement outside a session with :func:`record_attempt_starts_now`), on SQLite
    one guarded UPDATE per kind of start and one multi-row INSERT.
    """
    if not starts:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        ids, new, started, notes, worker, at = _pg_start_args(starts, worker_id, now)
        result = await session.execute(
            _PG_STARTS_TEXT,
            {"ids": ids, "new": new, "started": started, "notes": notes, "worker": worker, "now": at},
        )
        return {int(m): (int(a), int(n)) for a, m, n in result.all()}
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    numbers: dict[int, int] = {}
    for new_attempt in (True, False):
        ids = [st.message_id for st in starts if st.new_attempt is new_attempt]
        if not ids:
            continue
        values: dict[str, Any] = {"lease_owner": worker_id}
        if new_attempt:
            values["attempt_count"] = table.c.attempt_count + 1
        result = await session.execute(
            update(table)
            .where(
                table.c.id.in_(sorted(ids)),
                table.c.status == "sending",
                table.c.lease_owner == worker_id,
                _endpoint_open_clause(now),
            )
            .values(**values)
            .returning(table.c.id, table.c.attempt_count)
        )
        numbers.update((int(i), int(n)) for i, n in result.all())
    if not numbers:
        return {}
    attempts = DeliveryAttempt.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "outbox_id": st.message_id,
            "attempt_no": numbers[st.message_id],
            "worker_id": worker_id,
            "started_at": st.started_at,
            "outcome": IN_FLIGHT,
            "excerpt": st.note[:200],
        }
        for st in starts
        if st.message_id in numbers
    ]
    # Core INSERT … RETURNING with a list of parameter sets (one multi-row statement): no ORM
    # unit of work on this hot path. Matched back by outbox_id, which is unique within the call.
    inserted = await session.execute(insert(attempts).returning(attempts.c.id, attempts.c.outbox_id), rows)
    return {int(outbox_id): (int(attempt_id), numbers[int(outbox_id)]) for attempt_id, outbox_id in inserted}


async def record_attempt_starts_now(
    engine: AsyncEngine, starts: Sequence[AttemptStart], *, worker_id: str, now: datetime
) -> dict[int, tuple[int, int]]:
    """:func:`record_attempt_starts` as a transaction of its own, on PostgreSQL in one round trip
    (the same statement, autocommitted: :func:`store.db.fetch_autocommit`). The delivery worker's
    path: every request waits for its attempt start, so the start's round trips are on each
    send's critical path (four with a session: BEGIN, UPDATE, INSERT, COMMIT). PostgreSQL only."""
    if not starts:
        return {}
    rows = await fetch_autocommit(engine, _PG_STARTS, *_pg_start_args(starts, worker_id, now))
    return {int(r["outbox_id"]): (int(r["id"]), int(r["attempt_no"])) for r in rows}


async def record_attempt_start(
    session: AsyncSession,
    *,
    message_id: int,
    worker_id: str,
    now: datetime,
    new_attempt: bool = True,
    note: str = "",
) -> DeliveryAttempt | None:
    """One :func:`record_attempt_starts`: the in-flight attempt row, or None (do not send)."""
    got = await record_attempt_starts(
        session, [AttemptStart(message_id, now, new_attempt, note)], worker_id=worker_id, now=now
    )
    if message_id not in got:
        return None
    attempt_id, attempt_no = got[message_id]
    return DeliveryAttempt(
        id=attempt_id,
        outbox_id=message_id,
        attempt_no=attempt_no,
        worker_id=worker_id,
        started_at=now,
        outcome=IN_FLIGHT,
        excerpt=note[:200],
    )


async def record_attempt_result(
    session: AsyncSession,
    *,
    attempt_id: int,
    now: datetime,
    outcome: str,
    latency_ms: float | None,
    http_status: int | None = None,
    vendor_code: str | None = None,
    retry_after_s: float | None = None,
    excerpt: str = "",
) -> None:
    """Complete an attempt row. ``excerpt`` must already be redacted (no key, token, sign or
    webhook URL); it is cut to the column's 2000 characters."""
    await record_attempt_results(
        session,
        [
            AttemptResult(
                attempt_id, now, outcome, latency_ms, http_status, vendor_code, retry_after_s, excerpt
            )
        ],
    )


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How an attempt ended (see :func:`record_attempt_results`). ``excerpt`` must already be
    redacted; ``latency_ms`` in milliseconds."""

    attempt_id: int
    finished_at: datetime
    outcome: str
    latency_ms: float | None
    http_status: int | None = None
    vendor_code: str | None = None
    retry_after_s: float | None = None
    excerpt: str = ""


async def record_attempt_results(session: AsyncSession, results: Sequence[AttemptResult]) -> None:
    """Complete many attempt rows with one executemany UPDATE (one round trip)."""
    if not results:
        return
    table = DeliveryAttempt.__table__  # type: ignore[attr-defined]
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            finished_at=bindparam("b_finished_at"),
            outcome=bindparam("b_outcome"),
            latency_ms=bindparam("b_latency_ms"),
            http_status=bindparam("b_http_status"),
            vendor_code=bindparam("b_vendor_code"),
            retry_after_s=bindparam("b_retry_after_s"),
            excerpt=bindparam("b_excerpt"),
        ),
        [
            {
                "b_id": r.attempt_id,
                "b_finished_at": r.finished_at,
                "b_outcome": r.outcome,
                "b_latency_ms": None if r.latency_ms is None else int(round(r.latency_ms)),
                "b_http_status": r.http_status,
                "b_vendor_code": None if r.vendor_code is None else str(r.vendor_code)[:50],
                "b_retry_after_s": r.retry_after_s,
                "b_excerpt": r.excerpt[:2000],
            }
            for r in sorted(results, key=lambda r: r.attempt_id)  # lock order: by id
        ],
    )


async def record_parts_sent(
    session: AsyncSession, *, message_id: int, worker_id: str, parts_sent: int
) -> bool:
    """Remember that the first ``parts_sent`` parts of a split message were delivered, so a retry
    resumes after them instead of resending (stored in the payload under ``_parts_sent``)."""
    row = await session.get(OutboxMessage, message_id, populate_existing=True)
    if row is None or row.status != "sending" or row.lease_owner != worker_id:
        return False
    row.payload = {**row.payload, PARTS_SENT_KEY: parts_sent}  # reassign: in-place JSON edits are lost
    return True


@dataclass(frozen=True, slots=True)
class Sent:
    """A row whose last part the vendor accepted (see :func:`mark_sent_many`)."""

    message_id: int
    endpoint_id: int
    link_id: int | None
    sent_at: datetime
    vendor_msg_id: str | None = None


async def mark_sent_many(session: AsyncSession, sent: Sequence[Sent], *, worker_id: str) -> None:
    """Many rows were delivered: each becomes ``sent`` (only while still leased to ``worker_id``),
    their endpoints record a success (``consecutive_failures`` 0, ``last_success_at``), and their
    links are marked sent (the link's lifecycle starts with its first delivered message).

    One executemany UPDATE each for the rows, their endpoints and their links. The endpoint and
    link updates do not depend on the lease: the vendor did accept those messages, whoever owns
    the row now.
    """
    if not sent:
        return
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    await session.execute(
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.status == "sending",
            table.c.lease_owner == bindparam("b_owner"),
        )
        .values(
            status="sent",
            sent_at=bindparam("b_sent_at"),
            lease_until=None,
            last_outcome="ok",
            last_error="",
            vendor_msg_id=bindparam("b_vendor_msg_id"),
        ),
        [
            {
                "b_id": s.message_id,
                "b_owner": worker_id,
                "b_sent_at": s.sent_at,
                "b_vendor_msg_id": None if s.vendor_msg_id is None else s.vendor_msg_id[:200],
            }
            for s in sorted(sent, key=lambda s: s.message_id)  # lock order: by id
        ],
    )
    # Endpoints: the latest success of each, sorted by id so that two workers updating the same
    # endpoints take the row locks in the same order (PostgreSQL: no deadlock between them).
    latest: dict[int, datetime] = {}
    for s in sent:
        if s.endpoint_id not in latest or latest[s.endpoint_id] < s.sent_at:
            latest[s.endpoint_id] = s.sent_at
    ep = ChannelEndpoint.__table__  # type: ignore[attr-defined]
    await session.execute(
        update(ep)
        .where(ep.c.id == bindparam("b_id"))
        .values(consecutive_failures=0, last_success_at=bindparam("b_at")),
        [{"b_id": e, "b_at": at} for e, at in sorted(latest.items())],
    )
    links = sorted((s.link_id, s.sent_at) for s in sent if s.link_id is not None)
    if links:
        lt = Link.__table__  # type: ignore[attr-defined]
        await session.execute(
            update(lt)
            .where(lt.c.id == bindparam("b_id"), lt.c.sent_at.is_(None))
            .values(sent_at=bindparam("b_at")),
            [{"b_id": link_id, "b_at": at} for link_id, at in links],
        )


async def mark_sent(
    session: AsyncSession,
    *,
    message_id: int,
    worker_id: str,
    now: datetime,
    vendor_msg_id: str | None = None,
) -> bool:
    """The row was delivered; also records the endpoint's success. False if we lost the lease."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    row = (
        await session.execute(
            select(table.c.endpoint_id, table.c.link_id).where(
                table.c.id == message_id, table.c.status == "sending", table.c.lease_owner == worker_id
            )
        )
    ).one_or_none()
    if row is None:
        return False
    await mark_sent_many(session, [Sent(message_id, row[0], row[1], now, vendor_msg_id)], worker_id=worker_id)
    return True


async def reschedule(
    session: AsyncSession,
    *,
    message_id: int,
    worker_id: str,
    at: datetime,
    outcome: str | None = None,
    error: str = "",
    throttled: bool = False,
    endpoint_failure: bool = False,
) -> bool:
    """Give the row back as ``pending``, due at ``at``.

    ``throttled``: the vendor rate-limited this try, so it does not count as an attempt
    (``attempt_count`` is given back, ``throttle_count`` goes up). ``endpoint_failure`` bumps the
    endpoint's ``consecutive_failures`` (transient/ambiguous errors). With ``outcome`` None the
    row is just released (e.g. our own limiter had no slot) and its last outcome is kept.
    """
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    values: dict[str, Any] = {
        "status": "pending",
        "next_attempt_at": at,
        "lease_until": None,
        "lease_owner": None,
    }
    if outcome is not None:
        values["last_outcome"] = outcome
        values["last_error"] = error[:1000]
    if throttled:
        values["attempt_count"] = case((table.c.attempt_count > 0, table.c.attempt_count - 1), else_=0)
        values["throttle_count"] = table.c.throttle_count + 1
    res = await session.execute(
        update(table)
        .where(table.c.id == message_id, table.c.status == "sending", table.c.lease_owner == worker_id)
        .values(**values)
        .returning(table.c.endpoint_id)
    )
    endpoint_id = res.scalar_one_or_none()
    if endpoint_id is None:
        return False
    if endpoint_failure:
        ep = ChannelEndpoint.__table__  # type: ignore[attr-defined]
        await session.execute(
            update(ep)
            .where(ep.c.id == endpoint_id)
            .values(consecutive_failures=ep.c.consecutive_failures + 1)
        )
    return True


async def mark_failed(
    session: AsyncSession, *, message_id: int, worker_id: str, now: datetime, error: str
) -> bool:
    """A permanent error: the row is ``failed`` and never retried. ``error`` must be redacted."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    res = await session.execute(
        update(table)
        .where(table.c.id == message_id, table.c.status == "sending", table.c.lease_owner == worker_id)
        .values(status="failed", lease_until=None, last_outcome="permanent", last_error=error[:1000])
    )
    return bool(res.rowcount)


async def mark_dead(
    session: AsyncSession,
    *,
    message_id: int,
    worker_id: str,
    now: datetime,
    reason: str,
    outcome: str | None = None,
) -> bool:
    """We gave up (too many attempts, older than the retry horizon, or past ``not_after``)."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    values: dict[str, Any] = {"status": "dead", "lease_until": None, "last_error": reason[:1000]}
    if outcome is not None:
        values["last_outcome"] = outcome
    res = await session.execute(
        update(table)
        .where(table.c.id == message_id, table.c.status == "sending", table.c.lease_owner == worker_id)
        .values(**values)
    )
    return bool(res.rowcount)


# ============================================================================ endpoints (admin + worker)


async def get_endpoint(session: AsyncSession, endpoint_id: int) -> ChannelEndpoint:
    """The endpoint row; NotFound if there is none."""
    row = await session.get(ChannelEndpoint, endpoint_id, populate_existing=True)
    if row is None:
        raise NotFound(
            f"渠道端点不存在：{endpoint_id}", f"no such channel endpoint: {endpoint_id}", where="endpoint"
        )
    return row


async def pause_endpoint(session: AsyncSession, endpoint_id: int, *, until: datetime) -> None:
    """Persist vendor throttling: no row of the endpoint is claimed or sent before ``until``.
    A later pause never shortens an existing one."""
    ep = ChannelEndpoint.__table__  # type: ignore[attr-defined]
    await session.execute(
        update(ep)
        .where(ep.c.id == endpoint_id, or_(ep.c.paused_until.is_(None), ep.c.paused_until < until))
        .values(paused_until=until)
    )


async def disable_endpoint(session: AsyncSession, endpoint_id: int, *, reason: str, now: datetime) -> None:
    """Stop sending to the endpoint after a permanent error; ``reason`` (redacted) is shown to
    admins. Its pending rows stay ``pending`` and are not claimed until ``enable_endpoint``, so
    fixing the configuration and re-enabling delivers them."""
    ep = ChannelEndpoint.__table__  # type: ignore[attr-defined]
    await session.execute(
        update(ep)
        .where(ep.c.id == endpoint_id)
        .values(
            disabled_at=func.coalesce(ep.c.disabled_at, now),
            disabled_reason=reason[:500],
            consecutive_failures=ep.c.consecutive_failures + 1,
        )
    )


async def enable_endpoint(session: AsyncSession, endpoint_id: int) -> ChannelEndpoint:
    """Re-enable a disabled endpoint (after an admin fixed it) and lift any pause."""
    row = await get_endpoint(session, endpoint_id)
    row.disabled_at = None
    row.disabled_reason = ""
    row.consecutive_failures = 0
    row.paused_until = None
    await session.flush()
    return row


async def list_endpoints(
    session: AsyncSession,
    *,
    kind: str | None = None,
    disabled: bool | None = None,
    grants: Grants | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[ChannelEndpoint]:
    """Endpoints by id; ``disabled`` True/False filters on ``disabled_at``; ``grants`` keeps the
    endpoints of the caller's projects (``store.access.endpoint_visible_clause``)."""
    stmt = select(ChannelEndpoint).order_by(ChannelEndpoint.id)
    if grants is not None and not grants.all_projects:
        stmt = stmt.where(endpoint_visible_clause(grants))
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    if kind is not None:
        stmt = stmt.where(ChannelEndpoint.kind == kind)
    if disabled is True:
        stmt = stmt.where(ChannelEndpoint.disabled_at.is_not(None))  # type: ignore[union-attr]
    elif disabled is False:
        stmt = stmt.where(ChannelEndpoint.disabled_at.is_(None))  # type: ignore[union-attr]
    return list((await session.execute(stmt)).scalars())


async def list_outbox(
    session: AsyncSession,
    *,
    status: str | None = None,
    kind: str | None = None,
    endpoint_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
    grants: Grants | None = None,
    project_id: int | None = None,
) -> list[OutboxMessage]:
    """Outbox rows, newest first, optionally filtered by status, message kind, endpoint, project
    and the caller's grants."""
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit).offset(offset)  # type: ignore[union-attr]
    if grants is not None and not grants.all_projects:
        stmt = stmt.where(grants.where(OutboxMessage.project_id))
    if project_id is not None:
        stmt = stmt.where(OutboxMessage.project_id == project_id)
    if status is not None:
        stmt = stmt.where(OutboxMessage.status == status)
    if kind is not None:
        stmt = stmt.where(OutboxMessage.kind == kind)
    if endpoint_id is not None:
        stmt = stmt.where(OutboxMessage.endpoint_id == endpoint_id)
    return list((await session.execute(stmt)).scalars())


async def list_attempts(session: AsyncSession, *, message_id: int) -> list[DeliveryAttempt]:
    """Every attempt (one row per HTTP request) of an outbox row, oldest first."""
    stmt = (
        select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == message_id).order_by(DeliveryAttempt.id)  # type: ignore[arg-type]
    )
    return list((await session.execute(stmt)).scalars())


async def outbox_stats(session: AsyncSession, *, grants: Grants | None = None) -> dict[str, int]:
    """Row counts by status (every status present, zeros included) plus ``endpoints_disabled``,
    within ``grants`` when given."""
    counts = {s: 0 for s in ("pending", "sending", "sent", "failed", "dead", "cancelled")}
    by_status = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    disabled = (
        select(func.count()).select_from(ChannelEndpoint).where(ChannelEndpoint.disabled_at.is_not(None))  # type: ignore[union-attr]
    )
    if grants is not None and not grants.all_projects:
        by_status = by_status.where(grants.where(OutboxMessage.project_id))
        disabled = disabled.where(endpoint_visible_clause(grants))
    for status, n in (await session.execute(by_status)).all():
        counts[status] = int(n)
    counts["endpoints_disabled"] = int((await session.execute(disabled)).scalar_one())
    return counts


async def recent_send_times(session: AsyncSession, *, since: datetime) -> list[tuple[int, str, datetime]]:
    """``(endpoint_id, endpoint kind, started_at)`` of every request made since ``since``: the
    persisted send log that seeds the rate limiter after a restart, so a new process cannot
    exceed a vendor cap within the window the previous one was in."""
    stmt = (
        select(OutboxMessage.endpoint_id, ChannelEndpoint.kind, DeliveryAttempt.started_at)
        .join(OutboxMessage, OutboxMessage.id == DeliveryAttempt.outbox_id)
        .join(ChannelEndpoint, ChannelEndpoint.id == OutboxMessage.endpoint_id)
        .where(DeliveryAttempt.started_at >= since)
        .order_by(DeliveryAttempt.started_at)
    )
    return [(int(e), str(k), t) for e, k, t in (await session.execute(stmt)).all()]


async def last_sent_at(session: AsyncSession, project_id: int, *, kind: str) -> datetime | None:
    """When the newest message of ``kind`` (e.g. ``summary``) for the project was delivered."""
    stmt = select(func.max(OutboxMessage.sent_at)).where(
        OutboxMessage.project_id == project_id, OutboxMessage.kind == kind, OutboxMessage.status == "sent"
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def retry_message(
    session: AsyncSession, message_id: int, *, grants: Grants | None = None, now: datetime
) -> None:
    """Put a failed or dead message back in the queue (due now, its attempt count kept)."""
    stmt = select(OutboxMessage).where(OutboxMessage.id == message_id)
    if grants is not None and not grants.all_projects:
        stmt = stmt.where(grants.where(OutboxMessage.project_id))
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"消息不存在：{message_id}", f"no such message: {message_id}", where="message")
    if row.status not in ("failed", "dead"):
        from store.errors import Conflict

        raise Conflict(f"只有失败的消息可以重试（当前 {row.status}）", f"only failed messages can be retried (now {row.status})",
                       where="message")  # fmt: skip
    row.status = "pending"
    row.next_attempt_at = now
    row.not_after = None if row.not_after is not None and row.not_after <= now else row.not_after
    row.lease_until = None
    row.lease_owner = None
    await session.flush()


async def record_deliveries(
    session: AsyncSession,
    *,
    results: Sequence[AttemptResult],
    sent: Sequence[Sent] = (),
    parts_sent: Sequence[tuple[int, int]] = (),
    worker_id: str,
) -> None:
    """The delivery worker's result batch in the caller's transaction: attempt ``results``, the
    ``sent`` rows (:func:`mark_sent_many`) and split-message progress ``(message_id, parts
    delivered)`` (:func:`record_parts_sent`). Every result must belong to a row in ``sent`` or
    ``parts_sent``.

    Lock order, as in every outbox transaction (PostgreSQL): the outbox rows first, in id order,
    then their attempts (by id), then endpoints (by id), then links (by id). A claim taking over
    expired leases locks rows, then their in-flight attempts; writing attempts before rows here
    deadlocked against it (seen with three workers; tests/outbox/test_claim_concurrency.py).
    """
    await lock_messages(session, [s.message_id for s in sent] + [m for m, _ in parts_sent])
    await record_attempt_results(session, results)
    for message_id, n in sorted(parts_sent):
        await record_parts_sent(session, message_id=message_id, worker_id=worker_id, parts_sent=n)
    await mark_sent_many(session, sent, worker_id=worker_id)


async def lock_messages(session: AsyncSession, message_ids: Collection[int]) -> None:
    """Lock outbox rows in id order (PostgreSQL; SQLite has one writer): the first step of a
    transaction that also updates their attempts or endpoints, so that all such transactions
    take their locks in one order (see :func:`record_deliveries`)."""
    if not message_ids or session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        select(OutboxMessage.id)
        .where(OutboxMessage.id == any_(sorted(set(message_ids))))  # type: ignore[arg-type]
        .order_by(OutboxMessage.id)
        .with_for_update()
    )
