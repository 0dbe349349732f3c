"""Fan-out benchmark: N invitations through the real delivery worker and store to a fake vendor.

The fake (a separate process, so its memory does not count) answers every request after
``--latency`` seconds and enforces ``--limit`` requests per ``--window`` seconds per endpoint with a
sliding window, answering 429 + Retry-After beyond it (and counting those as "over the limit").
``--scale`` multiplies both the limit count and the window, keeping the allowed rate: the
default 0.1 turns "600 per minute" into "60 per 6 s" so the limiter is exercised over many
windows in under a minute. Prints numbers; asserts nothing.

What it prints (bench/README.md, "Fan-out: what the lock-order change cost…", has the detail):
"% of allowed rate" is messages ÷ the time from the moment every worker is ready until every row
is finished, ÷ the vendor's allowed rate — a backlog's delivery time, first window's burst, cold
start and last partial window included (a perfect sender within our 97 % budget makes ≈ 100 % at
10,000 messages, ≈ 103 % at 4,000). "steady state" counts the vendor's arrivals between the end
of the first window and the last full one (ceiling: our budget, 96.7 % of allowed). "late at the
window edge" and "back to back" say where the time between an endpoint's requests goes. CPU per
message is the workers' and, on PostgreSQL, the database backends' they used.

    .venv/bin/python -m bench.fanout                       # SQLite file, 10,000 messages
    .venv/bin/python -m bench.fanout --db postgresql+asyncpg://postgres@127.0.0.1:5432/test
    .venv/bin/python -m bench.fanout --db postgresql+asyncpg://… --replicas 3

``--replicas N`` (PostgreSQL) runs N delivery workers in N separate processes on the same
database, as N ``jixiao serve`` replicas would, each with the limiter ``bot.outbox.limiter_for``
gives it (shared through the database); ``--no-shared-limiter`` gives each its own in-process
limiter instead, to show what the shared one prevents.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.channels.base import RateSpec
from bot.channels.message import Link, Message, Text
from bot.channels.webhook import WebhookAdapter
from bot.outbox import DeliveryWorker, limiter_for, message_to_payload
from store import outbox as store
from store.db import create_engine, make_sessionmaker, transaction
from store.models import metadata


# ----------------------------------------------------------------------------- the fake vendor
def _serve_fake(port_q: mp.Queue, limit: int, window: float, latency: float) -> None:
    hits: dict[str, deque[float]] = {}
    accepted: dict[str, list[float]] = {}  # every accepted request's arrival (time.monotonic)
    keys: Counter[str] = Counter()
    stats = {"received": 0, "over_limit": 0}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        stats["received"] += 1
        now = time.monotonic()
        log = hits.setdefault(request.match_info["name"], deque())
        while log and log[0] <= now - window:
            log.popleft()
        if len(log) >= limit:
            stats["over_limit"] += 1
            retry = max(1, math.ceil(log[0] + window - now))
            return web.json_response(
                {"ok": False, "error": "slow down"}, status=429, headers={"Retry-After": str(retry)}
            )
        log.append(now)
        accepted.setdefault(request.match_info["name"], []).append(now)
        keys[body.get("dedupe_key", "")] += 1
        await asyncio.sleep(latency)
        return web.json_response({"ok": True, "id": str(stats["received"])})

    async def report(_: web.Request) -> web.Response:
        return web.json_response(
            {**stats, "unique": len(keys), "duplicates": sum(n - 1 for n in keys.values())}
        )

    async def times(_: web.Request) -> web.Response:
        return web.json_response(accepted)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hooks/{name}", hook)
        app.router.add_get("/_stats", report)
        app.router.add_get("/_times", times)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_q.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_s() -> float:
    """CPU seconds (user + system) this process has used: comparable across runs under load."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: ``application_name`` of the bench's own connections (left out of the database CPU).
BENCH_APP = "fanout-bench"


async def pg_backend_cpu(sm) -> dict[int, float]:
    """CPU seconds (user + system) of every PostgreSQL backend the workers use on the bench's
    database, by pid, read from /proc (the server runs on this machine; empty otherwise). The
    database's share of the work per message is as much part of the cost as the worker's."""
    from sqlalchemy import text

    async with transaction(sm) as s:
        pids = list(
            (
                await s.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name <> :bench"
                    ),
                    {"bench": BENCH_APP},
                )
            ).scalars()
        )
    return _proc_cpu(pids)


