"""Link submissions per second: jixiao's unit page vs a minimal handler vs a bare static handler.

One "submission" = GET the personal link page + POST the questionnaire answers (committed; the
POST answers 303); with ``--prg`` also the GET of the 303's target (jixiao's thank-you state), as
a browser does. The load generator is ``wrk`` with a Lua script (closed loop, ``c`` connections
on 2 threads) when installed, else an aiohttp client in a separate process. Each target server runs
in its own process on 127.0.0.1, so generator and server share the machine's cores (as in
``/work/shared/reference/peer-bench.md``). Prints numbers; asserts nothing.

Targets (same generator, same run):

- ``bare``: aiohttp returning a static page for GET and a 303 for POST (no state);
- ``minimal-sqlite`` / ``minimal-pg``: hand-written aiohttp + aiosqlite/asyncpg: token hash lookup,
  HMAC form token check, one INSERT, one guarded UPDATE, commit;
- ``jixiao-sqlite`` / ``jixiao-pg``: the real app (``bot.app.create_app``) on the example project.

Usage::

    .venv/bin/python bench/submit.py [--seconds 7] [--conc 1,8,32,64] [--pg URL | --no-pg] [--prg]

PostgreSQL: ``--pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`` (a scratch database
``jixiao_bench`` is created and dropped there).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SECRET = b"bench-secret-0123456789abcdef0123"
ANSWERS = {
    "q_guide": "非常满意",
    "q_review": "比较满意",
    "q_funds": "非常满意",
    "q_overall": "非常满意",
    "q_suggestion": "建议简化申报材料",
}
STATIC_PAGE = (
    "<!doctype html><html lang=zh-CN><meta charset=utf-8><title>t</title>"
    "<form method=post><input name=a></form></html>"
) * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ============================================================================ setup (parent)


async def prepare_jixiao_db(url: str) -> list[tuple[str, str]]:
    """Schema + example project + a launched campaign; returns (token, answers csrf) per unit."""
    from sqlalchemy import select

    from bot.forms import csrf_token
    from config.loader import load_definition
    from store.campaigns import create_campaign, hash_token, launch_campaign, make_link_token
    from store.db import create_engine, make_sessionmaker, transaction
    from store.models import Link, metadata
    from store.projects import load_project

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sm = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with transaction(sm) as session:
        project = (
            await load_project(session, load_definition(REPO / "config/projects/urumqi-ip-2023"), now=now)
        ).project
        campaign = await create_campaign(
            session,
            project.id,
            name="bench",
            opens_at=now - timedelta(hours=1),
            closes_at=now + timedelta(days=7),
            now=now,
        )
        await launch_campaign(session, campaign.id, secret=SECRET, now=now)
        salts = (await session.execute(select(Link.token_salt).order_by(Link.id))).scalars().all()
    await engine.dispose()
    out = []
    for salt in salts:
        token = make_link_token(SECRET, salt)
        out.append((token, csrf_token(SECRET, hash_token(token), "answers")))
    return out


MINIMAL_SCHEMA = [
    "CREATE TABLE mlink (id INTEGER PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL, unit TEXT NOT NULL, "
    "answered_at TEXT)",
    "CREATE TABLE mresp (id {serial} PRIMARY KEY, link_id INTEGER NOT NULL, submission TEXT UNIQUE NOT NULL, "
    "answers TEXT NOT NULL, submitted_at TEXT NOT NULL)",
]


def minimal_tokens(n: int = 121) -> list[tuple[str, str]]:
    from store.campaigns import hash_token, make_link_token

    out = []
    for i in range(n):
        token = make_link_token(SECRET, f"salt{i}")
        out.append((token, hmac.new(SECRET, hash_token(token).encode(), hashlib.sha256).hexdigest()[:32]))
    return out


async def prepare_minimal_sqlite(path: str, tokens: list[tuple[str, str]]) -> None:
    import aiosqlite

    from store.campaigns import hash_token

    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        for stmt in MINIMAL_SCHEMA:
            await db.execute(stmt.format(serial="INTEGER"))
        await db.executemany(
            "INSERT INTO mlink (id, token_hash, unit) VALUES (?, ?, ?)",
            [(i + 1, hash_token(t), f"unit{i}") for i, (t, _) in enumerate(tokens)],
        )
        await db.commit()


async def prepare_minimal_pg(dsn: str, tokens: list[tuple[str, str]]) -> None:
    import asyncpg

    from store.campaigns import hash_token

    conn = await asyncpg.connect(dsn)
    try:
        for stmt in MINIMAL_SCHEMA:
            await conn.execute(
                stmt.format(serial="SERIAL").replace("id INTEGER PRIMARY KEY", "id INTEGER PRIMARY KEY")
            )
        await conn.executemany(
            "INSERT INTO mlink (id, token_hash, unit) VALUES ($1, $2, $3)",
            [(i + 1, hash_token(t), f"unit{i}") for i, (t, _) in enumerate(tokens)],
        )
    finally:
        await conn.close()


# ============================================================================ servers (child)


def serve_bare(port: int) -> None:
    from aiohttp import web

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=STATIC_PAGE, content_type="text/html")

    async def post(request: web.Request) -> web.Response:
        await request.read()
        raise web.HTTPSeeOther("/done")

    app = web.Application()
    app.router.add_get("/l/{token}", page)
    app.router.add_post("/l/{token}/answers", post)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_minimal(port: int, db: str) -> None:
    """Token lookup + HMAC form token + INSERT + guarded UPDATE, straight on the driver."""
    import secrets as _secrets
    from urllib.parse import parse_qs

    from aiohttp import web

    pg = db.startswith("postgres")

    def check(token_hash: str, form: dict[str, list[str]]) -> bool:
        want = hmac.new(SECRET, token_hash.encode(), hashlib.sha256).hexdigest()[:32]
        return hmac.compare_digest(form.get("csrf", [""])[0].encode(), want.encode())

    async def on_start(app: web.Application) -> Any:
        if pg:
            import asyncpg

            app["pool"] = await asyncpg.create_pool(db, min_size=4, max_size=20)
            yield
            await app["pool"].close()
        else:
            import aiosqlite

            conn = await aiosqlite.connect(db, isolation_level=None)
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            app["conn"] = conn
            app["lock"] = asyncio.Lock()
            yield
            await conn.close()

    async def page(request: web.Request) -> web.Response:
        th = hashlib.sha256(request.match_info["token"].encode()).hexdigest()
        if pg:
            row = await request.app["pool"].fetchrow("SELECT id, unit FROM mlink WHERE token_hash=$1", th)
        else:
            async with request.app["conn"].execute(
                "SELECT id, unit FROM mlink WHERE token_hash=?", (th,)
            ) as cur:
                row = await cur.fetchone()
        if row is None:
            raise web.HTTPNotFound()
        return web.Response(
            text=STATIC_PAGE.replace("<title>t", f"<title>{row[1]}")
            + f'<input type=hidden name=sid value="{_secrets.token_hex(16)}">',
            content_type="text/html",
        )

    async def post(request: web.Request) -> web.Response:
        th = hashlib.sha256(request.match_info["token"].encode()).hexdigest()
        form = parse_qs((await request.read()).decode())
        if not check(th, form):
            raise web.HTTPForbidden()
        answers = repr(sorted(form.items()))
        now = datetime.now(UTC).isoformat()
        sid = form.get("submission_id", [""])[0]
        if pg:
            async with request.app["pool"].acquire() as conn, conn.transaction():
                link = await conn.fetchval("SELECT id FROM mlink WHERE token_hash=$1 FOR UPDATE", th)
                if link is None:
                    raise web.HTTPNotFound()
                await conn.execute(
                    "INSERT INTO mresp (link_id, submission, answers, submitted_at) "
                    "VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
                    link,
                    sid,
                    answers,
                    now,
                )
                await conn.execute(
                    "UPDATE mlink SET answered_at=$1 WHERE id=$2 AND answered_at IS NULL", now, link
                )
        else:
            conn = request.app["conn"]
            async with request.app["lock"]:  # one connection: one transaction at a time
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    async with conn.execute("SELECT id FROM mlink WHERE token_hash=?", (th,)) as cur:
                        row = await cur.fetchone()
                    if row is None:
                        raise web.HTTPNotFound()
                    await conn.execute(
                        "INSERT OR IGNORE INTO mresp (link_id, submission, answers, submitted_at)"
                        " VALUES (?,?,?,?)",
                        (row[0], sid, answers, now),
                    )
                    await conn.execute(
                        "UPDATE mlink SET answered_at=? WHERE id=? AND answered_at IS NULL", (now, row[0])
                    )
                    await conn.execute("COMMIT")
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
        raise web.HTTPSeeOther("/done")

    app = web.Application()
    app.cleanup_ctx.append(on_start)
    app.router.add_get("/l/{token}", page)
    app.router.add_post("/l/{token}/answers", post)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_jixiao(port: int, db: str) -> None:
    import logging

    from aiohttp import web

    from bot.app import create_app
    from cli.serve import freeze_startup_objects
    from config.settings import Settings
    from store.db import create_engines, make_sessionmaker

    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    tmp = tempfile.mkdtemp(prefix="jixiao-bench-")
    settings = Settings(
        data_dir=Path(tmp),
        secret_key=SECRET.decode(),  # type: ignore[arg-type]
        public_url=f"http://127.0.0.1:{port}",
        database_url=db,
    )
    write_engine, read_engine = create_engines(db)  # as cli.serve wires it
    app = create_app(
        settings,
        sessionmaker=make_sessionmaker(write_engine),
        read_sessionmaker=make_sessionmaker(read_engine),
        channels={},
        start_workers=False,
    )

    async def freeze(_: web.Application) -> None:
        freeze_startup_objects()  # as cli.serve does once started

    app.on_startup.append(freeze)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ============================================================================ load


LUA = r"""
local tokens = {%(tokens)s}
local csrfs = {%(csrfs)s}
local body = "%(body)s"
local prg = %(prg)s
local n = #tokens
local i = 0
local cur = 1
local step = 0
math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0) %% 100000)
local function hex16() return string.format("%%04x%%04x%%04x%%04x", math.random(0,65535), math.random(0,65535), math.random(0,65535), math.random(0,65535)) end
request = function()
  if step == 0 then
    i = i + 1
    cur = (i %% n) + 1
    step = 1
    return wrk.format("GET", "/l/" .. tokens[cur])
  end
  if step == 1 then
    step = prg and 2 or 0
    local b = body .. "&csrf=" .. csrfs[cur] .. "&submission_id=" .. hex16() .. hex16()
    return wrk.format("POST", "/l/" .. tokens[cur] .. "/answers",
      {["Content-Type"] = "application/x-www-form-urlencoded"}, b)
  end
  step = 0  -- the 303's target: jixiao's thank-you state (the other targets ignore the query)
  return wrk.format("GET", "/l/" .. tokens[cur] .. "?done=answers")
