"""The unit page's hot path: each request is ONE hand-written unit of work on the driver.

``GET /l/{token}`` and the answer/payment POSTs run thousands of times in a campaign; through the
ORM each cost ~2.5 ms of event-loop CPU (session, identity map, per-statement compile-cache
lookups, four aiosqlite thread trips per statement). Here each request is one function
(:meth:`LinkPageStore.read_page`, :meth:`~LinkPageStore.mark_opened`,
:meth:`~LinkPageStore.submit_answers`, :meth:`~LinkPageStore.submit_confirmation`) that:

- takes a raw connection from the SAME engines as the rest of the app (so the SQLite write
  engine's single connection still serialises every writer of the process);
- runs SQL compiled ONCE per dialect from SQLAlchemy Core statements built at import (table and
  column names come from ``store.models``), with the columns' own type processors applied to
  parameters and results (datetimes, dates, booleans, JSON are stored exactly as the ORM stores
  them);
- returns plain frozen dataclasses.

How a unit of work runs (it is written once, as a coroutine over a tiny :class:`_Tx` interface):

- **SQLite** (``store.db``'s one-hop aiosqlite adapter): the whole transaction — ``BEGIN``
  (``BEGIN IMMEDIATE`` for writes), every statement, ``COMMIT``/``ROLLBACK`` — runs in ONE trip to
  the connection's worker thread. The coroutine never really suspends there (:class:`_SqliteTx`
  calls sqlite3 synchronously), so it is driven to completion in that thread by :func:`_drive`.
  The writer lock is held only for the SQL itself, never across event-loop turns.
- **PostgreSQL** (asyncpg): awaited on the loop with asyncpg's prepared-statement cache; writes in
  one transaction that locks the link and its unit rows (``FOR UPDATE OF link, unit``), so
  submissions through one link — and for one unit across its links — apply one at a time.
- **Anything else** (a future aiosqlite without the internals ``store.db`` uses): the same
  coroutine over ``AsyncConnection.exec_driver_sql`` (slower, same results; tested).

Callbacks passed in (``key_for``, ``answers_for``, …) may run on the SQLite worker thread: they
must be pure (no I/O, no awaits, no event-loop calls).

Invariants are those of ``store.answers`` (which keeps the ORM versions for the API, imports and
tests): one ``is_current`` response per (project, unit, questionnaire) and one current
confirmation per disbursement, gap-free versions, idempotency by ``submission_key``, nothing
stored when validation fails, ``opened_at`` / ``answered_at`` / ``confirmed_at`` set once.

Unlike ordinary store functions these own their transaction (begin + commit): a unit of work in
one worker-thread trip is the point. Questionnaire definitions are parsed once per
``(questionnaire id, version)`` and cached here: questionnaire rows are immutable (a changed
questionnaire is a new version row, see ``store.projects._sync_questionnaire``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import and_, bindparam, case, exists, func, insert, null, select, tuple_, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import Executable
from sqlalchemy.types import NullType
from sqlalchemy.util import greenlet_spawn

from config.definition import QuestionnaireDef
from store.answers import (
    MAX_VERSIONS,
    AnswerErrors,
    FieldErrors,
    ResubmittedDifferently,
    confirmation_texts,
    next_version,
    stored_confirmation,
    today_in,
    validate_answers,
    validate_confirmation,
)
from store.db import OneHopSqliteDBAPI, connection_is_broken, note_disconnect, nothing_was_sent
from store.errors import Conflict, Invalid, NotFound
from store.models import (
    Answer,
    Campaign,
    Disbursement,
    Link,
    PaymentConfirmation,
    Project,
    Questionnaire,
    Response,
    Unit,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Parsed questionnaires kept per store (there are a handful per deployment; beyond this many
#: the cache starts over rather than growing without bound).
QUESTIONNAIRE_CACHE_MAX = 256
#: SQLSTATE of a unique violation (PostgreSQL).
UNIQUE_VIOLATION = "23505"

# ----------------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A link with what its page needs (one joined row). Datetimes tz-aware UTC."""

    link_id: int
    unit_id: int
    campaign_id: int
    revoked_at: datetime | None
    opened_at: datetime | None
    answered_at: datetime | None
    confirmed_at: datetime | None
    campaign_status: str
    opens_at: datetime
    closes_at: datetime
    ask_confirmations: bool
    campaign_name: str
    project_id: int
    questionnaire_id: int | None
    questionnaire_version: int | None
    unit_name: str
    project_name: str
    timezone: str

    def usable(self, now: datetime) -> bool:
        """Same rule as ``store.campaigns.link_is_usable``: not revoked, campaign open, inside
        ``[opens_at, closes_at)``."""
        return (
            self.revoked_at is None
            and self.campaign_status == "open"
            and self.opens_at <= now < self.closes_at
        )

    def closed(self, now: datetime) -> bool:
        """Not revoked and its campaign over (closed, or past ``closes_at``): the page may still
        be READ (what the unit submitted), never written."""
        if self.revoked_at is not None or now < self.opens_at:
            return False
        return self.campaign_status == "closed" or (self.campaign_status == "open" and now >= self.closes_at)


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """One disbursement of the unit (money in fen) and its current confirmation, if any
    (``status`` is None when there is none)."""

    id: int
    batch: str
    amount_fen: int
    paid_on: date
    voucher: str
    status: str | None
    received_on: date | None
    confirmed_fen: int | None
    confirmed_voucher: str | None
    dispute_kind: str | None
    reason: str | None
    submitted_at: datetime | None


@dataclass(frozen=True, slots=True)
class PageData:
    """Everything the unit page shows, read in one transaction (one snapshot).

    ``answers`` / ``answered_at`` are the unit's latest response in this campaign (empty / None
    without one); ``payments`` is empty unless the campaign asks for confirmations. ``closed``:
    the campaign is over and the page is shown read-only (only ever for a unit that submitted
    something).
    """

    link: LinkRow
    questionnaire: QuestionnaireDef | None
    answers: dict[str, Any]
    answered_at: datetime | None
    payments: tuple[PaymentRow, ...]
    closed: bool = False

    @property
    def submitted_anything(self) -> bool:
        return self.answered_at is not None or any(p.status is not None for p in self.payments)


@dataclass(frozen=True, slots=True)
class Submitted:
    """Outcome of a POST unit of work. ``usable`` False: unknown/revoked/closed link, nothing
    stored. ``created`` False with ``usable``: the submission key was already stored (a double
    submit), nothing changed."""

    usable: bool
    created: bool = False


UNUSABLE = Submitted(usable=False)
#: The same submit again (same submission id, same values): nothing to do.
ALREADY_STORED = Submitted(usable=True, created=False)


class NoQuestionnaire(Invalid):
    """The link's campaign has no questionnaire (a form post that cannot be answered)."""

    def __init__(self) -> None:
        super().__init__("本次活动没有问卷", "this campaign has no questionnaire", where="questionnaire")


# ----------------------------------------------------------------------------------- statements

