"""Shared fixtures: real databases.

``db_url`` runs each test that uses it on a fresh SQLite file, and also on a fresh PostgreSQL
database when ``JIXIAO_TEST_PG_URL`` is set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test;
.ci/run sets it). Each PostgreSQL test gets its own throw-away database created from that server.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import SessionMaker, create_engine, make_sessionmaker
from store.models import metadata
from tests.ci_strict import pytest_runtest_makereport, pytest_sessionstart

__all__ = ["pytest_runtest_makereport", "pytest_sessionstart"]  # CI=true: skips are errors

PG_URL = os.environ.get("JIXIAO_TEST_PG_URL", "")

# The default data directory is $XDG_DATA_HOME/jixiao: point it (for this process and every CLI
# subprocess a test starts) at a throw-away folder, so no test ever writes to the user's home.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="jixiao-test-xdg-")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PROJECT = REPO / "config" / "projects" / "urumqi-ip-2023"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``pg`` test PostgreSQL's own features (LISTEN/NOTIFY, shared row locks): their
    SQLite variant is not collected at all rather than skipped, since CI counts a skip as a failure
    (tests/ci_strict.py). Without ``JIXIAO_TEST_PG_URL`` such a test therefore does not run."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        sqlite_variant = callspec is not None and callspec.params.get("db_url") == "sqlite"
        (drop if item.get_closest_marker("pg") and sqlite_variant else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _admin_dsn() -> str:
    url = make_url(PG_URL)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def create_pg_database() -> str:
    """Create an empty database on the test server and return its async URL."""
    import asyncpg

    name = f"jixiao_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = make_url(url).database
    conn = await asyncpg.connect(_admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL (not migrated), on each configured backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database with the schema of ``store.models``.

    The schema is created from the models (fast, and independent of migration files); the
    migration tests check separately that Alembic's head builds exactly the same schema.
    """
    eng = create_engine(db_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> SessionMaker:
    return make_sessionmaker(engine)


class Clock:
    """A settable, timezone-aware clock for tests (``clock()`` returns now in UTC)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        from datetime import timedelta

        self.now = self.now + timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    yield Clock()
