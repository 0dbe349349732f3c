"""Async engine and sessions for SQLite (embedded default) and PostgreSQL (asyncpg).

SQLite is configured for safe concurrent writes: WAL, busy_timeout, and ``BEGIN IMMEDIATE`` on
every transaction of the normal (write) engine (a deferred BEGIN lets a read-then-write
transaction lose updates or fail with "database is locked" — see reference/stack-pitfalls.md §2).
The cost is that readers also take the writer lock for the length of their transaction, so keep
transactions short and never hold one across slow awaits (HTTP, pandas).

Three SQLite-only refinements, all measured with ``bench/submit.py`` (see bench/README.md):

- **One writer connection per process.** The write engine's pool holds a single connection, so
  write transactions of this process queue in the pool (FIFO, woken by asyncio) instead of
  spinning in SQLite's busy handler, which sleeps in growing steps and gave p99s above a second
  at 8 concurrent submitters. Other processes (CLI, a second server) still meet busy_timeout.
- **A read engine** (:func:`create_engines`) with a deferred ``BEGIN`` and ``PRAGMA
  query_only``: pure reads (the unit page) run on their own connections and, thanks to WAL, on a
  consistent snapshot concurrently with the writer. Anything that writes must use the write engine;
  a write on the read engine fails loudly ("attempt to write a readonly database").
- **One thread hop per statement.** SQLAlchemy's aiosqlite adapter makes four trips to the
  connection's worker thread per statement (cursor, execute, fetchall, close), each a cross-thread
  wake-up that dominated request time under load. :class:`_OneHopCursor` runs all four in one trip.

On PostgreSQL there is one engine; :func:`create_engines` returns it twice.

**Durability (SQLite).** ``synchronous=FULL`` by default (``JIXIAO_SQLITE_SYNCHRONOUS``): in WAL
mode every commit is fsynced before it returns, so an acknowledged answer, confirmation or outbox
row survives a power cut, not only a process crash (``NORMAL`` survives a crash of the process but
may lose the last commits on power loss). bench/README.md ("SQLite durability") has the cost.

**Healthy connections (PostgreSQL) without a round trip per checkout.** ``pool_pre_ping`` costs
three round trips per checkout on asyncpg (BEGIN, ``;``, ROLLBACK) — 7–13 % of a link submission.
Instead a checkout hook discards a connection whose socket asyncpg already saw closed (a killed
backend, a restarted server: free, no I/O), and only for :data:`SUSPECT_SECONDS` after a
disconnect error pings the connections it hands out. A connection that dies while in use fails
that one request, which the error middleware answers 503 + ``Retry-After``.
"""

from __future__ import annotations

import collections
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, exc
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import EMPTY_DICT, greenlet_spawn

SessionMaker = async_sessionmaker[AsyncSession]
T = TypeVar("T")

#: Connections of a SQLite read engine (readers do not block each other or the writer in WAL).
READ_POOL_SIZE = 4

#: ``PRAGMA synchronous`` values accepted for SQLite (see the module docstring).
SQLITE_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")

#: How long SQLite waits for another process's write lock before "database is locked" (ms).
DEFAULT_BUSY_TIMEOUT_MS = 30_000

#: Connections of a PostgreSQL engine (a fixed pool, see :func:`create_engine`).
PG_POOL_SIZE = 20

#: After a disconnect error, checkouts ping their connection for this many seconds.
SUSPECT_SECONDS = 10.0


def is_sqlite(url_or_engine: str | AsyncEngine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, AsyncEngine) else make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def _is_sqlite_file(url: str) -> bool:
    db = make_url(url).database
    return bool(db) and db != ":memory:" and not str(db).startswith("file::memory:")