_L = Link.__table__  # type: ignore[attr-defined]
_C = Campaign.__table__  # type: ignore[attr-defined]
_U = Unit.__table__  # type: ignore[attr-defined]
_P = Project.__table__  # type: ignore[attr-defined]
_Q = Questionnaire.__table__  # type: ignore[attr-defined]
_R = Response.__table__  # type: ignore[attr-defined]
_A = Answer.__table__  # type: ignore[attr-defined]
_D = Disbursement.__table__  # type: ignore[attr-defined]
_PC = PaymentConfirmation.__table__  # type: ignore[attr-defined]

# Column order = LinkRow field order.
_LINK_ROW = (
    select(
        _L.c.id,
        _L.c.unit_id,
        _L.c.campaign_id,
        _L.c.revoked_at,
        _L.c.opened_at,
        _L.c.answered_at,
        _L.c.confirmed_at,
        _C.c.status,
        _C.c.opens_at,
        _C.c.closes_at,
        _C.c.ask_confirmations,
        _C.c.name,
        _C.c.project_id,
        _C.c.questionnaire_id,
        _Q.c.version,
        _U.c.name,
        _P.c.name,
        _P.c.timezone,
    )
    .select_from(_L)
    .join(_C, _C.c.id == _L.c.campaign_id)
    .join(_U, _U.c.id == _L.c.unit_id)
    .join(_P, _P.c.id == _C.c.project_id)
    .outerjoin(_Q, _Q.c.id == _C.c.questionnaire_id)
    .where(_L.c.token_hash == bindparam("token_hash"))
)
#: PostgreSQL locks the link (per-link serialisation) and the unit (its responses' versions);
#: SQLite compiles no locking clause (BEGIN IMMEDIATE already serialises writers).
_LINK_ROW_FOR_UPDATE = _LINK_ROW.with_for_update(of=[_L, _U])

_DEFINITION = select(_Q.c.definition).where(_Q.c.id == bindparam("qid"))

