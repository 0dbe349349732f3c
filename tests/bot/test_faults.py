"""Database faults get clear answers: 503 + Retry-After (the friendly page, or JSON under /api),
never a generic 500; ``/readyz`` proves a write commits; a replica hands out healthy connections
after PostgreSQL backends are killed.

Each fault is provoked for real: a full tmpfs (ENOSPC), a read-only mount (EROFS; as root a chmod
does not stop writes, so the mount is remounted read-only — a plain chmod when not root), an
external ``BEGIN IMMEDIATE`` holder past the busy timeout, ``pg_terminate_backend`` on the test
database, a closed port, and ``default_transaction_read_only`` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.app import create_app
from config.loader import load_definition
from config.settings import Settings
from store.db import SessionMaker, create_engine, make_sessionmaker, transaction
from store.models import Response, metadata
from store.projects import load_project
from store.tokens import create_token
from tests.bot.conftest import Launched, hidden_fields, launch_example_campaign
from tests.conftest import EXAMPLE_PROJECT, PG_URL, Clock, create_pg_database, drop_pg_database
from tests.waits import wait_until_async, within

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}
ROOT = os.geteuid() == 0


# ------------------------------------------------------------------------------ fault makers


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    """A small tmpfs at ``path`` (needs root; the test is skipped otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): disk-full needs one")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(directory: Path) -> Path:
    """Write a filler file until the filesystem answers ENOSPC; returns it (delete to recover)."""
    filler = directory / "filler.bin"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0")
    return filler


def make_read_only(directory: Path) -> None:
    """Make ``directory`` refuse writes: remount its tmpfs read-only as root (root ignores mode
    bits), chmod otherwise. Nothing may hold a file open for writing in it."""
    if ROOT:
        subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
    else:
        for item in [directory, *directory.iterdir()]:
            item.chmod(0o555 if item.is_dir() else 0o444)


def checkpoint_truncate(db_file: Path) -> None:
    """Move the WAL into the database and truncate it to 0 bytes, so the next commit must grow
    it (otherwise a commit can reuse WAL space allocated before the disk filled up)."""
    conn = sqlite3.connect(db_file)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# ------------------------------------------------------------------------------ the app


@dataclass
class Running:
    client: TestClient
    sm: SessionMaker
    launched: Launched
    admin: dict[str, str]


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        secret_key="test-secret-do-not-use-0123456789abcdef",  # type: ignore[arg-type]
        public_url="http://127.0.0.1",
        load_example=False,
    )