def _proc_cpu(pids: list[int]) -> dict[int, float]:
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def pg_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends used between two :func:`pg_backend_cpu` readings (backends that
    started in between count from zero; one that ended in between is missed)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timeline(
    accepted: dict[str, list[float]],
    *,
    started: float,
    budget: int,
    window: float,
    allowed_rate: float,
    latency: float,
) -> list[str]:
    """What the vendor saw, as lines to print (times are the fake's arrival times, ``time.monotonic``
    like ``started``, so they share one clock).

    - **steady state**: requests accepted in ``[started + window, started + m·window)``, where
      ``m·window`` is the last window boundary before the first endpoint ran out of messages —
      the first window (a sliding log lets each endpoint's first ``budget`` requests go at once,
      a burst no steady sender gets) and the last, partial one are left out. Its ceiling is our
      budget, ``budget / limit`` of the allowed rate (58/60 = 96.7 %), not 100 %.
    - **late at the window edge**: per endpoint, request ``k`` may go once request ``k − budget``
      has left the window; how much later than that it arrived (median, mean, p90), i.e. what a
      window edge costs (waking up, the attempt start's transaction, the request's trip).
    - **back to back**: the gap between two requests of an endpoint sent without waiting for the
      window (the vendor's latency plus our per-send overhead; one request at a time per endpoint).
    """
    if not accepted:
        return []
    if os.environ.get("FANOUT_TIMES"):  # for a closer look: {"started": t, "accepted": {endpoint: [t, …]}}
        import json

        Path(os.environ["FANOUT_TIMES"]).write_text(json.dumps({"started": started, "accepted": accepted}))
    series = [sorted(ts) for ts in accepted.values() if ts]
    first_done = min(ts[-1] for ts in series)
    m = math.floor((first_done - started) / window)
    lines = []
    if m >= 2:
        lo, hi = started + window, started + m * window
        n = sum(1 for ts in series for t in ts if lo <= t < hi)
        rate = n / (hi - lo)
        lines.append(
            f"steady state (vendor side, windows 2..{m} = {lo - started:.0f}..{hi - started:.0f} s, "
            f"first burst and last partial window left out): {rate:.1f}/s = "
            f"{100 * rate / allowed_rate:.1f}% of allowed (ceiling {100 * budget * len(series) / window / allowed_rate:.1f}% "
            f"= our budget) = {100 * rate * window / (budget * len(series)):.1f}% of our budget"
        )
    late, gaps = [], []
    for ts in series:
        for k in range(1, len(ts)):
            if k >= budget and ts[k - budget] + window >= ts[k - 1] + latency:
                late.append(ts[k] - (ts[k - budget] + window))  # waited for the window
            else:
                gaps.append(ts[k] - ts[k - 1])

    def summary(xs: list[float]) -> str:
        if not xs:
            return "-"
        xs = sorted(xs)
        return (
            f"median {1000 * xs[len(xs) // 2]:.0f} ms, mean {1000 * sum(xs) / len(xs):.0f} ms, "
            f"p90 {1000 * xs[int(0.9 * (len(xs) - 1))]:.0f} ms (n={len(xs)})"
        )

    lines.append(f"late at the window edge: {summary(late)}; back to back: {summary(gaps)}")
    lines.append(
        f"vendor: first request {min(ts[0] for ts in series) - started:.2f} s after the start, "
        f"last {max(ts[-1] for ts in series) - started:.2f} s"
    )
    return lines


# ----------------------------------------------------------------------------- replicas
def _replica(url: str, budget: int, window: float, index: int, opts: dict, go, stop, stats_q) -> None:
    """One replica process: its own engine, worker and limiter, until ``stop`` is set."""

    async def main() -> None:
        from bot.ratelimit import RateLimiter

        class BenchWebhook(WebhookAdapter):
            limits = (RateSpec(budget, window),)

        engine = create_engine(url)
        sm = make_sessionmaker(engine)
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as http:
            worker = DeliveryWorker(
                sm,
                {"webhook": BenchWebhook()},
                http,
                concurrency=opts["concurrency"],
                max_held=opts["max_held"],
                per_endpoint_hold=opts["per_endpoint_hold"],
                max_hold_s=opts["max_hold"],
                poll_s=0.05,
                worker_id=f"replica-{index}-{uuid.uuid4().hex[:6]}",
                limiter=limiter_for(sm) if opts["shared"] else RateLimiter(),
            )
            async with engine.connect():
                pass  # connected before the clock starts
            stats_q.put("ready")
            await asyncio.to_thread(go.wait)  # every replica starts at once, after its start-up
            cpu0 = _cpu_s()
            worker.start()
            await asyncio.to_thread(stop.wait)  # the parent sets it once everything is delivered
            await worker.stop(5)
            stats_q.put(
                {
                    **worker.stats,
                    "cpu_s": round(_cpu_s() - cpu0, 2),
                    "limiter": dict(getattr(worker.limiter, "stats", {})),
                }
            )
        await engine.dispose()

    asyncio.run(main())


