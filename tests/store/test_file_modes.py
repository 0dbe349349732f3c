"""Files that hold secrets or answers are created owner-only (0600), whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from config.settings import Settings
from store.db import create_engine


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask (as on many servers), so the test cannot pass by accident."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_the_sqlite_database_file_and_its_journal_are_created_0600(
    tmp_path: Path, open_umask: None
) -> None:
    db = tmp_path / "data" / "jixiao.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _mode(db) == 0o600
        for side in (db.with_name("jixiao.db-wal"), db.with_name("jixiao.db-shm")):
            if side.exists():
                assert _mode(side) == 0o600, side
    finally:
        await engine.dispose()


def test_the_generated_secret_file_is_created_0600(tmp_path: Path, open_umask: None) -> None:
    settings = Settings(data_dir=tmp_path / "data", load_example=False)
    secret = settings.secret()
    path = tmp_path / "data" / "secret_key"
    assert _mode(path) == 0o600
    assert len(secret) >= 32 and settings.secret() == secret  # generated once, then reused