#: The unit's latest response in the campaign: found among the unit's versions of the campaign's
#: questionnaire (uq_response_unit_versions, a handful of rows), not among every response of the
#: campaign (ix_response_campaign_id and a sort, which SQLite chose before).
_CURRENT_ANSWERS = (
    select(_R.c.submitted_at, _A.c.question_key, _A.c.value)
    .select_from(_R)
    .outerjoin(_A, _A.c.response_id == _R.c.id)
    .where(
        _R.c.id
        == select(_R.c.id)
        .where(
            _R.c.project_id == bindparam("project_id"),
            _R.c.unit_id == bindparam("unit_id"),
            _R.c.questionnaire_id == bindparam("questionnaire_id"),
            _R.c.campaign_id == bindparam("campaign_id"),
        )
        .order_by(_R.c.version.desc(), _R.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
)

# Column order = PaymentRow field order.
_PAYMENTS = (
    select(
        _D.c.id,
        _D.c.batch,
        _D.c.amount_fen,
        _D.c.paid_on,
        _D.c.voucher,
        _PC.c.status,
        _PC.c.received_on,
        _PC.c.amount_fen,
        _PC.c.voucher,
        _PC.c.dispute_kind,
        _PC.c.reason,
        _PC.c.submitted_at,
    )
    .select_from(_D)
    .outerjoin(_PC, and_(_PC.c.disbursement_id == _D.c.id, _PC.c.is_current.is_(True)))
    .where(_D.c.unit_id == bindparam("unit_id"))
    .order_by(_D.c.paid_on, _D.c.id)
)

_MARK_OPENED = (
    update(_L)
    .where(_L.c.id == bindparam("p_link"), _L.c.opened_at.is_(None))
    .values(opened_at=bindparam("p_now"))
)
_MARK_ANSWERED = (
    update(_L)
    .where(_L.c.id == bindparam("p_link"), _L.c.answered_at.is_(None))
    .values(answered_at=bindparam("p_now"))
)
_MARK_CONFIRMED = (
    update(_L)
    .where(_L.c.id == bindparam("p_link"), _L.c.confirmed_at.is_(None))
    .values(confirmed_at=bindparam("p_now"))
)

_RESPONSE_BY_KEY = select(_R.c.link_id, _R.c.id).where(_R.c.submission_key == bindparam("key"))
_ANSWERS_OF = select(_A.c.question_key, _A.c.value).where(_A.c.response_id == bindparam("rid"))
_R_SCOPE = (
    # (bound names differ from column names: UPDATE reserves those for its SET clause)
    _R.c.project_id == bindparam("p_project"),
    _R.c.unit_id == bindparam("p_unit"),
    _R.c.questionnaire_id == bindparam("p_questionnaire"),
)
#: The current row is always the newest version, so un-marking it also yields the last version.
_UNMARK_RESPONSE = (
    update(_R).where(*_R_SCOPE, _R.c.is_current.is_(True)).values(is_current=False).returning(_R.c.version)
)
_LAST_RESPONSE_VERSION = select(func.max(_R.c.version)).where(*_R_SCOPE)
#: One statement (one round trip on PostgreSQL) after the link is locked: the owner link and id
#: of a response already stored under the submission key (NULLs if none), and the last version.
_ANSWERS_PROBE = select(
    select(_R.c.link_id).where(_R.c.submission_key == bindparam("key")).scalar_subquery(),
    select(_R.c.id).where(_R.c.submission_key == bindparam("key")).scalar_subquery(),
    _LAST_RESPONSE_VERSION.scalar_subquery(),
)
#: Un-marks the current response (there is one exactly when a version exists).
_UNMARK_RESPONSE_PLAIN = update(_R).where(*_R_SCOPE, _R.c.is_current.is_(True)).values(is_current=False)
_RESPONSE_COLUMNS = (
    "project_id",
    "unit_id",
    "questionnaire_id",
    "campaign_id",
    "link_id",
    "version",
    "is_current",
    "source",
    "submission_key",
    "satisfaction",
    "submitted_at",
)
_INSERT_RESPONSE = (
    insert(_R).values({c: bindparam(c, type_=_R.c[c].type) for c in _RESPONSE_COLUMNS}).returning(_R.c.id)
)
# inline(): no implicit RETURNING of the primary key (PostgreSQL would add one).
_INSERT_ANSWER = (
    insert(_A)
    .values({c: bindparam(c, type_=_A.c[c].type) for c in ("response_id", "question_key", "value")})
    .inline()
)

# Column order after link_id = store.answers.stored_confirmation's tuple.
_CONFIRMATION_BY_KEY = select(
    _PC.c.link_id,
    _PC.c.status,
    _PC.c.received_on,
    _PC.c.amount_fen,
    _PC.c.voucher,
    _PC.c.dispute_kind,
    _PC.c.reason,
).where(_PC.c.submission_key == bindparam("key"))
_DISBURSEMENT = select(_D.c.unit_id, _D.c.amount_fen).where(_D.c.id == bindparam("d"))
_UNMARK_CONFIRMATION = (
    update(_PC)
    .where(_PC.c.disbursement_id == bindparam("p_d"), _PC.c.is_current.is_(True))
    .values(is_current=False)
    .returning(_PC.c.version)
)
_LAST_CONFIRMATION_VERSION = select(func.max(_PC.c.version)).where(_PC.c.disbursement_id == bindparam("p_d"))
_CONFIRMATION_COLUMNS = (
    "project_id",
    "disbursement_id",
    "unit_id",
    "link_id",
    "version",
    "is_current",
    "status",
    "received_on",
    "amount_fen",
    "expected_fen",
    "voucher",
    "dispute_kind",
    "reason",
    "submission_key",
    "submitted_at",
)
_INSERT_CONFIRMATION = (
    insert(_PC).values({c: bindparam(c, type_=_PC.c[c].type) for c in _CONFIRMATION_COLUMNS}).inline()
)
#: Disbursements of the unit (in the project) still without a current confirmation.
_OPEN_DISBURSEMENTS = (
    select(func.count())
    .select_from(_D)
    .where(
        _D.c.unit_id == bindparam("unit_id"),
        _D.c.project_id == bindparam("project_id"),
        # Correlated (ix_confirmation_current per disbursement), not NOT IN over a scan of
        # every confirmation.
        ~exists().where(
            _PC.c.disbursement_id == _D.c.id,
            _PC.c.unit_id == bindparam("unit_id"),
            _PC.c.is_current.is_(True),
        ),
    )
)


def _pg_open_page() -> Executable:
    """PostgreSQL: everything ``GET /l/{token}`` needs, and the first open recorded, in ONE
    statement (one round trip instead of four: link, answers, payments, mark).

    Columns: the :data:`_LINK_ROW` columns, then the unit's current answers as an array of
    :data:`_CURRENT_ANSWERS` rows and, when the campaign asks for confirmations, its payments as
    an array of :data:`_PAYMENTS` rows (``ROW(…)`` records, which asyncpg decodes to tuples in
    those statements' column order, so their result processors apply unchanged).

    The data-modifying CTE sets ``opened_at`` when it is unset and the link is usable at ``:now``
    (:meth:`LinkRow.usable`, in SQL: not revoked, campaign open, ``opens_at <= now < closes_at``)
    — exactly when :meth:`LinkPageStore.open_page` shows a page that is neither closed nor
    unusable. The SELECT reads the snapshot before that UPDATE (every part of one statement
    sees the same snapshot), so it returns ``opened_at`` as it was, as the separate read did.
    """
    link = _LINK_ROW.cte("page_link")
    now = bindparam("now", type_=_L.c.opened_at.type)
    usable = and_(
        link.c.revoked_at.is_(None), link.c.status == "open", link.c.opens_at <= now, now < link.c.closes_at
    )
    mark = update(_L).where(_L.c.id == link.c.id, _L.c.opened_at.is_(None), usable).values(opened_at=now)
    latest = _R.alias("latest")
    latest_id = (
        select(latest.c.id)
        .where(
            latest.c.project_id == link.c.project_id,
            latest.c.unit_id == link.c.unit_id,
            latest.c.questionnaire_id == link.c.questionnaire_id,
            latest.c.campaign_id == link.c.campaign_id,
        )
        .order_by(latest.c.version.desc(), latest.c.id.desc())
        .limit(1)
        .correlate(link)  # two levels down: auto-correlation only looks one level up
        .scalar_subquery()
    )
    answers = (
        select(func.array_agg(tuple_(*_CURRENT_ANSWERS.selected_columns), type_=NullType()))
        .select_from(_R)
        .outerjoin(_A, _A.c.response_id == _R.c.id)
        .where(_R.c.id == latest_id)
        .scalar_subquery()
    )
    payments = (
        select(
            func.array_agg(
                aggregate_order_by(tuple_(*_PAYMENTS.selected_columns), _D.c.paid_on, _D.c.id),
                type_=NullType(),
            )
        )
        .select_from(_D)
        .outerjoin(_PC, and_(_PC.c.disbursement_id == _D.c.id, _PC.c.is_current.is_(True)))
        .where(_D.c.unit_id == link.c.unit_id)
        .scalar_subquery()
    )
    return select(*link.c, answers, case((link.c.ask_confirmations, payments), else_=null())).add_cte(
        mark.cte("first_open")
    )


class _Plan:
    """One statement compiled for one dialect: positional SQL, the order of its parameters, and
    the column types' bind/result processors (exactly what SQLAlchemy would apply)."""

    __slots__ = ("sql", "_names", "_processed", "_results", "_fixed")

    def __init__(self, stmt: Executable, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        if not compiled.positional or compiled.positiontup is None:  # pragma: no cover
            raise RuntimeError(f"{dialect.name}: a positional paramstyle is required")
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup)
        # Values written into the statement itself (e.g. LIMIT 1) are bound too: keep them.
        self._fixed = {n: b.effective_value for n, b in compiled.binds.items() if not b.required}
        binds = [compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in self._names]
        self._processed = tuple((i, p) for i, p in enumerate(binds) if p is not None)
        columns = [c for *_, c in compiled._result_columns]  # (keyname, name, objects, type)
        results = [t.dialect_impl(dialect).result_processor(dialect, None) for t in columns]
        self._results = tuple((i, p) for i, p in enumerate(results) if p is not None)

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        # Hot (every statement of every request): a plain loop, processors looked up by index.
        if self._fixed:
            params = {**self._fixed, **params}
        values = [params[n] for n in self._names]
        for i, p in self._processed:
            values[i] = p(values[i])
        return tuple(values)

    def value(self, name: str, value: Any) -> Any:
        """``value`` as this statement would bind it as parameter ``name`` (its type's processor)."""
        i = self._names.index(name)
        for j, p in self._processed:
            if j == i:
                return p(value)
        return value

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        if not self._results:
            return tuple(raw)
        out = list(raw)
        for i, p in self._results:
            out[i] = p(out[i])
        return tuple(out)


_STATEMENTS: dict[str, Executable] = {
    name: value for name, value in globals().items() if name.startswith("_") and isinstance(value, Executable)
}


class _RawPlan:
    """A hand-written statement for one dialect: its SQL with ``$n`` parameters and their names
    in order. Values are bound as given (the caller applies type processors, see
    :meth:`_Plan.value`); result rows are returned as they come."""

    __slots__ = ("sql", "_names")

    def __init__(self, sql: str, names: Sequence[str]) -> None:
        self.sql = sql
        self._names = tuple(names)

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple([params[n] for n in self._names])

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(raw)


def _pg_store_answers(dialect: Dialect) -> _RawPlan:
    """PostgreSQL, for valid answers: the whole write of a submission in ONE statement — lock the
    link and its unit (``FOR UPDATE``, only while the link is usable at ``submitted_at`` and its
    campaign still has the questionnaire the answers were checked against), probe (the
    submission key, the last version), and when the probe allows, un-mark the current response,
    insert version ``last + 1`` with its answers and set the link's ``answered_at`` if unset.

    It writes only when the key is new and ``last < :max_versions`` (what
    :func:`store.answers.next_version` allows). It returns ``(locked, owner link, known response
    id, last version, new response id)``; the new id is NULL when nothing was written, and the
    caller decides from the rest (the link no longer usable, the same submit again, another
    link's key, too many versions).

    Two ways to run it (:meth:`LinkPageStore.submit_answers`):

    - **alone** (autocommit, one round trip): every part of one statement reads the snapshot
      taken when it began — also after waiting for the lock of a concurrent submit for the same
      unit, whose new version it therefore cannot see. It would then insert the same version
      again: the unique index ``uq_response_unit_versions`` refuses that (and
      ``uq_response_submission_key`` a concurrent double submit), the statement fails as a
      whole, and the caller runs the transaction below instead. Nothing is ever stored twice.
    - **in the transaction** that locked the rows first (the fallback): the statement's
      snapshot is then taken after the lock was granted (READ COMMITTED: one per statement),
      so the probe sees every version committed before.

    Data-modifying CTEs all run on one snapshot: the un-marking cannot see the row inserted
    beside it, so it only touches the old one. Answer values come pre-serialised (the JSON
    column's own bind processor) as ``text[]``. Values are cast to their column's type: in
    ``INSERT … SELECT`` PostgreSQL would otherwise take an untyped parameter for text. The
    "usable" test is :meth:`LinkRow.usable` in SQL (as in :func:`_pg_open_page`)."""
    names = [c for c in _RESPONSE_COLUMNS if c != "version"]
    # VARCHAR, not VARCHAR(n): a cast to a length truncates silently where the column refuses.
    casts = {c: re.sub(r"\(\d+\)$", "", _R.c[c].type.compile(dialect=dialect)) for c in names}
    n = len(names)

    def arg(name: str) -> str:
        return f"${names.index(name) + 1}"

    names += ["key", "max_versions", "answer_keys", "answer_values"]
    r, a, link, campaign, unit = _R.name, _A.name, _L.name, _C.name, _U.name
    now = arg("submitted_at")
    scope = f"project_id = {arg('project_id')} AND unit_id = {arg('unit_id')} AND questionnaire_id = {arg('questionnaire_id')}"
    cols = ", ".join(["version", *(_R.c[c].name for c in names[:n])])
    values = ", ".join(["go.version", *(f"${i}::{casts[c]}" for i, c in enumerate(names[:n], 1))])
    sql = (
        f"WITH locked AS (SELECT {link}.id FROM {link} "
        f"JOIN {campaign} ON {campaign}.id = {link}.campaign_id JOIN {unit} ON {unit}.id = {link}.unit_id "
        f"WHERE {link}.id = {arg('link_id')} AND {unit}.id = {arg('unit_id')} "
        f"AND {campaign}.questionnaire_id = {arg('questionnaire_id')} AND {link}.revoked_at IS NULL "
        f"AND {campaign}.status = 'open' AND {campaign}.opens_at <= {now} AND {now} < {campaign}.closes_at "
        f"FOR UPDATE OF {link}, {unit}), "
        f"probe AS (SELECT (SELECT link_id FROM {r} WHERE submission_key = ${n + 1}) AS owner, "
        f"(SELECT id FROM {r} WHERE submission_key = ${n + 1}) AS known, "
        f"(SELECT max(version) FROM {r} WHERE {scope}) AS last FROM locked), "
        f"go AS (SELECT coalesce(last, 0) + 1 AS version FROM probe "
        f"WHERE known IS NULL AND coalesce(last, 0) < ${n + 2}), "
        f"unmarked AS (UPDATE {r} SET is_current = false WHERE {scope} AND is_current "
        f"AND EXISTS (SELECT 1 FROM go)), "
        f"inserted AS (INSERT INTO {r} ({cols}) SELECT {values} FROM go RETURNING id), "
        f"answers AS (INSERT INTO {a} (response_id, question_key, value) "
        f"SELECT inserted.id, k, v::json FROM inserted, unnest(${n + 3}::text[], ${n + 4}::text[]) AS kv(k, v)), "
        f"answered AS (UPDATE {link} SET answered_at = {now} "
        f"WHERE id = {arg('link_id')} AND answered_at IS NULL AND EXISTS (SELECT 1 FROM inserted)) "
        f"SELECT EXISTS (SELECT 1 FROM locked), probe.owner, probe.known, probe.last, (SELECT id FROM inserted) "
        f"FROM (SELECT 1) AS one LEFT JOIN probe ON true"
    )
    return _RawPlan(sql, names)


class _Plans:
    """Every statement of this module compiled for one dialect (attribute = statement name),
    plus the dialect's own hand-written ones (None where the dialect has none)."""

    pg_store_answers: _RawPlan | None
    pg_open_page: _Plan | None

    def __init__(self, dialect: Dialect) -> None:
        for name, stmt in _STATEMENTS.items():
            setattr(self, name, _Plan(stmt, dialect))
        pg = dialect.name == "postgresql"
        self.pg_store_answers = _pg_store_answers(dialect) if pg else None
        self.pg_open_page = _Plan(_pg_open_page(), dialect) if pg else None

    def __getattr__(self, name: str) -> _Plan:  # pragma: no cover - typing aid only
        raise AttributeError(name)


# ----------------------------------------------------------------------------------- runners


class _Tx(Protocol):
    """What a unit of work may do. Implementations must not suspend on SQLite (see _drive)."""

    async def rows(self, plan: _Plan | _RawPlan, params: Mapping[str, Any]) -> list[tuple[Any, ...]]: ...
    async def run(self, plan: _Plan | _RawPlan, params: Mapping[str, Any]) -> int: ...
    async def many(self, plan: _Plan | _RawPlan, params: Sequence[Mapping[str, Any]]) -> None: ...


class _SqliteTx:
    """sqlite3 calls made synchronously on the aiosqlite worker thread (coroutines that never
    suspend, so a whole unit of work runs inside one thread trip)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def rows(self, plan: _Plan | _RawPlan, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return [plan.row(r) for r in self._conn.execute(plan.sql, plan.args(params)).fetchall()]

    async def run(self, plan: _Plan | _RawPlan, params: Mapping[str, Any]) -> int:
        return self._conn.execute(plan.sql, plan.args(params)).rowcount

    async def many(self, plan: _Plan | _RawPlan, params: Sequence[Mapping[str, Any]]) -> None:
        self._conn.executemany(plan.sql, [plan.args(p) for p in params])


class _AsyncpgTx:
    """asyncpg calls on the loop (asyncpg prepares and caches each SQL text per connection)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def rows(self, plan: _Plan | _RawPlan, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return [plan.row(r) for r in await self._conn.fetch(plan.sql, *plan.args(params))]

    async def run(self, plan: _Plan | _RawPlan, params: Mapping[str, Any]) -> int:
        status = await self._conn.execute(plan.sql, *plan.args(params))  # e.g. "UPDATE 1"
        return int(status.rsplit(" ", 1)[-1])

    async def many(self, plan: _Plan | _RawPlan, params: Sequence[Mapping[str, Any]]) -> None:
        await self._conn.executemany(plan.sql, [plan.args(p) for p in params])


class _DriverSqlTx:
    """The portable fallback: ``AsyncConnection.exec_driver_sql`` (any async dialect)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def rows(self, plan: _Plan | _RawPlan, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        result = await self._conn.exec_driver_sql(plan.sql, plan.args(params))
        return [plan.row(r) for r in result.all()] if result.returns_rows else []

    async def run(self, plan: _Plan | _RawPlan, params: Mapping[str, Any]) -> int:
        return (await self._conn.exec_driver_sql(plan.sql, plan.args(params))).rowcount

    async def many(self, plan: _Plan | _RawPlan, params: Sequence[Mapping[str, Any]]) -> None:
        await self._conn.exec_driver_sql(plan.sql, [plan.args(p) for p in params])


async def _release(raw: PoolProxiedConnection, *, clean: bool) -> None:
    """Give a raw connection back to its pool. A unit of work always ends its transaction (also
    when it raises), so a clean connection is returned as is; one left in a transaction (the
    driver failed mid-way) is discarded. Inside a greenlet either way: returning may close the
    connection (an overflow connection beyond ``pool_size``), which the async drivers await."""
    await greenlet_spawn(raw.close if clean else raw.invalidate)


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to completion, synchronously (on the worker thread)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a SQLite unit of work suspended; it must only use its _Tx")


Work = Callable[[_Tx, "_Plans"], Awaitable[T]]


class _Engine:
    """One engine, with its statements compiled for its dialect and its way of running work:
    ``sqlite`` (one worker-thread trip), ``asyncpg``, or ``portable`` (exec_driver_sql)."""

    def __init__(self, engine: AsyncEngine, *, portable: bool = False) -> None:
        self.engine = engine
        self.plans = _Plans(engine.dialect)
        if portable:
            self.mode = "portable"
        elif isinstance(engine.dialect.dbapi, OneHopSqliteDBAPI):
            self.mode = "sqlite"
        elif engine.dialect.driver == "asyncpg":
            self.mode = "asyncpg"
        else:  # pragma: no cover - aiosqlite without the internals store.db uses
            self.mode = "portable"
        self._writes = _Batcher(engine, lanes=1, write=True)
        self._reads = _Batcher(engine, lanes=2, write=False)

    async def run(self, work: Work[T], *, write: bool) -> T:
        if self.mode == "sqlite":
            return await (self._writes if write else self._reads).submit(self._sqlite_unit(work))
        if self.mode == "portable":
            async with self.engine.connect() as conn, conn.begin():
                return await work(_DriverSqlTx(conn), self.plans)
        try:
            return await self._run_asyncpg(work, write=write)
        except Exception as error:
            # A backend killed while its connection sat idle in the pool fails the next use
            # before anything is sent (store.db.connection_is_broken): the pool has been told,
            # so one retry gets a fresh connection. Anything else is the caller's answer.
            if not nothing_was_sent(error):
                raise
        return await self._run_asyncpg(work, write=write)

    async def _run_asyncpg(self, work: Work[T], *, write: bool) -> T:
        raw = await self.engine.raw_connection()
        driver = raw.driver_connection
        broken = False
        try:
            if not write:
                return await work(_AsyncpgTx(driver), self.plans)
            async with driver.transaction():  # type: ignore[union-attr]
                return await work(_AsyncpgTx(driver), self.plans)
        except Exception as error:
            if connection_is_broken(error):
                broken = True
                note_disconnect(self.engine)  # the other idle connections died with it
            raise
        finally:
            await _release(raw, clean=not broken and self._clean(driver))

    @staticmethod
    def _clean(driver: Any) -> bool:
        return not driver.is_closed() and not driver.is_in_transaction()

    def _sqlite_unit(self, work: Work[T]) -> Callable[[sqlite3.Connection], T]:
        """``work`` as a plain function of the sqlite3 connection, run INSIDE the transaction
        its :class:`_Batcher` opened (the batcher begins, commits and rolls back)."""
        plans = self.plans

        def unit(conn: sqlite3.Connection) -> T:
            return _drive(work(_SqliteTx(conn), plans))  # type: ignore[arg-type]

        return unit


Outcome = tuple[bool, Any]


class _Batcher:
    """SQLite units of work, run back to back: whatever queued while the connection was busy goes
    to a worker thread in ONE trip. At most ``lanes`` trips run at once, each on its own pooled
    connection: 1 for the single writer, 2 for readers. Results and exceptions go to their own
    callers, in order, and only once the trip is over.

    **Writes: group commit.** A batch of writes is ONE transaction (``BEGIN IMMEDIATE … COMMIT``,
    so one fsync with ``synchronous=FULL``), each unit inside its own ``SAVEPOINT``: a unit that
    raises is rolled back to its savepoint and hears its own exception, while the units before
    and after it stand. Every caller is answered after the ``COMMIT`` returned — a unit that
    "succeeded" is never reported before it is durable; if the ``COMMIT`` (or anything outside a
    unit) fails, the whole batch is rolled back and every caller hears that error. If SQLite
    itself ends the transaction inside a unit (it does on some I/O and disk-full errors), the
    earlier units' work is gone with it: the batch fails as a whole the same way.

    **Reads**: a batch shares one deferred ``BEGIN`` (one WAL snapshot, taken after every unit
    in it was queued); a failing read does not affect the others.

    Why batches: the process has one writer connection, and handing it from one request to the
    next costs event-loop turns (pool release, waking the next waiter, the thread trip, the
    result's ``call_soon_threadsafe``); and with ``synchronous=FULL`` every commit waits for the
    disk (bench/README.md, "SQLite durability": ~1–3 ms here), which caps a writer that commits
    per submission near a few hundred per second. A batch pays both once. Connections still come
    from the engines' pools, so ORM writers of the process keep taking turns with these batches.
    """

    def __init__(self, engine: AsyncEngine, *, lanes: int, write: bool) -> None:
        self._engine = engine
        self._lanes = lanes
        self._write = write
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._drainers: set[asyncio.Task[None]] = set()

    async def submit(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((unit, future))
        if len(self._drainers) < self._lanes:
            task = asyncio.create_task(self._drain())
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)
        return await future

    async def _drain(self) -> None:
        # Leave the drainer set in the same step as the last look at the queue (the finally
        # runs with no await in between): a task's done-callback runs a loop turn later, and a
        # submit() in that turn would see every lane taken and leave its unit unserved forever.
        try:
            await self._drain_queue()
        finally:
            self._drainers.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _drain_queue(self) -> None:
        while self._queue:
            batch = [(u, f) for u, f in self._queue if not f.cancelled()]
            self._queue = []
            if not batch:
                continue
            try:
                outcomes = await self._run([u for u, _ in batch])
            except BaseException as exc:  # the trip itself failed: every caller hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def _run(self, units: list[Callable[[sqlite3.Connection], Any]]) -> list[Outcome]:
        run_all = _group_commit if self._write else _shared_snapshot
        raw = await self._engine.raw_connection()
        try:
            result: list[Outcome] = await raw.dbapi_connection.run_on_worker(  # type: ignore[union-attr]
                lambda conn: run_all(conn, units)
            )
        finally:
            conn = raw.driver_connection._conn  # type: ignore[union-attr]
            await _release(raw, clean=conn is not None and not conn.in_transaction)
        return result


def _group_commit(
    conn: sqlite3.Connection, units: list[Callable[[sqlite3.Connection], Any]]
) -> list[Outcome]:
    """Run write ``units`` in ONE transaction, each in its own savepoint (see :class:`_Batcher`);
    raises (after rolling everything back) when the batch cannot be committed as a whole."""
    out: list[Outcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        if len(units) == 1:  # no savepoint needed: the unit's failure rolls back the batch
            try:
                out.append((True, units[0](conn)))
            except Exception as exc:
                out.append((False, exc))
                if conn.in_transaction:  # (SQLite may have ended it itself on an I/O error)
                    conn.execute("ROLLBACK")
                return out
        else:
            for unit in units:
                conn.execute("SAVEPOINT unit")
                try:
                    value = unit(conn)
                except Exception as exc:
                    if not conn.in_transaction:  # SQLite rolled the whole batch back itself
                        raise
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    out.append((False, exc))
                else:
                    conn.execute("RELEASE unit")
                    out.append((True, value))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return out


def _shared_snapshot(
    conn: sqlite3.Connection, units: list[Callable[[sqlite3.Connection], Any]]
) -> list[Outcome]:
    """Run read ``units`` in one deferred transaction (one snapshot); each unit's failure is
    its own."""
    out: list[Outcome] = []
    try:
        for unit in units:
            if not conn.in_transaction:
                conn.execute("BEGIN")
            try:
                out.append((True, unit(conn)))
            except Exception as exc:
                out.append((False, exc))
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # nothing was written (query_only): ending the snapshot
    return out


# ----------------------------------------------------------------------------------- the store


class LinkPageStore:
    """The unit page's units of work on a write engine and a read engine (the same engine is
    fine). One per application: it caches parsed questionnaires by ``(id, version)``.

    ``portable`` forces the ``exec_driver_sql`` fallback (tests use it to check the fallback
    gives the same results).
    """

    def __init__(
        self, write: AsyncEngine, read: AsyncEngine | None = None, *, portable: bool = False
    ) -> None:
        self._write = _Engine(write, portable=portable)
        self._read = self._write if read is None or read is write else _Engine(read, portable=portable)
        self._questionnaires: dict[tuple[int, int], QuestionnaireDef] = {}

    async def warm(self) -> None:
        """PostgreSQL: open the write engine's whole pool now and prepare the page's statement on
        every connection, so that the first users after a start do not pay for it: a new
        connection costs a few round trips (TLS, authentication) and the first use of the page's
        statement on it a PREPARE plus asyncpg's introspection of its row types (several more),
        tens of milliseconds under load (bench/README.md, "Link submissions, PostgreSQL"). The
        statement runs for a token hash no link has (nothing is read or written). Nothing to do
        on SQLite. Failures are left to the first real request (logged, not raised)."""
        engine = self._write
        if engine.mode != "asyncpg" or engine.plans.pg_open_page is None:
            return
        plan = engine.plans.pg_open_page
        size = engine.engine.sync_engine.pool.size()  # type: ignore[attr-defined]

        async def checkout() -> PoolProxiedConnection:
            return await engine.engine.raw_connection()

        raws = await asyncio.gather(*(checkout() for _ in range(size)), return_exceptions=True)
        held = [r for r in raws if not isinstance(r, BaseException)]
        try:
            args = plan.args({"token_hash": "", "now": datetime.now(UTC)})
            done = await asyncio.gather(
                *(r.driver_connection.fetch(plan.sql, *args) for r in held),  # type: ignore[union-attr]
                return_exceptions=True,
            )
        finally:
            for raw in held:
                await _release(raw, clean=self._write._clean(raw.driver_connection))
        failed = [e for e in [*raws, *done] if isinstance(e, BaseException)]
        if failed:
            log.warning(
                "warming the unit page's connections: %d of %d failed (%r)", len(failed), size, failed[0]
            )

    # -- questionnaires

    async def _questionnaire(self, tx: _Tx, plans: _Plans, link: LinkRow) -> QuestionnaireDef | None:
        """The link's questionnaire, parsed once per (id, version) (rows are immutable)."""
        if link.questionnaire_id is None or link.questionnaire_version is None:
            return None
        key = (link.questionnaire_id, link.questionnaire_version)
        qdef = self._questionnaires.get(key)
        if qdef is None:
            ((definition,),) = await tx.rows(plans._DEFINITION, {"qid": link.questionnaire_id})
            qdef = QuestionnaireDef.model_validate(definition)
            if len(self._questionnaires) >= QUESTIONNAIRE_CACHE_MAX:
                self._questionnaires.clear()
            self._questionnaires[key] = qdef
        return qdef

    @staticmethod
    async def _link(tx: _Tx, plans: _Plans, token_hash: str, *, for_update: bool) -> LinkRow | None:
        found = await tx.rows(
            plans._LINK_ROW_FOR_UPDATE if for_update else plans._LINK_ROW, {"token_hash": token_hash}
        )
        return LinkRow(*found[0]) if found else None

    # -- reads

    async def read_page(self, token_hash: str, *, now: datetime) -> PageData | LinkRow | None:
        """The page of the link whose token hashes to ``token_hash`` (read engine, one snapshot).

        None for an unknown hash; the bare :class:`LinkRow` when the link is not usable at
        ``now`` (nothing else is read), unless its campaign is over and the unit submitted
        something: then :class:`PageData` with ``closed`` (shown read-only); else
        :class:`PageData`.
        """

        async def work(tx: _Tx, plans: _Plans) -> PageData | LinkRow | None:
            return await self._page(tx, plans, token_hash, now)

        return await self._read.run(work, write=False)

    async def _page(
        self, tx: _Tx, plans: _Plans, token_hash: str, now: datetime
    ) -> PageData | LinkRow | None:
        link = await self._link(tx, plans, token_hash, for_update=False)
        if link is None:
            return None
        if not link.usable(now) and not link.closed(now):
            return link
        qdef = await self._questionnaire(tx, plans, link)
        answer_rows: Sequence[tuple[Any, ...]] = ()
        if qdef is not None:
            params = {
                "project_id": link.project_id,
                "unit_id": link.unit_id,
                "questionnaire_id": link.questionnaire_id,
                "campaign_id": link.campaign_id,
            }
            answer_rows = await tx.rows(plans._CURRENT_ANSWERS, params)
        payment_rows: Sequence[tuple[Any, ...]] = ()
        if link.ask_confirmations:
            payment_rows = await tx.rows(plans._PAYMENTS, {"unit_id": link.unit_id})
        return _page_data(link, qdef, answer_rows, payment_rows, now)

    async def open_page(self, token_hash: str, *, now: datetime) -> PageData | LinkRow | None:
        """:meth:`read_page`, recording the link's first open when the page is shown (usable,
        not closed, ``opened_at`` unset).

        SQLite: the read (read engine, concurrent with the writer) and then the mark as a write
        unit of its own — reading on the writer lane instead was measured slower (bench/README.md).
        PostgreSQL: ONE statement reads the page and records the first open (:func:`_pg_open_page`;
        committed on its own, like any statement outside a transaction).
        """
        if self._write.mode != "asyncpg":
            page = await self.read_page(token_hash, now=now)
            if isinstance(page, PageData) and not page.closed and page.link.opened_at is None:
                await self.mark_opened(page.link.link_id, now=now)
            return page

        async def work(tx: _Tx, plans: _Plans) -> PageData | LinkRow | None:
            plan = plans.pg_open_page
            assert plan is not None  # asyncpg mode: the PostgreSQL plans exist
            found = await tx.rows(plan, {"token_hash": token_hash, "now": now})
            if not found:
                return None
            *columns, answers, payments = found[0]
            link = LinkRow(*columns)
            if not link.usable(now) and not link.closed(now):
                return link
            qdef = await self._questionnaire(tx, plans, link)  # cached: no round trip
            answer_rows = [plans._CURRENT_ANSWERS.row(r) for r in answers or ()] if qdef is not None else []
            payment_rows = [plans._PAYMENTS.row(r) for r in payments or ()]
            return _page_data(link, qdef, answer_rows, payment_rows, now)

        return await self._write.run(work, write=False)

    # -- writes

    async def mark_opened(self, link_id: int, *, now: datetime) -> bool:
        """Record the first open (one guarded UPDATE); True when this call set it."""

        async def work(tx: _Tx, plans: _Plans) -> bool:
            return bool(await tx.run(plans._MARK_OPENED, {"p_link": link_id, "p_now": now}))

        return await self._write.run(work, write=True)

    async def submit_answers(
        self,
        token_hash: str,
        *,
        now: datetime,
        key_for: Callable[[int], str],
        answers_for: Callable[[QuestionnaireDef], Mapping[str, Any]],
    ) -> Submitted:
        """Store a new version of the unit's answers through the link of ``token_hash``.

        One write transaction, in this order (the ORM path's order): the link must be usable
        (else :data:`UNUSABLE`); its campaign must have a questionnaire (else
        :class:`NoQuestionnaire`); ``answers_for(questionnaire)`` turns the form into answers
        (it may raise, e.g. a malformed form); a known ``key_for(link_id)`` returns
        ``created=False`` when the answers are the stored ones (``ResubmittedDifferently`` when
        they differ, ``Conflict`` if the key belongs to another link); invalid answers raise
        :class:`~store.answers.AnswerErrors` (nothing stored). Then the previous current
        response stops being current, version n+1 is inserted with its answers (at most
        ``store.answers.MAX_VERSIONS``, else ``TooManyVersions``), and the link's
        ``answered_at`` is set if unset.

        PostgreSQL first tries two round trips and no explicit transaction: the link read
        (unlocked, to find and check against its questionnaire), then :func:`_pg_store_answers`
        alone. Whenever that cannot decide by itself — invalid answers, the link changed in
        between, a concurrent submit for the same unit (a unique index refuses the statement) —
        the transaction below decides, as SQLite always does.
        """

        def answers_of(
            link: LinkRow, qdef: QuestionnaireDef
        ) -> tuple[str, dict[str, Any], FieldErrors, dict[str, Any]]:
            """(submission key, clean answers, errors, response row without its version)."""
            key = key_for(link.link_id)
            clean, errors = validate_answers(qdef, answers_for(qdef))
            sat = clean.get(qdef.satisfaction_question)
            row = {
                "project_id": link.project_id,
                "unit_id": link.unit_id,
                "questionnaire_id": link.questionnaire_id,
                "campaign_id": link.campaign_id,
                "link_id": link.link_id,
                "is_current": True,
                "source": "link",
                "submission_key": key,
                "satisfaction": sat if isinstance(sat, str) else None,
                "submitted_at": now,
            }
            return key, clean, errors, row

        async def pg_write(
            tx: _Tx, plans: _Plans, plan: _RawPlan, key: str, clean: dict[str, Any], row: dict[str, Any]
        ) -> tuple[bool, int | None, int | None, int | None, int | None]:
            answer_plan = plans._INSERT_ANSWER
            ((locked, owner, known, last, created),) = await tx.rows(
                plan,
                {
                    **row,
                    "key": key,
                    "max_versions": MAX_VERSIONS,
                    "answer_keys": list(clean),
                    "answer_values": [answer_plan.value("value", v) for v in clean.values()],
                },
            )
            return bool(locked), owner, known, last, created

        async def settle(
            tx: _Tx, plans: _Plans, link: LinkRow, clean: dict[str, Any], errors: FieldErrors,
            owner: int | None, known: int | None, last: int | None,
        ) -> Submitted:  # fmt: skip
            """What a submit that wrote nothing means: the same one again, or a refusal."""
            if known is not None:
                _owned(owner, link)
                stored = dict(await tx.rows(plans._ANSWERS_OF, {"rid": known}))
                if errors or clean != stored:
                    raise ResubmittedDifferently()
                return ALREADY_STORED
            if errors:
                raise AnswerErrors(errors)
            next_version(last)  # raises TooManyVersions (the only other reason to write nothing)
            raise RuntimeError("the answers statement wrote nothing for a new key below the version cap")

        async def fast(tx: _Tx, plans: _Plans) -> Submitted | None:
            """PostgreSQL without a transaction; None: let the transaction decide."""
            plan = plans.pg_store_answers
            assert plan is not None  # asyncpg mode: the PostgreSQL plans exist
            link = await self._link(tx, plans, token_hash, for_update=False)
            if link is None or not link.usable(now):
                return UNUSABLE
            qdef = await self._questionnaire(tx, plans, link)
            if qdef is None:
                raise NoQuestionnaire()
            key, clean, errors, row = answers_of(link, qdef)
            if errors:
                return None
            try:
                locked, owner, known, last, created = await pg_write(tx, plans, plan, key, clean, row)
            except Exception as error:
                if getattr(error, "sqlstate", None) == UNIQUE_VIOLATION:
                    return None  # a concurrent submit for this unit committed first
                raise
            if created is not None:
                return Submitted(usable=True, created=True)
            if not locked:
                return None  # the link or its campaign changed since the read
            return await settle(tx, plans, link, clean, errors, owner, known, last)

        async def work(tx: _Tx, plans: _Plans) -> Submitted:
            link = await self._link(tx, plans, token_hash, for_update=True)
            if link is None or not link.usable(now):
                return UNUSABLE
            qdef = await self._questionnaire(tx, plans, link)
            if qdef is None:
                raise NoQuestionnaire()
            key, clean, errors, row = answers_of(link, qdef)
            plan = plans.pg_store_answers
            if plan is not None and not errors:  # PostgreSQL: probe and writes in ONE trip
                locked, owner, known, last, created = await pg_write(tx, plans, plan, key, clean, row)
                if created is not None:
                    return Submitted(usable=True, created=True)
                if not locked:  # the campaign's questionnaire changed: the page is stale
                    return UNUSABLE
                return await settle(tx, plans, link, clean, errors, owner, known, last)
            scope = {
                "p_project": link.project_id,
                "p_unit": link.unit_id,
                "p_questionnaire": link.questionnaire_id,
            }
            ((owner, known, last),) = await tx.rows(plans._ANSWERS_PROBE, {"key": key, **scope})
            if known is not None or errors:
                return await settle(tx, plans, link, clean, errors, owner, known, last)
            row["version"] = next_version(last)  # TooManyVersions: nothing written yet
            if last is not None:  # a current version exists (it is always the newest one)
                await tx.run(plans._UNMARK_RESPONSE_PLAIN, scope)
            ((response_id,),) = await tx.rows(plans._INSERT_RESPONSE, row)
            if clean:
                await tx.many(
                    plans._INSERT_ANSWER,
                    [{"response_id": response_id, "question_key": k, "value": v} for k, v in clean.items()],
                )
            if link.answered_at is None:
                await tx.run(plans._MARK_ANSWERED, {"p_link": link.link_id, "p_now": now})
            return Submitted(usable=True, created=True)

        if self._write.mode == "asyncpg":
            decided = await self._write.run(fast, write=False)
            if decided is not None:
                return decided
        return await self._write.run(work, write=True)

    async def submit_confirmation(
        self,
        token_hash: str,
        disbursement_id: int,
        *,
        now: datetime,
        key_for: Callable[[int], str],
        status: str,
        received_on: date | None,
        amount_fen: int | None,
        voucher: str,
        dispute_kind: str | None,
        reason: str,
        syntax_errors: Mapping[str, tuple[str, str]] | None = None,
    ) -> Submitted:
        """Store a new version of the unit's confirmation (or dispute) of one disbursement.

        Same order and rules as ``store.answers.submit_confirmation`` after the link check:
        ``syntax_errors`` (from parsing the form) are reported with the semantic ones, all at
        once, as ``AnswerErrors``; a known
        key returns ``created=False`` with the stored values (``ResubmittedDifferently`` with
        others); more than ``store.answers.MAX_VERSIONS`` versions raise ``TooManyVersions``; the campaign must ask for confirmations (``Invalid``);
        the disbursement must be the unit's (``NotFound``); semantic errors (``AnswerErrors``,
        "today" in the project timezone) store nothing. A confirmed amount different from the
        disbursed one is kept as given (a discrepancy). ``confirmed_at`` is set once every
        disbursement of the unit has a current confirmation or dispute.
        """

        async def work(tx: _Tx, plans: _Plans) -> Submitted:
            link = await self._link(tx, plans, token_hash, for_update=True)
            if link is None or not link.usable(now):
                return UNUSABLE
            key = key_for(link.link_id)
            known = await tx.rows(plans._CONFIRMATION_BY_KEY, {"key": key})
            clean_voucher, clean_reason = confirmation_texts(voucher, reason)
            if known:
                _owned(known[0][0], link)
                given = stored_confirmation(
                    status=status,
                    received_on=received_on,
                    amount_fen=amount_fen,
                    voucher=clean_voucher,
                    dispute_kind=dispute_kind,
                    reason=clean_reason,
                )
                if tuple(known[0][1:]) != given:
                    raise ResubmittedDifferently()
                return ALREADY_STORED
            if not link.ask_confirmations:
                raise Invalid(
                    "本次活动不需要确认资金", "this campaign does not ask for confirmations", where="status"
                )
            found = await tx.rows(plans._DISBURSEMENT, {"d": disbursement_id})
            if not found or found[0][0] != link.unit_id:
                raise NotFound("没有这笔拨付", "no such disbursement for this unit", where="disbursement")
            expected_fen = found[0][1]
            errors = validate_confirmation(
                _Amount(expected_fen),
                status=status,
                received_on=received_on,
                amount_fen=amount_fen,
                voucher=clean_voucher,
                dispute_kind=dispute_kind,
                reason=clean_reason,
                today=today_in(link.timezone, now),
            )
            if syntax_errors:  # the parser's message is the more precise one for its field
                errors.update(syntax_errors)
            if errors:
                raise AnswerErrors(errors)
            confirmed = status == "confirmed"
            scope = {"p_d": disbursement_id}
            versions = [v for (v,) in await tx.rows(plans._UNMARK_CONFIRMATION, scope)]
            last = (
                max(versions) if versions else (await tx.rows(plans._LAST_CONFIRMATION_VERSION, scope))[0][0]
            )
            version = next_version(last)
            await tx.run(
                plans._INSERT_CONFIRMATION,
                {
                    "project_id": link.project_id,
                    "disbursement_id": disbursement_id,
                    "unit_id": link.unit_id,
                    "link_id": link.link_id,
                    "version": version,
                    "is_current": True,
                    "status": status,
                    "received_on": received_on if confirmed else None,
                    "amount_fen": amount_fen if confirmed else None,
                    "expected_fen": expected_fen,
                    "voucher": clean_voucher if confirmed else "",
                    "dispute_kind": None if confirmed else dispute_kind,
                    "reason": clean_reason,
                    "submission_key": key,
                    "submitted_at": now,
                },
            )
            if link.confirmed_at is None:
                params = {"unit_id": link.unit_id, "project_id": link.project_id}
                ((still_open,),) = await tx.rows(plans._OPEN_DISBURSEMENTS, params)
                if not still_open:
                    await tx.run(plans._MARK_CONFIRMED, {"p_link": link.link_id, "p_now": now})
            return Submitted(usable=True, created=True)

        return await self._write.run(work, write=True)


def _page_data(
    link: LinkRow,
    qdef: QuestionnaireDef | None,
    answer_rows: Sequence[tuple[Any, ...]],
    payment_rows: Sequence[tuple[Any, ...]],
    now: datetime,
) -> PageData | LinkRow:
    """The page of a usable or closed ``link`` from its rows (:data:`_CURRENT_ANSWERS`,
    :data:`_PAYMENTS` column order); a closed campaign's page only when the unit submitted
    something, else the bare link (the same page as any unusable link)."""
    answers: dict[str, Any] = {}
    answered_at = None
    for submitted_at, key, value in answer_rows:
        answered_at = submitted_at
        if key is not None:
            answers[key] = value
    payments = tuple(PaymentRow(*r) for r in payment_rows) if link.ask_confirmations else ()
    closed = not link.usable(now)
    page = PageData(link, qdef, answers, answered_at, payments, closed)
    if closed and not page.submitted_anything:
        return link
    return page


@dataclass(frozen=True, slots=True)
class _Amount:
    """The one disbursement attribute ``validate_confirmation`` reads (fen)."""

    amount_fen: int


def _owned(owner_link_id: int | None, link: LinkRow) -> None:
    """A stored submission key must be this link's (a key of another link is refused)."""
    if owner_link_id != link.link_id:
        raise Conflict("提交编号冲突", "submission key belongs to another link", where="submission_id")
