"""A campaign day for N units on a compressed clock; prints numbers (not a test).

    .venv/bin/python -m bench.campaign_day                       # SQLite file, 10,000 units
    .venv/bin/python -m bench.campaign_day --db postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

The example project is loaded and N extra units (each with one disbursement) are added. Then a
simulated day 08:00–20:00 (project timezone) runs through the real code paths: the launch,
answers by 60% of the units spread over the day (``store.answers.submit_response``, one transaction
each, as the unit page does), reminders at 12:00 and 16:00, a recompute every 15 minutes and a
summary every hour — each fire claimed and run by ``scheduler.service.execute_fire`` with the
default job runner, exactly as the scheduler does. The clock is simulated, the work is real.

Reported: wall time of each kind of run, answer throughput, and the latency from the last answer
to a summary that reflects it — simulated (waiting for the next recompute and summary fires) plus
real (one recompute + summary at this size).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from config.loader import load_definition
from scheduler.service import JobDeps, default_runner, execute_fire
from store.answers import submit_response
from store.campaigns import create_campaign
from store.db import create_engine, make_sessionmaker, transaction
from store.models import Disbursement, Link, Unit, metadata
from store.projects import load_project
from store.schedules import create_schedule
from store.scores import latest_snapshot

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "projects" / "urumqi-ip-2023"
CODE = "urumqi-ip-2023"
TZ = ZoneInfo("Asia/Shanghai")
SECRET = b"bench-secret-0123456789abcdef-0123456789"


async def main(db_url: str | None, units: int, share: float, seed: int) -> None:
    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory()
    if db_url is None:
        db_url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}"

    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    sm = make_sessionmaker(engine)
    day = datetime(2026, 3, 2, 8, 0, tzinfo=TZ)
    now = day.astimezone(UTC)
    timings: dict[str, list[float]] = {}

    def record(name: str, started: float) -> float:
        took = time.perf_counter() - started
        timings.setdefault(name, []).append(took)
        return took

    async with transaction(sm) as session:
        project = (await load_project(session, load_definition(EXAMPLE), now=now, by="bench")).project
    pid = project.id
    async with transaction(sm) as session:
        rows = [
            {"project_id": pid, "key": f"bench-{i:05d}", "name": f"基准测试单位{i:05d}（示例）", "channel_kind": "console",
             "channel_address": f"bench-{i:05d}", "channel_config": {}, "active": True, "created_at": now, "updated_at": now}
            for i in range(units)
        ]  # fmt: skip
        await session.execute(insert(Unit), rows)
        ids = list(
            (
                await session.execute(select(Unit.id).where(Unit.key.like("bench-%")).order_by(Unit.id))
            ).scalars()
        )
        await session.execute(
            insert(Disbursement),
            [{"project_id": pid, "unit_id": uid, "key": f"bench/{uid}", "batch": "bench", "amount_fen": 100_000,
              "paid_on": day.date(), "voucher": "", "created_at": now, "updated_at": now} for uid in ids],
        )  # fmt: skip
        campaign = await create_campaign(
            session, pid, name="基准测试", opens_at=now - timedelta(hours=1), closes_at=now + timedelta(days=7),
            policy={"min_days_between": 0, "max_reminders": 3, "quiet_hours": ["22:00", "08:00"]}, now=now,
        )  # fmt: skip
        schedules = {}
        for kind, cron in (("launch", "0 8 * * *"), ("remind", "0 12,16 * * *"), ("recompute", "*/15 * * * *"), ("summarise", "0 * * * *")):  # fmt: skip
            row = await create_schedule(
                session, kind=kind, project=CODE, cron=cron, by="bench", now=now - timedelta(minutes=1),
                campaign_id=campaign.id if kind in ("launch", "remind") else None,
                params={"endpoints": [{"kind": "console", "address": "coordinators"}]} if kind == "summarise" else None,
            )  # fmt: skip
            schedules[kind] = row.id

    clock_now = [now]
    deps = JobDeps(secret=SECRET, public_url="https://jx.example.cn")
    runner = default_runner(sm, deps)

    async def fire(kind: str, at: datetime) -> float:
        clock_now[0] = at
        started = time.perf_counter()
        _, status = await execute_fire(sm, runner, schedules[kind], at, clock=lambda: clock_now[0])
        assert status == "ok", (kind, status)
        return record(kind, started)

    total_units = units + 121
    await fire("launch", now)
    async with sm() as session:
        links = list((await session.execute(select(Link).where(Link.campaign_id == campaign.id))).scalars())
    print(f"units {total_units:,} on {engine.url.get_backend_name()}; launch {timings['launch'][0]:.2f} s")

    # Answers spread over 08:00–20:00.
    answering = rng.sample(links, int(len(links) * share))
    answer_times = sorted(now + timedelta(seconds=rng.uniform(0, 12 * 3600)) for _ in answering)
    events: list[tuple[datetime, str, Link | None]] = [
        (t, "answer", link) for t, link in zip(answer_times, answering, strict=True)
    ]
    for minute in range(0, 12 * 60 + 1, 15):
        at = now + timedelta(minutes=minute)
        if minute:
            events.append((at, "recompute", None))
        if minute % 60 == 0 and minute:
            events.append((at, "summarise", None))
        if minute in (4 * 60, 8 * 60):
            events.append((at, "remind", None))
    # Fires after the last answer are run below, timed, as the "reflect the last answer" pipeline.
    events = [e for e in events if e[1] == "answer" or e[0] <= answer_times[-1]]
    order = {"answer": 0, "remind": 1, "recompute": 2, "summarise": 3}
    events.sort(key=lambda e: (e[0], order[e[1]]))
    answer_lat: list[float] = []
    last_answer_at = None
    for at, kind, link in events:
        if kind == "answer":
            assert link is not None
            started = time.perf_counter()
            async with transaction(sm) as session:
                fresh = await session.get(Link, link.id)
                await submit_response(
                    session, fresh, answers={"guide": "比较满意", "review": "非常满意", "funds": "一般",  # type: ignore[arg-type]
                                             "overall": rng.choice(["非常满意", "比较满意", "一般"])},
                    submission_key=uuid.uuid4().hex, now=at,
                )  # fmt: skip
            answer_lat.append(time.perf_counter() - started)
            last_answer_at = at
        else:
            await fire(kind, at)

    # After the last answer: the next recompute fire, then the next summary fire, reflect it.
    assert last_answer_at is not None
    next_recompute = last_answer_at.replace(second=0, microsecond=0) + timedelta(
        minutes=15 - last_answer_at.minute % 15
    )
    next_summary = (
        next_recompute.replace(minute=0) + timedelta(hours=1) if next_recompute.minute else next_recompute
    )
    started = time.perf_counter()
    await fire("recompute", next_recompute)
    await fire("summarise", next_summary)
    pipeline = time.perf_counter() - started
    from store.models import OutboxMessage

    async with sm() as session:
        payload = (
            await session.execute(
                select(OutboxMessage.payload)
                .where(OutboxMessage.kind == "summary")
                .order_by(OutboxMessage.id.desc())
                .limit(1)
            )
        ).scalar_one()
    async with sm() as session:
        latest = await latest_snapshot(session, pid)
    reflected = (
        latest is not None
        and payload.get("snapshot_id") == latest.id
        and latest.computed_at == next_recompute
    )

    def stats(name: str) -> str:
        xs = timings.get(name, [])
        return f"n={len(xs)} median {statistics.median(xs):.3f} s max {max(xs):.3f} s" if xs else "n=0"

    print(f"answers {len(answering):,}: median {statistics.median(answer_lat) * 1000:.1f} ms, "
          f"p95 {sorted(answer_lat)[int(len(answer_lat) * 0.95)] * 1000:.1f} ms per submit "
          f"({len(answer_lat) / sum(answer_lat):.0f}/s sequential)")  # fmt: skip
    for name in ("remind", "recompute", "summarise"):
        print(f"{name:<10} {stats(name)}")
    print(f"last answer {last_answer_at.astimezone(TZ):%H:%M:%S} → summary fire {next_summary.astimezone(TZ):%H:%M} "
          f"(simulated wait {(next_summary - last_answer_at).total_seconds() / 60:.1f} min with recompute */15 and summary hourly) "
          f"+ real recompute+summary {pipeline:.2f} s; summary reflects the last answer: {reflected}")  # fmt: skip
    await engine.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db",
        help="database URL (default: a fresh SQLite file); PostgreSQL: its tables are dropped and recreated",
    )
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.6, help="share of units that answer")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.db, args.units, args.share, args.seed))
