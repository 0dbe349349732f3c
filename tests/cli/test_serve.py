"""`jixiao serve` as a real process on the embedded default: starts, loads the example (or not),
answers, keeps its generated secret across restarts, stops cleanly on SIGTERM.

Every wait is on an event with a deadline: the process's own "serving on" line (readiness), its exit
(after SIGTERM), never a fixed number of polls. A port taken between choosing it and binding it (the
free-port race) makes the process exit early with "address in use"; that start is retried on another
port instead of failing the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.report import sign_report

#: Generous: migrating and loading the example takes seconds, much longer on a loaded machine.
READY_DEADLINE_S = 120.0
EXIT_DEADLINE_S = 60.0
EXAMPLE_CODE = "urumqi-ip-2023"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A running `jixiao serve`: its port, and what it printed so far."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port
        self.out: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self) -> bool:
        """Read stdout until the "serving on" line (True) or the process exits first (False)."""
        assert self.proc.stdout is not None
        while line := (await self.proc.stdout.readline()).decode():
            self.out.append(line)
            if f"serving on http://127.0.0.1:{self.port}" in line:
                return True
        return False

    async def stop(self, deadline_s: float = EXIT_DEADLINE_S) -> tuple[str, str]:
        """SIGTERM, then wait for the exit; fail clearly (after a kill) if it does not come."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), timeout=deadline_s)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            pytest.fail(f"serve did not exit within {deadline_s:.0f} s of SIGTERM")
        return "".join(self.out) + out.decode(), err.decode()


@asynccontextmanager
async def serving(data_dir: Path, cwd: Path, **env_vars: str) -> AsyncIterator[Served]:
    """Run `python -m cli serve` on a free port with a clean JIXIAO_* environment; yields once it
    says it is serving; on exit stops it and checks it exited 0 without a traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIXIAO_")}
    env.update(JIXIAO_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **env_vars)
    for _attempt in range(3):
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "serve", "--port", str(port),
            env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        served = Served(proc, port)
        try:
            ready = await asyncio.wait_for(served.wait_ready(), timeout=READY_DEADLINE_S)
        except TimeoutError:
            out, err = await served.stop()
            pytest.fail(
                f"serve was not ready within {READY_DEADLINE_S:.0f} s\nstdout: {out}\nstderr: {err[-2000:]}"
            )
        if not ready:
            out, err = await served.stop()
            if "address already in use" in err.lower() or "errno 98" in err.lower():
                continue  # the free-port race: someone took the port; try another
            pytest.fail(f"serve exited before it was ready (code {proc.returncode})\nstderr: {err[-2000:]}")
        try:
            yield served
        finally:
            out, err = await served.stop()
            served.out = [out]
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err
        return
    pytest.fail("three free ports were taken before serve could bind them")


def count_projects(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "jixiao.db") as db:
        return int(db.execute("SELECT count(*) FROM project").fetchone()[0])


async def test_serve_runs_on_sqlite_with_the_example_project_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with serving(data, tmp_path) as served, aiohttp.ClientSession() as http:
        async with http.get(f"{served.url}/healthz") as resp:
            assert resp.status == 200, "ready means answering: no polling needed"
        async with http.get(f"{served.url}/") as resp:
            assert resp.status == 200 and "1 个项目" in await resp.text()
    assert served.proc.returncode == 0, "stopped by SIGTERM, exit status 0"
    assert f"http://127.0.0.1:{served.port}" in served.out[0]
    assert count_projects(data) == 1


async def test_serve_with_load_example_false_loads_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with (
        serving(data, tmp_path, JIXIAO_LOAD_EXAMPLE="false") as served,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{served.url}/") as resp:
            assert resp.status == 200 and "0 个项目" in await resp.text()
    assert count_projects(data) == 0, "the database was migrated but no project was loaded"


async def test_the_generated_secret_key_is_made_once_and_keeps_old_report_links_valid_across_restarts(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    secret_file = data / "secret_key"
    async with serving(data, tmp_path) as first, aiohttp.ClientSession() as http:
        secret = secret_file.read_bytes().strip()
        assert len(secret) >= 43, "256 bits, URL-safe base64"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        link = f"/r/{sign_report(secret, EXAMPLE_CODE, datetime.now(UTC) + timedelta(days=14))}"
        async with http.get(first.url + link) as resp:
            assert resp.status == 200
    async with serving(data, tmp_path) as second, aiohttp.ClientSession() as http:
        assert secret_file.read_bytes().strip() == secret, "a restart reuses the secret, never replaces it"
        async with http.get(second.url + link) as resp:
            assert resp.status == 200, "a report link made before the restart still opens"
        forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
        async with http.get(second.url + forged) as resp:
            assert resp.status == 404, "a changed signature does not"


async def test_a_stuck_process_is_reported_not_waited_on_forever(tmp_path: Path) -> None:
    # The helper's own deadline: a child that ignores SIGTERM is killed and the test fails clearly.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('serving on http://127.0.0.1:1', flush=True); time.sleep(600)",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    served = Served(proc, 1)
    assert await asyncio.wait_for(served.wait_ready(), timeout=READY_DEADLINE_S)
    try:
        with pytest.raises(pytest.fail.Exception, match="did not exit within 1 s of SIGTERM"):
            await served.stop(deadline_s=1.0)
    finally:
        with suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode is not None, "killed, not left running"
