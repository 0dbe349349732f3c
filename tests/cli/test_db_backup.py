"""``jixiao db backup``: an online copy that restores and reads back — SQLite (backup API, taken
while another connection holds an open write transaction) and PostgreSQL (pg_dump/pg_restore)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.cli.test_score_cli import jixiao
from tests.conftest import EXAMPLE_PROJECT, create_pg_database, drop_pg_database


async def _load_example(db_url: str, data_dir: Path) -> None:
    code, _, err = await jixiao(db_url, data_dir, "project", "load", str(EXAMPLE_PROJECT))
    assert code == 0, err


async def _total(db_url: str, data_dir: Path) -> str:
    code, out, err = await jixiao(db_url, data_dir, "score", "urumqi-ip-2023", "--format", "json")
    assert code == 0, err
    return str(json.loads(out)["total"])


async def test_a_sqlite_backup_taken_during_a_write_restores_the_committed_data(tmp_path: Path) -> None:
    db_file = tmp_path / "live.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    await _load_example(url, tmp_path)
    writer = sqlite3.connect(db_file, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the service is writing: the copy must not wait for it
    writer.execute("UPDATE project SET name = 'uncommitted'")
    try:
        target = tmp_path / "copies" / "jixiao-backup.db"
        code, out, err = await jixiao(url, tmp_path, "db", "backup", str(target))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert code == 0, err
    assert str(target) in out and "integrity ok" in out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # Restore = use the copy as the database: it reads back whole, without the uncommitted edit.
    restored = f"sqlite+aiosqlite:///{target}"
    assert await _total(restored, tmp_path) == "100.00"
    names = sqlite3.connect(target).execute("SELECT name FROM project").fetchall()
    assert names and names[0][0] != "uncommitted"
    again = await jixiao(url, tmp_path, "db", "backup", str(target))
    assert again[0] == 1 and "already exists" in again[2]


async def test_a_sqlite_backup_without_a_path_goes_to_the_data_directory(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'jixiao.db'}"
    await _load_example(url, tmp_path)
    code, out, err = await jixiao(url, tmp_path, "db", "backup")
    assert code == 0, err
    copies = list((tmp_path / "backups").glob("jixiao-*.db"))
    assert len(copies) == 1 and str(copies[0]) in out


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")
async def test_a_postgresql_backup_is_a_pg_dump_that_pg_restore_brings_back(tmp_path: Path) -> None:
    from tests.conftest import PG_URL

    if not PG_URL:
        pytest.skip("JIXIAO_TEST_PG_URL not set")
    import asyncio

    source = await create_pg_database()
    restored = await create_pg_database()
    try:
        await _load_example(source, tmp_path)
        shown = await jixiao(source, tmp_path, "db", "backup", str(tmp_path / "x.dump"), "--print-command")
        assert shown[0] == 0 and "pg_dump --format=custom" in shown[1]
        assert not (tmp_path / "x.dump").exists()
        dump = tmp_path / "jixiao.dump"
        code, out, err = await jixiao(source, tmp_path, "db", "backup", str(dump))
        assert code == 0 and "pg_dump" in out, err
        target = make_url(restored)
        proc = await asyncio.create_subprocess_exec(
            "pg_restore",
            "--no-owner",
            f"--host={target.host}",
            f"--port={target.port or 5432}",
            f"--username={target.username}",
            f"--dbname={target.database}",
            str(dump),
            stderr=asyncio.subprocess.PIPE,
        )
        _, restore_err = await proc.communicate()
        assert proc.returncode == 0, restore_err.decode()
        assert await _total(restored, tmp_path) == "100.00"
    finally:
        await drop_pg_database(source)
        await drop_pg_database(restored)