end
"""


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)\b", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(
    port: int, tokens: list[tuple[str, str]], conc: int, seconds: int, workdir: Path, *, prg: bool = False
) -> dict[str, float]:
    script = workdir / "submit.lua"
    script.write_text(
        LUA
        % {
            "tokens": ",".join(f'"{t}"' for t, _ in tokens),
            "csrfs": ",".join(f'"{c}"' for _, c in tokens),
            "body": urlencode(ANSWERS),
            "prg": "true" if prg else "false",
        }
    )
    threads = min(2, conc)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{conc}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "subs": rps / (3 if prg else 2),
        "p50": p50,
        "p99": p99,
        "bad": float(bad.group(1)) if bad else 0.0,
        "sock_err": 1.0 if errors else 0.0,
    }


async def _aiohttp_load(
    port: int, tokens: list[tuple[str, str]], conc: int, seconds: int, prg: bool = False
) -> dict[str, float]:
    """Fallback generator: ``conc`` closed-loop users doing GET + POST (+ GET of the 303 target)."""
    import secrets as _secrets

    import aiohttp

    lat: list[float] = []
    bad = 0
    done = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:

        async def user(k: int) -> None:
            nonlocal bad, done
            i = k
            while time.monotonic() < stop:
                token, csrf = tokens[i % len(tokens)]
                i += conc
                steps: list[tuple[str, str, dict[str, Any]]] = [
                    ("GET", "", {}),
                    (
                        "POST",
                        "/answers",
                        {"data": {**ANSWERS, "csrf": csrf, "submission_id": _secrets.token_hex(16)}},
                    ),
                ]
                if prg:
                    steps.append(("GET", "?done=answers", {}))
                for method, suffix, kw in steps:
                    t0 = time.perf_counter()
                    url = f"http://127.0.0.1:{port}/l/{token}{suffix}"
                    async with s.request(method, url, allow_redirects=False, **kw) as r:
                        await r.read()
                        bad += r.status >= 400
                    lat.append((time.perf_counter() - t0) * 1000)
                done += 1

        await asyncio.gather(*(user(k) for k in range(conc)))
    lat.sort()
    return {
        "subs": done / seconds,
        "p50": lat[len(lat) // 2],
        "p99": lat[int(len(lat) * 0.99)],
        "bad": float(bad),
        "sock_err": 0.0,
    }


def run_load(
    port: int, tokens: list[tuple[str, str]], conc: int, seconds: int, workdir: Path, *, prg: bool = False
) -> dict[str, float]:
    if shutil.which("wrk"):
        return run_wrk(port, tokens, conc, seconds, workdir, prg=prg)
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            str(port),
            str(conc),
            str(seconds),
            str(workdir / "tokens.txt"),
            "prg" if prg else "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return eval(out)


# ============================================================================ orchestration


def start_server(kind: str, db: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, str(port), db],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError as exc:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server died") from exc
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _pg_scratch(admin_url: str, create: bool) -> str:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        for name in ("jixiao_bench", "jixiao_bench_min"):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if create:
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return dsn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=7)
    ap.add_argument("--conc", default="1,8,32,64")
    ap.add_argument(
        "--pg",
        default=os.environ.get(
            "JIXIAO_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument(
        "--prg",
        action="store_true",
        help="a submission also GETs the 303 target (jixiao: the page's thank-you state), as a browser does",
    )
    args = ap.parse_args()
    concs = [int(c) for c in args.conc.split(",")]
    work = Path(tempfile.mkdtemp(prefix="jixiao-bench-"))
    from sqlalchemy.engine import make_url

    targets: list[tuple[str, str, str, list[tuple[str, str]]]] = []  # (label, server kind, db, tokens)
    mtokens = minimal_tokens()
    targets.append(("bare aiohttp (static page)", "bare", "-", mtokens))
    sqlite_url = f"sqlite+aiosqlite:///{work / 'jixiao.db'}"
    asyncio.run(prepare_minimal_sqlite(str(work / "minimal.db"), mtokens))
    targets.append(("minimal aiohttp+aiosqlite", "minimal", str(work / "minimal.db"), mtokens))
    targets.append(("jixiao (SQLite)", "jixiao", sqlite_url, asyncio.run(prepare_jixiao_db(sqlite_url))))
    if not args.no_pg:
        try:
            dsn = asyncio.run(_pg_scratch(args.pg, create=True))
        except Exception as exc:  # no server: report and carry on with SQLite
            print(f"(PostgreSQL skipped: {type(exc).__name__}: {exc})")
        else:
            base = make_url(args.pg)
            min_dsn = make_url(dsn).set(database="jixiao_bench_min").render_as_string(hide_password=False)
            asyncio.run(prepare_minimal_pg(min_dsn, mtokens))
            targets.append(("minimal aiohttp+asyncpg", "minimal", min_dsn, mtokens))
            jx_url = base.set(database="jixiao_bench").render_as_string(hide_password=False)
            targets.append(("jixiao (PostgreSQL)", "jixiao", jx_url, asyncio.run(prepare_jixiao_db(jx_url))))

    gen = "wrk + Lua" if shutil.which("wrk") else "aiohttp client (separate process)"
    what = "GET page + POST answers, committed" + (" + GET of the redirect target" if args.prg else "")
    print(f"# link submissions ({what}); {args.seconds}s windows; generator: {gen}")
    print(f"# {os.cpu_count()} CPUs; latency = per HTTP request (GET or POST)")
    print(f"{'target':30} {'c':>3} {'subs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    results: dict[tuple[str, int], dict[str, float]] = {}
    try:
        for label, kind, db, tokens in targets:
            (work / "tokens.txt").write_text("\n".join(f"{t} {c}" for t, c in tokens))
            proc, port = start_server(kind, db)
            try:
                for conc in concs:
                    r = run_load(port, tokens, conc, args.seconds, work, prg=args.prg)
                    results[(label, conc)] = r
                    print(
                        f"{label:30} {conc:>3} {r['subs']:>9.1f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
                        f"{int(r['bad']):>7}",
                        flush=True,
                    )
            finally:
                stop_server(proc)
    finally:
        if not args.no_pg:
            try:
                asyncio.run(_pg_scratch(args.pg, create=False))
            except Exception:
                pass
        shutil.rmtree(work, ignore_errors=True)
    print("# jixiao vs minimal handler on the same database, same run:")
    for db_label, jx, mn in (
        ("SQLite", "jixiao (SQLite)", "minimal aiohttp+aiosqlite"),
        ("PostgreSQL", "jixiao (PostgreSQL)", "minimal aiohttp+asyncpg"),
    ):
        for conc in concs:
            if (jx, conc) in results and (mn, conc) in results:
                share = results[(jx, conc)]["subs"] / results[(mn, conc)]["subs"]
                print(
                    f"  {db_label:10} c={conc:<3} {share:6.0%} of minimal; jixiao p99 "
                    f"{results[(jx, conc)]['p99']:.1f} ms"
                )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        kind, port, db = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        {
            "bare": lambda: serve_bare(port),
            "minimal": lambda: serve_minimal(port, db),
            "jixiao": lambda: serve_jixiao(port, db),
        }[kind]()
    elif len(sys.argv) > 1 and sys.argv[1] == "--load":
        port, conc, seconds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        toks = [tuple(line.split()) for line in Path(sys.argv[5]).read_text().splitlines()]
        prg = len(sys.argv) > 6 and sys.argv[6] == "prg"
        print(repr(asyncio.run(_aiohttp_load(port, toks, conc, seconds, prg))))  # type: ignore[arg-type]
    else:
        main()