async def run_replicas(
    args: argparse.Namespace,
    sm,
    url: str,
    base: str,
    limit: int,
    window: float,
    budget: int,
    enqueue_s: float,
) -> None:
    ctx = mp.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    stats_q: mp.Queue = ctx.Queue()
    opts = {
        "concurrency": args.concurrency,
        "max_held": args.max_held,
        "per_endpoint_hold": args.per_endpoint_hold,
        "max_hold": args.max_hold,
        "shared": not args.no_shared_limiter,
    }
    procs = [
        ctx.Process(target=_replica, args=(url, budget, window, i, opts, go, stop, stats_q), daemon=True)
        for i in range(args.replicas)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:  # process start-up (imports, connections) is not part of the measurement
        assert stats_q.get(timeout=300) == "ready"
    pg0 = await pg_backend_cpu(sm)
    started = time.monotonic()
    go.set()
    while True:
        await asyncio.sleep(0.2)
        async with transaction(sm) as s:
            db_stats = await store.outbox_stats(s)
        if db_stats["sent"] + db_stats["failed"] + db_stats["dead"] >= args.messages:
            break
        if time.monotonic() - started > args.timeout:
            print("timeout!", db_stats)
            break
    elapsed = time.monotonic() - started
    pg_cpu = pg_cpu_delta(pg0, await pg_backend_cpu(sm))
    stop.set()
    stats = [stats_q.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/_stats") as resp:
            fake_stats = await resp.json()
        async with http.get(f"{base}/_times") as resp:
            accepted = await resp.json()
    allowed_rate = args.endpoints * limit / window
    achieved = db_stats["sent"] / elapsed
    print(
        f"replicas={args.replicas} ({'shared limiter in PostgreSQL' if opts['shared'] else 'one limiter per process'})  "
        f"messages={args.messages}  endpoints={args.endpoints}  vendor limit={limit}/{window:g}s per endpoint  "
        f"our budget={budget}/{window:g}s  latency={args.latency * 1000:.0f} ms"
    )
    print(f"enqueue: {enqueue_s:.1f} s")
    print(
        f"delivered: {db_stats['sent']} in {elapsed:.1f} s (from the moment every replica was ready) = {achieved:.1f}/s; "
        f"allowed {allowed_rate:.1f}/s -> {100 * achieved / allowed_rate:.1f}% of allowed rate"
    )
    print(
        f"vendor: received={fake_stats['received']} unique={fake_stats['unique']} "
        f"over_limit={fake_stats['over_limit']} duplicates={fake_stats['duplicates']}"
    )
    for line in timeline(
        accepted,
        started=started,
        budget=budget,
        window=window,
        allowed_rate=allowed_rate,
        latency=args.latency,
    ):
        print(line)
    print(f"lost (enqueued - unique delivered): {args.messages - fake_stats['unique']}; db: {db_stats}")
    for i, st in enumerate(stats):
        print(f"replica {i}: {st}")
    cpu = sum(st["cpu_s"] for st in stats)
    sent = max(1, db_stats["sent"])
    print(
        f"worker CPU: {cpu:.1f} s in {len(stats)} processes = {1000 * cpu / sent:.2f} ms per message; "
        f"PostgreSQL backends: {pg_cpu:.1f} s = {1000 * pg_cpu / sent:.2f} ms per message"
    )
    reserves = sum(st["limiter"].get("reserve_statements", 0) for st in stats)
    ahead = sum(st["limiter"].get("ahead_statements", 0) for st in stats)
    settles = sum(st["limiter"].get("settle_statements", 0) for st in stats)
    requests = sum(st["requests"] for st in stats)
    if requests and opts["shared"]:
        print(
            f"limiter statements per request: {reserves / requests:.3f} on its path (booking when no "
            f"slot was waiting), {ahead / requests:.3f} booking ahead + {settles / requests:.3f} "
            f"corrections in the background ({reserves + ahead + settles} for {requests} requests)"
        )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


# ----------------------------------------------------------------------------- the run
async def run(args: argparse.Namespace) -> None:
    limit = max(1, round(args.limit * args.scale))
    window = args.window * args.scale
    budget = max(1, math.floor(limit * args.budget))

    ctx = mp.get_context("spawn")
    port_q: mp.Queue = ctx.Queue()
    fake = ctx.Process(target=_serve_fake, args=(port_q, limit, window, args.latency), daemon=True)
    fake.start()
    base = f"http://127.0.0.1:{port_q.get(timeout=30)}"

    tmp = tempfile.TemporaryDirectory()
    pg_db = None
    if args.db == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp.name}/fanout.db"
    else:
        from tests.conftest import create_pg_database, drop_pg_database

        os.environ.setdefault("JIXIAO_TEST_PG_URL", args.db)
        import tests.conftest as tc

        tc.PG_URL = args.db
        url = pg_db = await create_pg_database()
    # With replicas the bench's own connections (enqueue, progress polls) are named so that the
    # database CPU per message counts the workers' backends only (one process: the worker uses
    # this engine, and the bench makes no query while it runs).
    named = {"connect_args": {"server_settings": {"application_name": BENCH_APP}}}
    engine = create_engine(url, **(named if pg_db and args.replicas > 1 else {}))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sm = make_sessionmaker(engine)

    class BenchWebhook(WebhookAdapter):
        limits = (RateSpec(budget, window),)

    t0 = time.monotonic()
    async with transaction(sm) as s:
        eps = []
        for i in range(args.endpoints):
            ep = await store.ensure_endpoint(s, "webhook", f"{base}/hooks/ep{i}", name=f"ep{i}")
            eps.append(ep.id)
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    for start in range(0, args.messages, 1000):
        batch = [
            store.NewMessage(
                dedupe_key=f"invite:bench:{i}",
                endpoint_id=eps[i % len(eps)],
                kind="invite",
                payload=message_to_payload(
                    Message(
                        f"【邀请】满意度调查 #{i}",
                        (Text("请通过下方专属链接填写问卷。"),),
                        Link("https://jx.example/l/x", "打开"),
                    )
                ),
            )
            for i in range(start, min(args.messages, start + 1000))
        ]
        async with transaction(sm) as s:
            if args.enqueue_one_by_one:
                for m in batch:
                    await store.enqueue(
                        s,
                        dedupe_key=m.dedupe_key,
                        endpoint_id=m.endpoint_id,
                        kind=m.kind,
                        payload=m.payload,
                        now=now,
                    )
            else:
                await store.enqueue_many(s, batch, now=now)
    enqueue_s = time.monotonic() - t0

    if args.replicas > 1:
        try:
            await run_replicas(args, sm, url, base, limit, window, budget, enqueue_s)
        finally:
            await engine.dispose()
            if pg_db:
                await drop_pg_database(pg_db)
            fake.terminate()
            tmp.cleanup()
        return

    rss = {"start": rss_mib()}
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as http:
        worker = DeliveryWorker(
            sm,
            {"webhook": BenchWebhook()},
            http,
            concurrency=args.concurrency,
            max_held=args.max_held,
            per_endpoint_hold=args.per_endpoint_hold,
            max_hold_s=args.max_hold,
            poll_s=0.05,
            worker_id=f"bench-{uuid.uuid4().hex[:6]}",
            limiter=limiter_for(sm) if args.shared_limiter else None,
        )
        pg0 = await pg_backend_cpu(sm) if pg_db else {}
        started = time.monotonic()
        cpu0 = _cpu_s()
        worker.start()
        done_states = ("sent", "failed", "dead")
        while True:
            await asyncio.sleep(0.2)
            finished = sum(worker.stats[k] for k in done_states)
            if "middle" not in rss and worker.stats["sent"] >= args.messages // 2:
                rss["middle"] = rss_mib()
            if finished >= args.messages:
                break
            if time.monotonic() - started > args.timeout:
                print("timeout!", worker.stats)
                break
        elapsed = time.monotonic() - started
        cpu = _cpu_s() - cpu0
        pg_cpu = pg_cpu_delta(pg0, await pg_backend_cpu(sm)) if pg_db else 0.0
        rss["end"] = rss_mib()
        await worker.stop(5)
        async with http.get(f"{base}/_stats") as resp:
            fake_stats = await resp.json()
        async with http.get(f"{base}/_times") as resp:
            accepted = await resp.json()
    async with transaction(sm) as s:
        db_stats = await store.outbox_stats(s)
    await engine.dispose()
    if pg_db:
        await drop_pg_database(pg_db)
    fake.terminate()
    tmp.cleanup()

    allowed_rate = args.endpoints * limit / window
    achieved = worker.stats["sent"] / elapsed
    per_ep = math.ceil(args.messages / args.endpoints)
    # A sliding window lets the first full window go at once: the best possible finish time.
    ideal_s = window * (math.ceil(per_ep / limit) - 1)
    print(
        f"db={args.db.split(':')[0]}  messages={args.messages}  endpoints={args.endpoints}  "
        f"vendor limit={limit}/{window:g}s per endpoint (= {args.limit}/{args.window:g}s x {args.scale:g})  "
        f"our budget={budget}/{window:g}s  latency={args.latency * 1000:.0f} ms  concurrency={args.concurrency}"
    )
    how = "one enqueue() per row" if args.enqueue_one_by_one else "enqueue_many, 500-row INSERTs"
    print(f"enqueue: {enqueue_s:.1f} s ({how}, 1,000 rows per transaction)")
    print(
        f"delivered: {worker.stats['sent']} in {elapsed:.1f} s = {achieved:.1f}/s; allowed {allowed_rate:.1f}/s "
        f"-> {100 * achieved / allowed_rate:.1f}% of allowed rate; ideal finish {ideal_s:.1f} s "
        f"-> {100 * ideal_s / elapsed:.1f}% of ideal"
    )
    print(
        f"vendor: received={fake_stats['received']} unique={fake_stats['unique']} "
        f"over_limit={fake_stats['over_limit']} duplicates={fake_stats['duplicates']}"
    )
    for line in timeline(
        accepted,
        started=started,
        budget=budget,
        window=window,
        allowed_rate=allowed_rate,
        latency=args.latency,
    ):
        print(line)
    print(f"lost (enqueued - unique delivered): {args.messages - fake_stats['unique']}; db: {db_stats}")
    print(f"worker: {worker.stats}")
    sent = max(1, worker.stats["sent"])
    print(
        f"worker CPU: {cpu:.1f} s = {1000 * cpu / sent:.2f} ms per message"
        + (
            f"; PostgreSQL backends: {pg_cpu:.1f} s = {1000 * pg_cpu / sent:.2f} ms per message"
            if pg_db
            else ""
        )
    )
    lstats = getattr(worker.limiter, "stats", None)
    if lstats and worker.stats["requests"]:
        n = worker.stats["requests"]
        print(
            f"limiter (shared) statements per request: {lstats['reserve_statements'] / n:.3f} on its path, "
            f"{lstats['ahead_statements'] / n:.3f} booking ahead + {lstats['settle_statements'] / n:.3f} "
            f"corrections in the background; {lstats}"
        )
    print(
        f"RSS MiB: start={rss['start']:.1f} middle={rss.get('middle', float('nan')):.1f} end={rss['end']:.1f}"
    )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--endpoints", type=int, default=20)
    p.add_argument("--limit", type=int, default=600, help="vendor cap per endpoint per window")
    p.add_argument("--window", type=float, default=60.0, help="vendor window, seconds")
    p.add_argument("--scale", type=float, default=0.1, help="multiply limit and window (keeps the rate)")
    p.add_argument("--budget", type=float, default=0.97, help="our limiter budget as a share of the cap")
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--max-held", type=int, default=400)
    p.add_argument("--per-endpoint-hold", type=int, default=30)
    p.add_argument("--max-hold", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument(
        "--enqueue-one-by-one", action="store_true", help="store.outbox.enqueue per row (the old way)"
    )
    p.add_argument(
        "--db", default="sqlite", help="'sqlite' (temp file) or a postgresql+asyncpg:// server URL"
    )
    p.add_argument(
        "--replicas", type=int, default=1, help="delivery workers in separate processes (PostgreSQL)"
    )
    p.add_argument(
        "--no-shared-limiter", action="store_true", help="with --replicas: one limiter per process"
    )
    p.add_argument(
        "--shared-limiter",
        action="store_true",
        help="one process (PostgreSQL): the limiter shared through the database, as replicas use it",
    )
    args = p.parse_args()
    if args.replicas > 1 and args.db == "sqlite":
        p.error("--replicas needs --db postgresql+asyncpg://… (replicas share one PostgreSQL database)")
    if os.environ.get("FANOUT_PROFILE"):
        import cProfile

        cProfile.runctx(
            "asyncio.run(run(args))", globals(), {"args": args, "run": run}, os.environ["FANOUT_PROFILE"]
        )
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