async def prepare(url: str, clock: Clock) -> tuple[Launched, str]:
    """Schema, the example project and a launched campaign on ``url``; returns the campaign and
    an admin token. The engine is disposed (no file left open)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sm = make_sessionmaker(engine)
        async with transaction(sm) as session:
            project = (
                await load_project(session, load_definition(EXAMPLE_PROJECT), now=clock(), by="test")
            ).project
            _, admin = await create_token(
                session, name="管理员", role="admin", now=clock(), all_projects=True
            )
        launched = await launch_example_campaign(sm, project, clock())
    finally:
        await engine.dispose()
    return launched, admin


@contextlib.asynccontextmanager
async def serve(
    aiohttp_client: Any,
    tmp_path: Path,
    url: str,
    clock: Clock,
    launched: Launched,
    admin: str,
    **engine_kw: Any,
) -> AsyncIterator[Running]:
    engine = create_engine(url, **engine_kw)
    sm = make_sessionmaker(engine)
    app = create_app(_settings(tmp_path), sessionmaker=sm, clock=clock, channels={}, start_workers=False)
    try:
        client = await aiohttp_client(app)
        yield Running(client, sm, launched, {"Authorization": f"Bearer {admin}"})
    finally:
        await engine.dispose()


async def form_fields(client: TestClient, token: str) -> dict[str, str]:
    resp = await client.get(f"/l/{token}")
    assert resp.status == 200, await resp.text()
    return hidden_fields(await resp.text(), f"/l/{token}/answers")


async def post_answers(client: TestClient, token: str, fields: dict[str, str]) -> Any:
    return await client.post(f"/l/{token}/answers", data={**fields, **GOOD}, allow_redirects=False)


async def assert_fault_page(resp: Any, *, words: tuple[str, ...] = ()) -> None:
    """A 503 with Retry-After and the friendly page, not the generic 500 page."""
    text = await resp.text()
    assert resp.status == 503, text[:500]
    assert int(resp.headers["Retry-After"]) > 0
    assert "服务暂时不可用" in text and "Traceback" not in text and "内部错误" not in text
    for word in words:
        assert word in text


async def assert_fault_json(resp: Any, kind: str) -> None:
    body = await resp.json()
    assert resp.status == 503 and int(resp.headers["Retry-After"]) > 0, body
    assert body["ok"] is False and body["status"] == 503
    assert body["error"]["code"] == f"database_{kind}", body


async def stored_responses(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            stmt = select(func.count()).select_from(Response).where(Response.source == "link")
            return int(await conn.scalar(stmt) or 0)
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------------ SQLite


async def test_a_full_disk_answers_503_with_retry_after_and_readyz_fails_until_space_is_freed(
    aiohttp_client: Any, tmp_path: Path, clock: Clock
) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        url = f"sqlite+aiosqlite:///{disk / 'jixiao.db'}"
        launched, admin = await prepare(url, clock)
        async with serve(aiohttp_client, tmp_path, url, clock, launched, admin) as run:
            token = launched.tokens["u001"]
            fields = await form_fields(run.client, token)
            assert (await run.client.get("/readyz")).status == 200
            checkpoint_truncate(disk / "jixiao.db")
            filler = fill_disk(disk)

            await assert_fault_page(await post_answers(run.client, token, fields), words=("磁盘已满",))
            api = await run.client.post(f"/api/campaigns/{launched.campaign_id}/close", headers=run.admin)
            await assert_fault_json(api, "disk_full")
            ready = await run.client.get("/readyz")
            assert ready.status == 503 and (await ready.json())["write"] == "disk_full"
            assert "Retry-After" in ready.headers
            assert (await run.client.get("/healthz")).status == 200  # reads still work

            filler.unlink()
            assert (await run.client.get("/readyz")).status == 200
            assert (await post_answers(run.client, token, fields)).status == 303
        assert await stored_responses(url) == 1


async def test_a_database_locked_past_the_busy_timeout_answers_503_and_recovers(
    aiohttp_client: Any, tmp_path: Path, clock: Clock
) -> None:
    db_file = tmp_path / "locked.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    launched, admin = await prepare(url, clock)
    async with serve(aiohttp_client, tmp_path, url, clock, launched, admin, busy_timeout_ms=200) as run:
        token = launched.tokens["u002"]
        fields = await form_fields(run.client, token)
        holder = sqlite3.connect(db_file, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            resp = await post_answers(run.client, token, fields)
            await assert_fault_page(resp, words=("繁忙",))
            assert resp.headers["Retry-After"] == "2"
            api = await run.client.post(f"/api/campaigns/{launched.campaign_id}/close", headers=run.admin)
            await assert_fault_json(api, "busy")
            ready = await run.client.get("/readyz")
            assert ready.status == 503 and (await ready.json())["write"] == "busy"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert (await post_answers(run.client, token, fields)).status == 303
        assert (await run.client.get("/readyz")).status == 200
    assert await stored_responses(url) == 1


async def test_a_read_only_database_answers_503_never_500(
    aiohttp_client: Any, tmp_path: Path, clock: Clock
) -> None:
    with contextlib.ExitStack() as stack:
        directory = stack.enter_context(tmpfs(tmp_path / "ro")) if ROOT else tmp_path / "ro"
        directory.mkdir(exist_ok=True)
        url = f"sqlite+aiosqlite:///{directory / 'jixiao.db'}"
        launched, admin = await prepare(url, clock)
        token = launched.tokens["u003"]
        async with serve(aiohttp_client, tmp_path, url, clock, launched, admin) as run:
            fields = await form_fields(run.client, token)
        make_read_only(directory)
        try:
            async with serve(aiohttp_client, tmp_path, url, clock, launched, admin) as run:
                resp = await post_answers(run.client, token, fields)
                await assert_fault_page(resp)
                api = await run.client.post(f"/api/campaigns/{launched.campaign_id}/close", headers=run.admin)
                assert api.status == 503 and (await api.json())["error"]["code"].startswith("database_")
                ready = await run.client.get("/readyz")
                assert ready.status == 503 and (await ready.json())["write"] == "read_only"
        finally:
            if not ROOT:
                for item in [directory, *directory.iterdir()]:
                    item.chmod(0o755 if item.is_dir() else 0o644)


def test_serve_on_a_read_only_data_directory_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        data = stack.enter_context(tmpfs(tmp_path / "data")) if ROOT else tmp_path / "data"
        data.mkdir(exist_ok=True)
        make_read_only(data)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JIXIAO_")}
        env["JIXIAO_DATA_DIR"] = str(data)
        done = subprocess.run(
            [sys.executable, "-m", "cli", "serve", "--port", "1"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if not ROOT:
            data.chmod(0o755)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0
    assert len(lines) == 1, done.stderr
    assert "只读" in lines[0] and "read-only" in lines[0] and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------ PostgreSQL

needs_pg = pytest.mark.skipif(not PG_URL, reason="JIXIAO_TEST_PG_URL not set")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


async def _admin_exec(url: str, sql: str) -> Any:
    """Run ``sql`` on the server as the test admin (a connection outside the app's pool)."""
    import asyncpg

    dsn = (
        make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    )
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def kill_backends(url: str) -> int:
    """``pg_terminate_backend`` every session on the app's database; waits until those sessions
    are gone (new ones may already be connecting). Returns how many were killed."""
    name = make_url(url).database
    rows = await _admin_exec(
        url,
        f"SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
        "AND pid <> pg_backend_pid()",
    )
    pids = ",".join(str(r[0]) for r in rows) or "0"

    async def gone() -> bool:
        left = await _admin_exec(url, f"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({pids})")
        return left[0][0] == 0

    await wait_until_async(gone, what=f"the {len(rows)} terminated PostgreSQL sessions are gone")
    return len(rows)


@needs_pg
async def test_after_postgresql_backends_are_killed_the_next_requests_get_healthy_connections(
    aiohttp_client: Any, tmp_path: Path, clock: Clock, pg_url: str
) -> None:
    launched, admin = await prepare(pg_url, clock)
    async with serve(aiohttp_client, tmp_path, pg_url, clock, launched, admin) as run:
        tokens = [launched.tokens[f"u{i:03d}"] for i in range(1, 9)]
        fields = await asyncio.gather(*(form_fields(run.client, t) for t in tokens))  # fills the pool
        assert await kill_backends(pg_url) >= 2
        await asyncio.sleep(0)  # let the loop see the closed sockets (no timing involved)
        # Every request after the kill gets a live connection: no error, no 503.
        for token, fs in zip(tokens, fields, strict=True):
            assert (await run.client.get(f"/l/{token}")).status == 200
            assert (await post_answers(run.client, token, fs)).status == 303
        assert (await run.client.get("/readyz")).status == 200
        api = await run.client.get("/api/projects", headers=run.admin)
        assert api.status == 200
    assert await stored_responses(pg_url) == len(tokens)


class Tally:
    """Response statuses counted as they arrive; ``more(n)`` waits for ``n`` more of them."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self._changed = asyncio.Condition()

    def add(self, status: int) -> None:
        self.counts[status] += 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def more(self, n: int) -> None:
        target = sum(self.counts.values()) + n

        async def counted() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: sum(self.counts.values()) >= target)

        await within(counted(), f"{n} more responses", state=lambda: dict(self.counts))


@needs_pg
async def test_killing_postgresql_backends_under_load_gives_no_500_and_nothing_half_stored(
    aiohttp_client: Any, tmp_path: Path, clock: Clock, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    launched, admin = await prepare(pg_url, clock)
    statuses = Tally()
    async with serve(aiohttp_client, tmp_path, pg_url, clock, launched, admin) as run:
        keys = [f"u{i:03d}" for i in range(1, 41)]
        fields = {k: await form_fields(run.client, launched.tokens[k]) for k in keys}
        stop = asyncio.Event()

        async def user(client: TestClient, token: str, form: dict[str, str]) -> None:
            while not stop.is_set():
                statuses.add((await client.get(f"/l/{token}")).status)
                statuses.add((await post_answers(client, token, form)).status)

        caplog.set_level(logging.WARNING)
        users = [asyncio.create_task(user(run.client, launched.tokens[k], fields[k])) for k in keys]
        for _ in range(3):
            await statuses.more(60)  # real traffic between kills (progress, not time)
            await kill_backends(pg_url)
        await statuses.more(120)
        stop.set()
        await within(asyncio.gather(*users), "the simulated users finish their last requests")
        # Once the kills are over, every unit's answer can be stored.
        for key in keys:
            assert (await post_answers(run.client, launched.tokens[key], fields[key])).status == 303
    assert set(statuses.counts) <= {200, 303, 503}, statuses.counts
    assert statuses.counts[500] == 0
    assert "another operation is in progress" not in caplog.text
    assert "unhandled error" not in caplog.text


@needs_pg
async def test_an_unreachable_postgresql_answers_503_on_pages_api_and_readyz(
    aiohttp_client: Any, tmp_path: Path, clock: Clock
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = make_url(PG_URL).set(port=port, database="nowhere").render_as_string(hide_password=False)
    launched = Launched(campaign_id=1, project_id=1, tokens={"u001": "A" * 32})
    async with serve(aiohttp_client, tmp_path, url, clock, launched, "jx_" + "B" * 43) as run:
        await assert_fault_page(await run.client.get("/l/" + "A" * 32), words=("无法连接",))
        await assert_fault_json(await run.client.get("/api/projects", headers=run.admin), "unavailable")
        ready = await run.client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["write"] == "unavailable"
        assert (await run.client.get("/healthz")).status == 503


@needs_pg
async def test_a_read_only_postgresql_answers_503_and_readyz_says_read_only(
    aiohttp_client: Any, tmp_path: Path, clock: Clock, pg_url: str
) -> None:
    launched, admin = await prepare(pg_url, clock)
    name = make_url(pg_url).database
    async with serve(aiohttp_client, tmp_path, pg_url, clock, launched, admin) as run:
        token = launched.tokens["u004"]
        fields = await form_fields(run.client, token)
        await _admin_exec(pg_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await kill_backends(pg_url)  # new sessions pick the setting up
        await assert_fault_page(await post_answers(run.client, token, fields), words=("只读",))
        api = await run.client.post(f"/api/campaigns/{launched.campaign_id}/close", headers=run.admin)
        await assert_fault_json(api, "read_only")
        ready = await run.client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["write"] == "read_only"
    await _admin_exec(pg_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')
