"""Benchmark: full recompute (load facts + score) of a large project vs one SQL GROUP BY floor.

    .venv/bin/python bench/recompute.py                       # SQLite file in bench/out/
    .venv/bin/python bench/recompute.py --pg postgresql+asyncpg://postgres@127.0.0.1:5432/test

Builds a synthetic project of 10,000 units, 1,000,000 responses (all current: a mass survey with
many respondents per unit, the heaviest case for the satisfaction aggregate), 1,000,000
disbursements and 1,000,000 payment confirmations (one per disbursement, 3% disputed, 1% with a
different amount). Then, in a fresh child process each (so peak memory is the operation's own):
1. the floor: the same aggregates computed by one SQL statement (GROUP BYs joined by UNION ALL);
2. a full recompute through ``scheduler.recompute.recompute`` (facts via SQL aggregates, scoring
   off the event loop, snapshot written).
Prints seconds (best of ``--repeat``) and peak RSS. No assertions: the figures go in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CODE = "bench-large"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
SCALE = ("非常满意", "比较满意", "一般", "不太满意", "非常不满意")


def definition(units: int, budget_fen: int) -> dict:
    """A definition dict (file form is not needed: the models validate it directly)."""
    from config.definition import ProjectDefinition

    inds = [
        (
            "arr",
            "过程",
            "资金管理",
            "资金到位率",
            20,
            {"type": "proportional"},
            {"op": ">=", "number": "1"},
            "funds.arrival_rate",
        ),
        (
            "exe",
            "过程",
            "资金管理",
            "预算执行率",
            20,
            {"type": "proportional"},
            {"op": ">=", "number": "1"},
            "funds.execution_rate",
        ),
        (
            "ctl",
            "产出",
            "产出成本",
            "预算控制率",
            20,
            {"type": "reverse"},
            {"op": "<=", "number": "1"},
            "funds.control_rate",
        ),
        (
            "tim",
            "产出",
            "产出时效",
            "资金使用完毕时间",
            20,
            {"type": "timeliness"},
            {"op": "<=", "day": "2025-12-31"},
            "funds.completion_date",
        ),
        (
            "sat",
            "满意度",
            "满意度",
            "满意度",
            20,
            {"type": "satisfaction"},
            {"op": ">=", "number": "0.9"},
            "survey.satisfaction",
        ),
    ]
    data = {
        "project": {
            "code": CODE,
            "name": "大规模基准项目",
            "year": 2025,
            "period_start": "2025-01-01",
            "period_end": "2025-12-31",
        },
        "budget_fen": budget_fen,
        "arrivals": [{"date": "2025-01-10", "amount_fen": budget_fen, "note": ""}],
        "units": [{"key": f"u{i}", "name": f"单位{i}"} for i in range(units)],
        "questionnaire": {
            "title": "满意度",
            "satisfaction_question": "overall",
            "questions": [{"key": "overall", "text": "总体满意度", "kind": "scale"}],
        },
        "indicators": [
            {
                "key": k,
                "level1": l1,
                "level2": l2,
                "name": n,
                "weight": w,
                "rule": r,
                "target": t,
                "source": s,
            }
            for k, l1, l2, n, w, r, t, s in inds
        ],
    }
    return ProjectDefinition.model_validate(data)


async def generate(url: str, units: int, responses: int, payments: int) -> None:
    from sqlalchemy import text

    from store.db import create_engine, make_sessionmaker, transaction
    from store.migrate import upgrade
    from store.projects import load_project

    rnd = random.Random(7)
    amounts = [rnd.randrange(100_00, 10_000_00) for _ in range(payments)]
    budget = sum(amounts)
    engine = create_engine(url)
    await upgrade(engine)
    sm = make_sessionmaker(engine)
    t0 = time.perf_counter()
    async with transaction(sm) as s:
        result = await load_project(s, definition(units, budget), now=NOW)
        pid = result.project.id
        unit_ids = [
            r[0]
            for r in (
                await s.execute(text("SELECT id FROM unit WHERE project_id=:p ORDER BY id"), {"p": pid})
            )
        ]
    days = [date(2025, 1, 15) + timedelta(days=i) for i in range(300)]
    disb = [
        (pid, unit_ids[i % units], f"b{i}", "B1", amounts[i], days[i % 300], "", NOW, NOW)
        for i in range(payments)
    ]
    sat_weights = (60, 30, 6, 3, 1)
    labels = rnd.choices(SCALE, weights=sat_weights, k=responses)
    resp = [(pid, unit_ids[i % units], 1, True, "import", f"r{i}", labels[i], NOW) for i in range(responses)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.copy_records_to_table(
                "disbursement",
                records=disb,
                columns=[
                    "project_id",
                    "unit_id",
                    "key",
                    "batch",
                    "amount_fen",
                    "paid_on",
                    "voucher",
                    "created_at",
                    "updated_at",
                ],
            )
            await driver.copy_records_to_table(
                "response",
                records=resp,
                columns=[
                    "project_id",
                    "unit_id",
                    "version",
                    "is_current",
                    "source",
                    "submission_key",
                    "satisfaction",
                    "submitted_at",
                ],
            )
        else:
            await conn.exec_driver_sql(
                "INSERT INTO disbursement (project_id, unit_id, key, batch, amount_fen, paid_on, voucher, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (a, b, c, d, e, f.isoformat(), g, h.isoformat(), i.isoformat())
                    for a, b, c, d, e, f, g, h, i in disb
                ],
            )
            await conn.exec_driver_sql(
                "INSERT INTO response (project_id, unit_id, version, is_current, source, submission_key, satisfaction, submitted_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [(a, b, c, int(d), e, f, g, h.isoformat()) for a, b, c, d, e, f, g, h in resp],
            )
        rows = await conn.execute(
            text("SELECT id, unit_id, amount_fen FROM disbursement WHERE project_id=:p ORDER BY id"),
            {"p": pid},
        )
        conf = []
        for n, (did, uid, amt) in enumerate(rows):
            roll = n % 100
            if roll < 3:
                conf.append(
                    (
                        pid,
                        did,
                        uid,
                        1,
                        True,
                        "disputed",
                        None,
                        None,
                        amt,
                        "",
                        "not_received",
                        "",
                        f"c{n}",
                        NOW,
                    )
                )
            else:
                got = amt - 100 if roll == 3 else amt
                conf.append(
                    (
                        pid,
                        did,
                        uid,
                        1,
                        True,
                        "confirmed",
                        days[n % 300],
                        got,
                        amt,
                        "V",
                        None,
                        "",
                        f"c{n}",
                        NOW,
                    )
                )
        cols = [
            "project_id",
            "disbursement_id",
            "unit_id",
            "version",
            "is_current",
            "status",
            "received_on",
            "amount_fen",
            "expected_fen",
            "voucher",
            "dispute_kind",
            "reason",
            "submission_key",
            "submitted_at",
        ]
        if engine.dialect.name == "postgresql":
            await driver.copy_records_to_table("payment_confirmation", records=conf, columns=cols)
            await conn.exec_driver_sql("ANALYZE")
        else:
            await conn.exec_driver_sql(
                f"INSERT INTO payment_confirmation ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [
                    (a, b, c, d, int(e), f, g.isoformat() if g else None, h, x, i, j, k, l_, m.isoformat())
                    for a, b, c, d, e, f, g, h, x, i, j, k, l_, m in conf
                ],
            )
            await conn.exec_driver_sql("ANALYZE")
    await engine.dispose()
    print(
        f"generated {units} units, {responses} responses, {payments} disbursements + {len(conf)} confirmations "
        f"in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )


FLOOR_SQL = """
SELECT 'sat' AS k, satisfaction AS g, count(*) AS n, 0 AS fen FROM response
  WHERE project_id = :p AND is_current GROUP BY satisfaction