def _create_private(path: Path) -> None:
    """Create the SQLite file owner-only (0600) before SQLite does (it would use the umask,
    typically 0644); SQLite gives its -wal/-shm files the database file's permissions."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def create_engine(
    url: str,
    *,
    echo: bool = False,
    readonly: bool = False,
    sqlite_synchronous: str = "FULL",
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    **kw: Any,
) -> AsyncEngine:
    """Build the async engine for ``url``; creates the SQLite file's directory if needed.

    ``readonly`` (SQLite files only) builds a read engine: deferred ``BEGIN``, ``query_only``,
    a few pooled connections. Without it a SQLite file engine has exactly one pooled connection
    (the process's single writer; pass ``pool_size``/``max_overflow`` to override).
    ``sqlite_synchronous`` and ``busy_timeout_ms`` apply to SQLite only.
    """
    if is_sqlite(url):
        level = sqlite_synchronous.upper()
        if level not in SQLITE_SYNCHRONOUS:
            raise ValueError(
                f"sqlite synchronous must be one of {SQLITE_SYNCHRONOUS}, got {sqlite_synchronous!r}"
            )
        if _is_sqlite_file(url):
            db = make_url(url).database
            assert db is not None
            Path(db).parent.mkdir(parents=True, exist_ok=True)
            _create_private(Path(db))
            kw.setdefault("pool_size", READ_POOL_SIZE if readonly else 1)
            kw.setdefault("max_overflow", 0)
        elif readonly:
            raise ValueError("a read engine needs a SQLite file (an in-memory database is per connection)")
        kw.setdefault("module", _sqlite_dbapi())
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": busy_timeout_ms / 1000}, **kw)
        _configure_sqlite(engine, readonly=readonly, synchronous=level, busy_timeout_ms=busy_timeout_ms)
        return engine
    # A fixed pool: connections beyond it queue (FIFO) for one instead of being opened and closed
    # again under load ("overflow" churn: a new backend, a new session's type introspection and
    # every prepared statement again — measured at 56 new sessions in 10 s at 32 concurrent
    # submitters). 20 is the minimal asyncpg reference's pool in bench/submit.py.
    kw.setdefault("pool_size", PG_POOL_SIZE)
    kw.setdefault("max_overflow", 0)
    engine = create_async_engine(url, echo=echo, **kw)
    _configure_health_checks(engine)
    return engine


def _configure_health_checks(engine: AsyncEngine) -> None:
    """Hand out only live connections, without a round trip in the normal case (see the module
    docstring): a closed driver connection is replaced at checkout; after a disconnect error the
    next :data:`SUSPECT_SECONDS` of checkouts are pinged (the pool's own invalidation already
    drops the connections that were idle at the time of the error)."""
    suspect_until = [0.0]

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(ctx: Any) -> None:
        if not ctx.is_disconnect and connection_is_broken(ctx.original_exception):
            ctx.is_disconnect = True  # SQLAlchemy then drops this connection and the idle ones
        if ctx.is_disconnect:
            suspect_until[0] = time.monotonic() + SUSPECT_SECONDS

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_conn, "driver_connection", None)
        is_closed = getattr(driver, "is_closed", None)
        if is_closed is not None and is_closed():
            suspect_until[0] = time.monotonic() + SUSPECT_SECONDS
            raise exc.DisconnectionError("connection closed by the server")
        if time.monotonic() < suspect_until[0]:
            try:
                dbapi_conn.ping()
            except Exception as error:  # any failure: this one is dead, try a fresh one
                raise exc.DisconnectionError(f"ping failed: {error}") from error


def connection_is_broken(error: BaseException | None) -> bool:
    """True if ``error`` (or what it wraps) means the driver connection is dead or its protocol
    state is lost — it must not go back to the pool. asyncpg reports a backend killed while the
    connection sat idle as "cannot switch to state …; another operation is in progress" on the
    next use (the server's FATAL message arrived before the socket's EOF was processed): nothing
    was sent, so the unit of work can be retried on a fresh connection."""
    seen = 0
    while error is not None and seen < 10:
        seen += 1
        name = type(error).__name__
        text = str(error)
        if name in ("ConnectionDoesNotExistError", "ConnectionFailureError", "CannotConnectNowError"):
            return True
        if name in ("InternalClientError", "InterfaceError") and (
            "another operation is in progress" in text or "connection is closed" in text
        ):
            return True
        if getattr(error, "sqlstate", None) in ("57P01", "57P02", "57P03"):
            return True  # admin / crash shutdown, cannot connect now
        error = getattr(error, "orig", None) or error.__cause__
    return False


def nothing_was_sent(error: BaseException | None) -> bool:
    """True for the asyncpg error raised before a statement leaves (see
    :func:`connection_is_broken`): retrying the whole unit of work cannot apply it twice."""
    seen = 0
    while error is not None and seen < 10:
        seen += 1
        if type(error).__name__ == "InternalClientError" and "cannot switch to state" in str(error):
            return True
        error = getattr(error, "orig", None) or error.__cause__
    return False


def note_disconnect(engine: AsyncEngine) -> None:
    """Tell the engine's pool that a connection used outside SQLAlchemy (raw driver calls) died:
    every connection idle in the pool is replaced at its next checkout."""
    engine.sync_engine.pool._invalidate_time = time.time()  # type: ignore[attr-defined]


def create_engines(url: str, *, echo: bool = False, **kw: Any) -> tuple[AsyncEngine, AsyncEngine]:
    """``(write_engine, read_engine)`` for ``url``.

    On a SQLite file the read engine is separate (see the module docstring); on PostgreSQL and
    in-memory SQLite both are the same engine. Dispose both (disposing one engine twice is fine).
    """
    write = create_engine(url, echo=echo, **kw)
    if is_sqlite(url) and _is_sqlite_file(url):
        return write, create_engine(url, echo=echo, readonly=True, **kw)
    return write, write


def read_sessionmaker_for(sessionmaker: SessionMaker) -> SessionMaker:
    """A read sessionmaker on the same database as ``sessionmaker`` (for composition roots that
    were handed only the write one). The same object back unless it is bound to a SQLite file;
    otherwise the caller owns the new read engine (``.kw["bind"]``) and disposes it."""
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or not is_sqlite(engine):
        return sessionmaker
    url = engine.url.render_as_string(hide_password=False)
    if not _is_sqlite_file(url):
        return sessionmaker
    return make_sessionmaker(create_engine(url, readonly=True))


def _configure_sqlite(
    engine: AsyncEngine,
    *,
    readonly: bool = False,
    synchronous: str = "FULL",
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> None:
    pragmas = [
        "journal_mode=WAL",
        f"busy_timeout={int(busy_timeout_ms)}",
        f"synchronous={synchronous}",
        "foreign_keys=ON",
    ]
    if readonly:
        pragmas.append("query_only=ON")
    begin = "BEGIN" if readonly else "BEGIN IMMEDIATE"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's legacy mode skips it before SELECTs).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in pragmas:
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        dbapi_conn = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, _OneHopConnection):
            dbapi_conn.begin_with_next_statement(begin)  # saves a round trip per transaction
        else:
            conn.exec_driver_sql(begin)


def make_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    """Sessions that keep loaded attributes after commit (no implicit reload on the loop)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def fetch_autocommit(engine: AsyncEngine, statement: str, *args: object) -> list[Any]:
    """Run ONE statement (``$1``-style parameters) on a pooled asyncpg connection, outside any
    transaction block, and return its rows: PostgreSQL runs and commits it as one implicit
    transaction, so it costs one round trip where a session costs three (BEGIN, the statement,
    COMMIT) plus the ORM's own work. For hot single-statement units only (the delivery worker's
    attempt starts); everything else goes through :func:`transaction`."""
    raw = await engine.raw_connection()
    driver = raw.driver_connection
    broken = False
    try:
        return list(await driver.fetch(statement, *args))  # type: ignore[union-attr]
    except Exception as error:
        broken = connection_is_broken(error)
        if broken:
            note_disconnect(engine)
        raise
    finally:
        clean = not broken and not driver.is_closed() and not driver.is_in_transaction()  # type: ignore[union-attr]
        await greenlet_spawn(raw.close if clean else raw.invalidate)


@asynccontextmanager
async def transaction(sessionmaker: SessionMaker) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception."""
    async with sessionmaker() as session, session.begin():
        yield session


# ----------------------------------------------------------------------------------- aiosqlite


class _OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A DBAPI cursor that runs cursor + execute + fetchall + close in ONE call on the
    connection's worker thread and buffers the result (the stock adapter makes four calls, each
    a thread wake-up and an event-loop wake-up). Results are always fully buffered, as they are
    with the stock (non server-side) cursor; server-side cursors keep the stock class.

    Uses aiosqlite's ``Connection._execute`` and ``_conn``, which SQLAlchemy's own adapter also
    relies on; :func:`_sqlite_dbapi` falls back to the stock adapter if they disappear.
    """

    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # no aiosqlite cursor is ever held
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None  # nothing open on the worker thread

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        aio = self._connection

        def run() -> tuple[Any, list[Any], int, int | None]:
            cur = aio._conn.cursor()
            try:
                if parameters is None:
                    cur.execute(operation)
                else:
                    cur.execute(operation, parameters)
                desc = cur.description
                rows = cur.fetchall() if desc else []
                return desc, rows, cur.rowcount, cur.lastrowid
            finally:
                cur.close()

        begin = self._adapt_connection.take_pending_begin()

        async with self._adapt_connection._execute_mutex:
            desc, rows, self._rowcount, self._lastrowid = await aio._execute(
                run if begin is None else _after(begin, aio, run)
            )
        self._description = desc
        if desc:
            self._rows = collections.deque(rows)
        return None

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        aio = self._connection

        def run() -> tuple[int, int | None]:
            cur = aio._conn.cursor()
            try:
                cur.executemany(operation, seq_of_parameters)
                return cur.rowcount, cur.lastrowid
            finally:
                cur.close()

        begin = self._adapt_connection.take_pending_begin()

        async with self._adapt_connection._execute_mutex:
            self._rowcount, self._lastrowid = await aio._execute(
                run if begin is None else _after(begin, aio, run)
            )
        self._description = None
        return None


def _after(begin: str, aio: Any, run: Any) -> Any:
    """``run`` preceded by ``begin`` on the worker thread (same trip)."""

    def both() -> Any:
        aio._conn.execute(begin)
        return run()

    return both


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The connection behind :class:`_OneHopCursor`, with two more round trips saved:

    - the transaction's ``BEGIN`` is sent together with its first statement (a transaction
      without statements never begins, and its commit/rollback are no-ops);
    - ``commit``/``rollback`` outside a transaction (the pool's reset-on-return after every
      commit) return at once instead of visiting the worker thread. ``in_transaction`` is read
      while no call is in flight on this connection (calls are serialised by SQLAlchemy).
    """

    __slots__ = ("_pending_begin",)
    _cursor_cls = _OneHopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._pending_begin: str | None = None

    def begin_with_next_statement(self, begin: str) -> None:
        self._pending_begin = begin

    def take_pending_begin(self) -> str | None:
        begin, self._pending_begin = self._pending_begin, None
        return begin

    def _in_transaction(self) -> bool:
        conn = self._connection._connection  # None once closed: let the stock path report it
        return conn is None or conn.in_transaction

    async def run_on_worker(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(sqlite3_connection)`` on this connection's worker thread: ONE trip however
        many statements ``fn`` executes (``store.linkpage`` runs a whole transaction this way).
        ``fn`` owns the transaction it opens and must leave none open."""
        async with self._execute_mutex:
            return await self._connection._execute(fn, self._connection._conn)  # type: ignore[no-any-return]

    def commit(self) -> None:
        self._pending_begin = None
        if self._in_transaction():
            super().commit()

    def rollback(self) -> None:
        self._pending_begin = None
        if self._in_transaction():
            super().rollback()


class _OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        stock = super().connect(*arg, **kw)
        return _OneHopConnection(self, stock._connection)


#: Public name of the one-hop adapter (``store.linkpage`` runs whole transactions through it).
OneHopSqliteDBAPI = _OneHopDBAPI


def _sqlite_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The aiosqlite DBAPI adapter: the one-hop variant when aiosqlite has the internals it uses."""
    import sqlite3

    import aiosqlite

    if hasattr(aiosqlite.Connection, "_execute") and hasattr(aiosqlite.Connection, "_conn"):
        return _OneHopDBAPI(aiosqlite, sqlite3)
    return AsyncAdapt_aiosqlite_dbapi(aiosqlite, sqlite3)  # pragma: no cover - future aiosqlite
