"""Group commit on SQLite (``store.linkpage._Batcher``): the unit page's writes that queue while
the writer is busy commit in ONE transaction (one fsync), each unit in its own savepoint.

- a unit that fails loses only its own work; the others of its batch are committed and each
  caller hears its own result or error;
- nobody is answered before the batch's COMMIT: when the COMMIT fails, every caller hears it and
  nothing of the batch is stored;
- a server killed with SIGKILL in the middle of submissions has stored every submission it
  answered 303 (checked on a real ``bot.app`` process whose batches are slowed down, so the kill
  lands inside one).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.forms import submission_key
from config.loader import load_definition
from store.db import create_engine, make_sessionmaker, transaction
from store.linkpage import _Batcher
from store.models import metadata
from store.projects import load_project
from tests.bot.conftest import TEST_SECRET, hidden_fields, launch_example_campaign
from tests.conftest import EXAMPLE_PROJECT, REPO

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}

#: Generous deadlines: the machine running the suite may be heavily loaded.
READY_DEADLINE_S = 120.0
ANSWERS_DEADLINE_S = 120.0


async def test_one_failing_unit_loses_only_its_own_work_and_the_batch_commits_once(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        batcher = _Batcher(engine, lanes=1, write=True)
        committed_seen_by_another_connection: list[int] = []

        def insert(n: int) -> Callable[[sqlite3.Connection], int]:
            def unit(conn: sqlite3.Connection) -> int:
                conn.execute("INSERT INTO t VALUES (?)", (n,))
                if n == 3:
                    raise ValueError("unit 3 fails after writing")
                if n == 4:  # units 1 and 2 succeeded, yet nothing is committed: one transaction
                    with sqlite3.connect(path) as other:
                        committed_seen_by_another_connection.append(
                            other.execute("SELECT count(*) FROM t").fetchone()[0]
                        )
                return n

            return unit

        # Submitted in one loop step: they queue before the writer's drainer first runs.
        results = await asyncio.gather(
            *(batcher.submit(insert(n)) for n in range(1, 6)), return_exceptions=True
        )
        assert results[:2] == [1, 2] and results[3:] == [4, 5]
        assert isinstance(results[2], ValueError)
        assert committed_seen_by_another_connection == [0]
        with sqlite3.connect(path) as db:
            assert [n for (n,) in db.execute("SELECT n FROM t ORDER BY n")] == [1, 2, 4, 5]
    finally:
        await engine.dispose()


async def test_when_the_commit_fails_every_caller_of_the_batch_hears_it_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "g.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            await conn.exec_driver_sql(
                "CREATE TABLE child (n INTEGER PRIMARY KEY, parent_id INTEGER "
                "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
            )
        batcher = _Batcher(engine, lanes=1, write=True)

        def insert(n: int, parent: int | None) -> Callable[[sqlite3.Connection], int]:
            def unit(conn: sqlite3.Connection) -> int:
                conn.execute("INSERT INTO child VALUES (?, ?)", (n, parent))
                return n

            return unit

        # Unit 2's dangling reference is only checked at COMMIT (a deferred foreign key): every
        # unit "succeeded", then the batch's COMMIT fails.
        results = await asyncio.gather(
            batcher.submit(insert(1, None)),
            batcher.submit(insert(2, 99)),
            batcher.submit(insert(3, None)),
            return_exceptions=True,
        )
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM child").fetchone()[0] == 0
        # The writer is usable again afterwards.
        assert await batcher.submit(insert(4, None)) == 4
    finally:
        await engine.dispose()


# ----------------------------------------------------------------------------------- SIGKILL

#: The child: the real app on the test's database, every write batch held 50 ms before its
#: COMMIT (one extra unit that sleeps), so a SIGKILL lands inside a batch, not between them.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from aiohttp import web
    import store.linkpage as lp
    from bot.app import create_app
    from config.settings import Settings
    from store.db import create_engines, make_sessionmaker

    port, url, secret, data_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    group_commit = lp._group_commit

    def slowed(conn, units):
        return group_commit(conn, [*units, lambda c: time.sleep(0.05)])[:-1]

    lp._group_commit = slowed
    settings = Settings(data_dir=Path(data_dir), secret_key=secret, public_url=f"http://127.0.0.1:{port}",
                        database_url=url, load_example=False)
    write, read = create_engines(url)
    app = create_app(settings, sessionmaker=make_sessionmaker(write), read_sessionmaker=make_sessionmaker(read),
                     channels={}, start_workers=False)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda _: print("READY", flush=True))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_server_killed_mid_batch_has_stored_every_submission_it_answered_303(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'kill.db'}"
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sm = make_sessionmaker(engine)
        now = datetime.now(UTC)  # the child serves with the real clock
        async with transaction(sm) as session:
            project = (
                await load_project(session, load_definition(EXAMPLE_PROJECT), now=now, by="test")
            ).project
        launched = await launch_example_campaign(sm, project, now)
    finally:
        await engine.dispose()

    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(port), url, TEST_SECRET, str(tmp_path),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), READY_DEADLINE_S)
        if b"READY" not in line:
            _, err = await proc.communicate()
            pytest.fail(f"the server did not start: {err.decode()[-2000:]}")
        base = f"http://127.0.0.1:{port}"
        answered: dict[str, str] = {}  # unit key → submission id of a 303
        enough = asyncio.Event()
        keys = sorted(launched.tokens)[:80]

        async def submitter(http: aiohttp.ClientSession, mine: list[str]) -> None:
            for key in mine:
                token = launched.tokens[key]
                async with http.get(f"{base}/l/{token}") as resp:
                    fields = hidden_fields(await resp.text(), f"/l/{token}/answers")
                async with http.post(
                    f"{base}/l/{token}/answers", data={**fields, **GOOD}, allow_redirects=False
                ) as resp:
                    if resp.status == 303:
                        answered[key] = fields["submission_id"]
                        if len(answered) >= 12:
                            enough.set()

        async with aiohttp.ClientSession() as http:
            # 8 users at a time, like wrk -c 8: there is always a batch on its way to COMMIT.
            tasks = [asyncio.create_task(submitter(http, keys[i::8])) for i in range(8)]
            await asyncio.wait_for(enough.wait(), ANSWERS_DEADLINE_S)
            proc.send_signal(signal.SIGKILL)
            await asyncio.gather(*tasks, return_exceptions=True)  # the rest fail: connection lost
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()

    with sqlite3.connect(tmp_path / "kill.db") as db:
        stored = {k for (k,) in db.execute("SELECT submission_key FROM response")}
    # Every 303 the client received (also one that arrived after the signal was sent: the server
    # sent it before it died) is stored.
    for key, sid in answered.items():
        expected = submission_key(launched.links[key].id, "answers", sid)  # type: ignore[arg-type]
        assert expected in stored, f"{key} was answered 303 but its submission is not stored"
    assert proc.returncode == -signal.SIGKILL
