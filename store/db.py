"""Async engine and sessions for SQLite (embedded default) and PostgreSQL (asyncpg).

SQLite is configured for safe concurrent writes: WAL, busy_timeout, and ``BEGIN IMMEDIATE`` on
every transaction (a deferred BEGIN lets a read-then-write transaction lose updates or fail with
"database is locked" — see reference/stack-pitfalls.md §2). The cost is that readers also take the
writer lock for the length of their transaction, so keep transactions short and never hold one
across slow awaits (HTTP, pandas).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SessionMaker = async_sessionmaker[AsyncSession]


def is_sqlite(url_or_engine: str | AsyncEngine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, AsyncEngine) else make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False, **kw: Any) -> AsyncEngine:
    """Build the async engine for ``url``; creates the SQLite file's directory if needed."""
    if is_sqlite(url):
        db = make_url(url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **kw)
        _configure_sqlite(engine)
        return engine
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    return create_async_engine(url, echo=echo, pool_pre_ping=True, **kw)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's legacy mode skips it before SELECTs).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    """Sessions that keep loaded attributes after commit (no implicit reload on the loop)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessionmaker: SessionMaker) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception."""
    async with sessionmaker() as session, session.begin():
        yield session
