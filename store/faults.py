"""Database faults: what went wrong with the store itself (not with a request), in one place.

:func:`classify_fault` recognises the errors that mean "the database cannot serve this now" —
unreachable or restarting, disk full, read-only, locked past the busy timeout, an I/O error — on
both backends and through every layer that may wrap them (SQLAlchemy's ``DBAPIError``, the asyncpg
and aiosqlite adapters, raw driver calls such as ``store.linkpage``'s). The web layer answers them
503 with ``Retry-After`` and a plain message; the CLI prints one line. Anything else (a bug, a
constraint violation) is not a fault and keeps its own handling.

:func:`check_writable` is the readiness probe's write: one committed heartbeat row, plus, for a
SQLite file, the free space and writability of its directory (a full disk can still accept a tiny
commit into WAL space that was already allocated, and then fail the next real write).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from store.db import SessionMaker, connection_is_broken, is_sqlite, transaction


@dataclass(frozen=True, slots=True)
class DatabaseFault:
    """A recognised store fault. ``kind``: ``unavailable`` | ``busy`` | ``disk_full`` |
    ``read_only`` | ``io``; ``retry_after_s`` is what the client is told to wait (seconds)."""

    kind: str
    retry_after_s: int
    zh: str
    en: str
    detail: str

    def one_line(self) -> str:
        """The operator's line: both languages and the underlying error."""
        return f"{self.zh} / {self.en} ({self.detail})"


_TEXT = {
    "unavailable": ("数据库暂时无法连接", "the database is unreachable", 10),
    "busy": ("数据库繁忙（写锁超时）", "the database is busy (locked past the busy timeout)", 2),
    "disk_full": ("数据库所在磁盘已满", "the database disk is full", 60),
    "read_only": ("数据库为只读，无法写入", "the database is read-only", 60),
    "io": ("数据库读写出错", "the database had an I/O error", 30),
}

#: SQLite primary result codes (``sqlite3.Error.sqlite_errorcode & 0xff``) → fault kind.
_SQLITE_CODES = {
    5: "busy",  # SQLITE_BUSY
    6: "busy",  # SQLITE_LOCKED
    8: "read_only",  # SQLITE_READONLY
    10: "io",  # SQLITE_IOERR
    13: "disk_full",  # SQLITE_FULL
    14: "unavailable",  # SQLITE_CANTOPEN
    3: "read_only",  # SQLITE_PERM
}
#: Message fragments, for sqlite3 errors that lost their code on the way.
_SQLITE_TEXT = (
    ("database is locked", "busy"),
    ("database table is locked", "busy"),
    ("database or disk is full", "disk_full"),
    ("readonly database", "read_only"),
    ("disk i/o error", "io"),
    ("unable to open database file", "unavailable"),
)
#: PostgreSQL SQLSTATEs (exact, then by class) → fault kind.
_PG_STATES = {
    "53100": "disk_full",  # disk_full
    "25006": "read_only",  # read_only_sql_transaction
    "53300": "unavailable",  # too_many_connections
    "55P03": "busy",  # lock_not_available
    "57014": "busy",  # query_canceled (statement_timeout)
    "40001": "busy",  # serialization_failure
    "40P01": "busy",  # deadlock_detected
    "58030": "io",  # io_error
}
_PG_CLASSES = {"08": "unavailable", "57": "unavailable", "53": "busy"}
_OS_ERRNOS = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EROFS: "read_only",
}
_CONNECT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
}
_DRIVER_MODULES = ("asyncpg", "sqlalchemy", "aiosqlite", "store.")


def _fault(kind: str, error: BaseException) -> DatabaseFault:
    zh, en, retry = _TEXT[kind]
    detail = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    return DatabaseFault(kind, retry, zh, en, detail)


def _raised_in_driver(error: BaseException) -> bool:
    """True if the traceback passes through the database stack (so a connection error is the
    database's, not a vendor HTTP call's)."""
    tb = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def _one(error: BaseException) -> str | None:
    if isinstance(error, IntegrityError):
        return None  # a constraint: the request's problem, never a fault
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF) in _SQLITE_CODES:
            return _SQLITE_CODES[code & 0xFF]
        text = str(error).lower()
        for fragment, kind in _SQLITE_TEXT:
            if fragment in text:
                return kind
        return None
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str) and len(state) == 5:
        return _PG_STATES.get(state) or _PG_CLASSES.get(state[:2])
    if connection_is_broken(error):
        return "unavailable"
    if type(error).__module__.startswith("asyncpg"):
        return None
    if isinstance(error, OSError):
        if error.errno in _OS_ERRNOS:
            return _OS_ERRNOS[error.errno]
        if error.errno in _CONNECT_ERRNOS or isinstance(error, ConnectionError):
            return "unavailable" if _raised_in_driver(error) else None
        if isinstance(error, TimeoutError) and _raised_in_driver(error):
            return "unavailable"
        import socket

        if isinstance(error, socket.gaierror) and _raised_in_driver(error):
            return "unavailable"
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return "unavailable"
    return None


def classify_fault(error: BaseException) -> DatabaseFault | None:
    """The store fault behind ``error`` (following ``orig``, ``__cause__`` and ``__context__``),
    or None if it is not one."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop(0)
        if id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        kind = _one(current)
        if kind is not None:
            return _fault(kind, current)
        if isinstance(current, IntegrityError):
            return None
        for nxt in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return None


class StoreUnavailable(Exception):
    """Raised by :func:`check_writable` and start-up checks: carries the fault."""

    def __init__(self, fault: DatabaseFault) -> None:
        super().__init__(fault.one_line())
        self.fault = fault


#: A SQLite data directory with less free space than this is "full" for readiness (bytes).
MIN_FREE_BYTES = 4 * 1024 * 1024


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite file URL (None for PostgreSQL or in-memory)."""
    if not is_sqlite(url):
        return None
    db = make_url(url).database
    if not db or db == ":memory:" or str(db).startswith("file::memory:"):
        return None
    return Path(db)


def check_sqlite_directory(url: str, *, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Raise :class:`StoreUnavailable` if a SQLite file's directory cannot take writes: missing
    and not creatable, read-only (chmod, read-only mount), or with less than ``min_free_bytes``
    free. Probes by creating and removing a small file (permission bits lie to root)."""
    path = sqlite_path(url)
    if path is None:
        return
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".jixiao-write-probe-{os.getpid()}"
        with open(probe, "wb") as fh:
            fh.write(b"ok")
        probe.unlink()
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, "database file is not writable", str(path))
    except OSError as error:
        kind = _OS_ERRNOS.get(error.errno or 0, "read_only")
        raise StoreUnavailable(_fault(kind, error)) from error
    free = shutil.disk_usage(directory).free
    if free < min_free_bytes:
        error = OSError(errno.ENOSPC, f"only {free} bytes free in {directory}")
        raise StoreUnavailable(_fault("disk_full", error))


async def check_writable(sm: SessionMaker, *, name: str, now: datetime, url: str = "") -> None:
    """The readiness write: commit this replica's heartbeat row (``name``), after the SQLite
    directory check. Raises :class:`StoreUnavailable` with the fault, or the original error if
    it is not a recognised fault."""
    from store.models import Heartbeat

    if url:
        check_sqlite_directory(url)
    try:
        async with transaction(sm) as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            stmt = insert(Heartbeat).values(name=name, beat_at=now)
            await session.execute(
                stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": stmt.excluded.beat_at})
            )
    except Exception as error:
        fault = classify_fault(error)
        if fault is None:
            raise
        raise StoreUnavailable(fault) from error