UNION ALL
SELECT 'pay', CAST(paid_on AS VARCHAR(10)), count(*), sum(amount_fen) FROM disbursement
  WHERE project_id = :p GROUP BY paid_on
UNION ALL
SELECT 'conf', status, count(*), sum(amount_fen) FROM payment_confirmation
  WHERE project_id = :p AND is_current GROUP BY status
"""


async def measure(url: str, what: str) -> dict:
    from sqlalchemy import text

    from store.db import create_engine, make_sessionmaker
    from store.projects import get_project

    engine = create_engine(url)
    sm = make_sessionmaker(engine)
    async with sm() as s:
        pid = (await get_project(s, CODE)).id
    t0 = time.perf_counter()
    if what == "floor":
        async with sm() as s:
            rows = (await s.execute(text(FLOOR_SQL), {"p": pid})).all()
        seconds = time.perf_counter() - t0
        async with sm() as s:
            sizes = {
                t: await s.scalar(text(f"SELECT count(*) FROM {t}"))
                for t in ("unit", "response", "disbursement", "payment_confirmation")
            }
        await engine.dispose()
        return {
            "what": what,
            "seconds": seconds,
            "peak_rss_mib": peak_rss_mib(),
            "rows": len(rows),
            "sizes": sizes,
        }
    else:
        from scheduler.recompute import recompute

        # Cold: the first recompute in a fresh process also parses the stored definition (cached
        # afterwards, as in the long-running service). Warm: the next one, which is what every
        # scheduled recompute of a running service costs.
        res = await recompute(sm, CODE, now=datetime.now(UTC), trigger="bench", force=True)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = await recompute(sm, CODE, now=datetime.now(UTC), trigger="bench", force=True)
        extra = {"total": str(res.snapshot.total), "grade": res.snapshot.grade, "cold": cold}
    seconds = time.perf_counter() - t0
    await engine.dispose()
    return {"what": what, "seconds": seconds, "peak_rss_mib": peak_rss_mib(), **extra}


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries ru_maxrss over
    exec from the parent, so a child would report the generator's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str, what: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--url", url],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="PostgreSQL URL (a database named jixiao_bench is created on that server)")
    ap.add_argument("--units", type=int, default=10_000)
    ap.add_argument("--responses", type=int, default=1_000_000)
    ap.add_argument("--payments", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="keep an existing generated database")
    ap.add_argument("--measure", choices=("floor", "recompute"), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--generate", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.url, args.measure))))
        return
    if args.generate:
        asyncio.run(generate(args.url, *args.generate))
        return
    if args.pg:
        url = asyncio.run(_fresh_pg(args.pg, keep=args.reuse))
    else:
        path = ROOT / "bench" / "out" / "recompute.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    if not args.reuse:
        # Generated in a child process too, so this parent stays small: measurement children
        # forked from a large parent were seen reporting the parent's peak memory.
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate",
                str(args.units),
                str(args.responses),
                str(args.payments),
                "--url",
                url,
            ],
            check=True,
            cwd=ROOT,
        )
    backend = "postgresql" if args.pg else "sqlite"
    floors = [child(url, "floor") for _ in range(args.repeat)]
    recs = [child(url, "recompute") for _ in range(args.repeat)]
    floor = min(f["seconds"] for f in floors)
    rec = min(r["seconds"] for r in recs)
    sizes = floors[0]["sizes"]
    print(
        f"backend={backend} units={sizes['unit']} responses={sizes['response']} "
        f"disbursements={sizes['disbursement']} confirmations={sizes['payment_confirmation']}"
    )
    print(f"SQL GROUP BY floor : {floor:.3f} s  (peak RSS {max(f['peak_rss_mib'] for f in floors):.0f} MiB)")
    print(
        f"full recompute     : {rec:.3f} s  (peak RSS {max(r['peak_rss_mib'] for r in recs):.0f} MiB)  "
        f"total={recs[0]['total']} grade={recs[0]['grade']}"
    )
    cold = min(r["cold"] for r in recs)
    print(
        f"  (first recompute in a fresh process, definition parsed: {cold:.3f} s = {cold / floor:.2f}x floor)"
    )
    print(f"ratio recompute/floor: {rec / floor:.2f}x  (aim ≤ 3x, < 1024 MiB)")


async def _fresh_pg(server_url: str, keep: bool) -> str:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        if not keep:
            await conn.execute('DROP DATABASE IF EXISTS "jixiao_bench" WITH (FORCE)')
            await conn.execute('CREATE DATABASE "jixiao_bench"')
    finally:
        await conn.close()
    return url.set(database="jixiao_bench").render_as_string(hide_password=False)


if __name__ == "__main__":
    main()
