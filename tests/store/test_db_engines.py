"""The database engines: SQLite write/read engines and the one-trip aiosqlite adapter.

These guard the concurrency guarantees the store relies on (BEGIN IMMEDIATE serialises
read-modify-write transactions; the read engine never writes) after the adapter changes that made
link submissions faster (store/db.py docstring, bench/README.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import (
    SessionMaker,
    create_engine,
    create_engines,
    is_sqlite,
    make_sessionmaker,
    read_sessionmaker_for,
    transaction,
)


@pytest.fixture
async def engines(db_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    write, read = create_engines(db_url)
    async with write.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter (id, v) VALUES (1, 0)"))
    yield write, read
    if read is not write:
        await read.dispose()
    await write.dispose()


async def test_read_modify_write_transactions_lose_no_update_under_concurrency(
    db_url: str, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    # Two write engines stand for two processes (one server, one CLI): within one process the
    # single pooled writer connection already queues transactions; across processes only
    # SQLite's BEGIN IMMEDIATE (PostgreSQL: the row lock) keeps the updates.
    write, _ = engines
    other = create_engine(db_url)
    select_v = "SELECT v FROM counter WHERE id = 1" + ("" if is_sqlite(write) else " FOR UPDATE")

    async def bump(sm: SessionMaker, times: int) -> None:
        for _ in range(times):
            async with transaction(sm) as session:
                v = (await session.execute(text(select_v))).scalar_one()
                await asyncio.sleep(0)  # let the other tasks run between the read and the write
                await session.execute(text("UPDATE counter SET v = :v WHERE id = 1"), {"v": v + 1})

    try:
        sms = [make_sessionmaker(write), make_sessionmaker(other)]
        await asyncio.gather(*(bump(sms[i % 2], 20) for i in range(10)))
        async with sms[0]() as session:
            assert (await session.execute(text("SELECT v FROM counter"))).scalar_one() == 200
    finally:
        await other.dispose()


async def test_the_read_engine_sees_committed_writes_and_refuses_to_write(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    write, read = engines
    async with transaction(make_sessionmaker(write)) as session:
        await session.execute(text("UPDATE counter SET v = 7"))
    async with transaction(make_sessionmaker(read)) as session:
        assert (await session.execute(text("SELECT v FROM counter"))).scalar_one() == 7
    if is_sqlite(read):
        assert read is not write
        with pytest.raises(OperationalError, match="readonly"):
            async with transaction(make_sessionmaker(read)) as session:
                await session.execute(text("UPDATE counter SET v = 8"))
    else:
        assert read is write  # PostgreSQL: one engine for both


async def test_a_reader_is_not_blocked_by_an_open_write_transaction(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    write, read = engines
    async with transaction(make_sessionmaker(write)) as writer:
        await writer.execute(text("UPDATE counter SET v = 5"))
        # The write is not committed yet: the reader sees the last committed value at once.
        async with transaction(make_sessionmaker(read)) as reader:
            assert (await reader.execute(text("SELECT v FROM counter"))).scalar_one() == 0


async def test_row_counts_returning_and_failed_statements_behave_as_with_the_stock_driver(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    write, _ = engines
    sm = make_sessionmaker(write)
    async with transaction(sm) as session:
        result = await session.execute(text("UPDATE counter SET v = v + 1 WHERE id IN (1, 2)"))
        assert result.rowcount == 1  # type: ignore[attr-defined]
        rows = await session.execute(text("INSERT INTO counter (id, v) VALUES (2, 40), (3, 41) RETURNING v"))
        assert sorted(rows.scalars()) == [40, 41]
    with pytest.raises(IntegrityError):
        async with transaction(sm) as session:
            await session.execute(text("UPDATE counter SET v = 100 WHERE id = 3"))
            await session.execute(text("INSERT INTO counter (id, v) VALUES (1, 0)"))
    async with sm() as session:  # the failed transaction left nothing behind
        values = (await session.execute(text("SELECT v FROM counter ORDER BY id"))).scalars().all()
    assert values == [1, 40, 41]


async def test_read_sessionmaker_for_a_sqlite_file_is_a_separate_read_only_engine(tmp_path: Path) -> None:
    write, read = create_engines(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    sm = make_sessionmaker(write)
    read_sm = read_sessionmaker_for(sm)
    try:
        assert read_sm is not sm and read_sm.kw["bind"] is not write
        async with transaction(read_sm) as session:
            assert (await session.execute(text("PRAGMA query_only"))).scalar_one() == 1
    finally:
        await read_sm.kw["bind"].dispose()
        await read.dispose()
        await write.dispose()
