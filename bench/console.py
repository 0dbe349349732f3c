"""Benchmark: console page times at 10,000 units and 1,000,000 responses (SQLite by default).

    .venv/bin/python bench/console.py                 # generates bench/out/console.db, then measures
    .venv/bin/python bench/console.py --reuse         # measure again on the generated database

The data is ``bench/recompute.py``'s synthetic project (10,000 units, 1,000,000 current responses;
payments scaled down with ``--payments``, default 100,000 with their confirmations), plus a
launched campaign with one link and one invitation per unit, a score snapshot, and an admin
account. The real app (``bot.app.create_app`` with write + read engines, as ``jixiao serve``)
runs in this process; each page is requested ``--requests`` times in sequence by a logged-in
client on 127.0.0.1 and the server time of each request is taken by a middleware around the
handler (so client and loopback costs are left out). Prints p50 / p95 / max in ms. No assertions:
the figures go in bench/README.md. Besides wall time, the process CPU time of each request is
printed: on a shared machine wall time mostly measures the other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CODE = "bench-large"
PASSWORD = "bench password 123"


async def prepare(url: str) -> None:
    """Campaign + links + invitations, a snapshot, an admin account (idempotent enough for --reuse)."""
    from sqlalchemy import select

    from scheduler.recompute import recompute
    from store.accounts import create_account, find_account, hash_password
    from store.campaigns import create_campaign, launch_campaign
    from store.db import create_engine, make_sessionmaker, transaction
    from store.models import Campaign, Project

    engine = create_engine(url)
    sm = make_sessionmaker(engine)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    async with transaction(sm) as s:
        project = (await s.execute(select(Project).where(Project.code == CODE))).scalar_one()
        has = (await s.execute(select(Campaign.id).where(Campaign.project_id == project.id))).first()
        if has is None:
            c = await create_campaign(s, project.id, name="大规模调查", opens_at=now - timedelta(hours=1),
                                      closes_at=now + timedelta(days=30), now=now)  # fmt: skip
            await launch_campaign(s, c.id, secret=b"bench-secret-0123456789abcdef", now=now)
        if await find_account(s, "bench") is None:
            await create_account(s, name="bench", role="admin", password_hash=hash_password(PASSWORD),
                                 all_projects=True, now=now)  # fmt: skip
    await recompute(sm, CODE, now=now, trigger="bench")
    await engine.dispose()
    print(
        f"prepared campaign (10,000 links + invitations), snapshot, account in {time.perf_counter() - t0:.1f}s"
    )


async def measure(url: str, requests: int) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from sqlalchemy import select

    from bot.app import create_app
    from config.settings import Settings
    from store.db import create_engines, make_sessionmaker
    from store.models import Campaign, Project

    write, read = create_engines(url)
    sm, read_sm = make_sessionmaker(write), make_sessionmaker(read)
    async with sm() as s:
        project = (await s.execute(select(Project).where(Project.code == CODE))).scalar_one()
        campaign_id = (
            await s.execute(select(Campaign.id).where(Campaign.project_id == project.id))
        ).scalar_one()
    times: dict[str, list[float]] = {}

    @web.middleware
    async def timer(request: web.Request, handler: Any) -> web.StreamResponse:
        t, c = time.perf_counter(), time.process_time()
        try:
            return await handler(request)
        finally:
            times.setdefault("", []).append((time.perf_counter() - t) * 1000)
            # CPU of the whole process (event loop + the SQLite thread) during this request: the
            # requests run one at a time, so this is the request's own cost, whatever the load
            times.setdefault("cpu", []).append((time.process_time() - c) * 1000)

    settings = Settings(data_dir=ROOT / "bench" / "out", secret_key="bench-secret-0123456789abcdef",  # type: ignore[arg-type]
                        load_example=False)  # fmt: skip
    app = create_app(settings, sessionmaker=sm, read_sessionmaker=read_sm, start_workers=False, channels={})
    app.middlewares.insert(0, timer)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        page = await client.get("/console/login")
        import re

        csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf is not None
        resp = await client.post("/console/login", data={"csrf": csrf.group(1), "name": "bench", "password": PASSWORD,
                                                         "next": "/console/"}, allow_redirects=False)  # fmt: skip
        assert resp.status == 303, await resp.text()
        base = f"/console/p/{CODE}"
        pages = {
            "project page (23-row table, chart, warnings)": f"{base}",
            "campaign unit table, first page (funnel + 50 rows)": f"{base}/campaigns/{campaign_id}",
            "campaign unit table, page 100 (offset 4,950)": f"{base}/campaigns/{campaign_id}?offset=4950",
            "campaign unit table, search 'u123'": f"{base}/campaigns/{campaign_id}?q=u123",
            "campaign unit table, not answered": f"{base}/campaigns/{campaign_id}?state=not_answered",
            "units page (search, 50 rows)": f"{base}/units?q=单位",
            "payments ledger (all, first page)": f"{base}/payments",
            "payments ledger (all, offset 5,000)": f"{base}/payments?offset=5000",
            "payments ledger (disputed)": f"{base}/payments?state=disputed",
            "payments ledger (confirmed, another amount)": f"{base}/payments?state=amount_differs",
            "coordinator overview": f"{base}/overview",
        }
        for label, path in pages.items():
            times.clear()
            for _ in range(3):  # warm caches and pools
                assert (await client.get(path)).status == 200
            times.clear()
            for _ in range(requests):
                r = await client.get(path)
                assert r.status == 200, (path, r.status)
                await r.read()
            ms, cpu = sorted(times[""]), sorted(times["cpu"])

            def p95(xs: list[float]) -> float:
                return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]

            print(f"{label:52s} wall p50 {statistics.median(ms):6.1f} p95 {p95(ms):6.1f} ms | "
                  f"CPU p50 {statistics.median(cpu):6.1f} p95 {p95(cpu):6.1f} ms  (n={len(ms)})")  # fmt: skip
    finally:
        await client.close()
        await read.dispose()
        await write.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=10_000)
    ap.add_argument("--responses", type=int, default=1_000_000)
    ap.add_argument("--payments", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    path = ROOT / "bench" / "out" / "console.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    if not args.reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "recompute.py"), "--generate", str(args.units),
                        str(args.responses), str(args.payments), "--url", url], check=True, cwd=ROOT)  # fmt: skip
        asyncio.run(prepare(url))
    asyncio.run(measure(url, args.requests))


if __name__ == "__main__":
    main()
