"""Link submissions per second: jixiao's unit page against a careful minimal handler and a bare one.

One "submission" = GET the personal link page, read its hidden fields, POST the answers; it
counts when the POST is committed (jixiao: a 303 to ``?done=answers``; the references: "Thank
you!"). The generator is ``wrk`` with the Lua scripts of the shared side-by-side kit, copied
into ``bench/`` (``submit_ref.lua``, ``submit_jixiao.lua``): ``-t C -c C`` (one connection per
thread), each thread walking its own slice of UNUSED link tokens. Targets:

- ``bare``: the kit's ``ref_servers.py bare`` (static page, no state: the framework ceiling);
- ``careful``: the kit's ``ref_servers.py sqlite`` (aiosqlite, one shared connection, WAL, token
  lookup, one INSERT, one guarded UPDATE, HMAC form token), run with jixiao's own ``synchronous``
  setting so neither side buys speed with durability;
- ``jixiao-sqlite``: the real app (``bot.app.create_app``, wired like ``cli.serve``: write + read
  engines, ``gc.freeze()`` once started) on the example project plus N extra units, one launched
  campaign, so every window has enough unused links;
- with ``--pg``: ``minimal-pg`` (aiohttp + asyncpg pool, same protocol as jixiao's page: lookup
  ``FOR UPDATE``, INSERT, guarded UPDATE, HMAC form token) and ``jixiao-pg``.

Protocol (the kit's README): every window starts from a fresh copy of its database, the targets
run interleaved (the order rotates each round), each concurrency gets ``--rounds`` windows per
target, and the table shows medians. Ratios are taken inside one round (the same minutes of a
shared, noisy machine), then their median is printed: absolute rates move between runs, ratios
in one window are what count. Prints numbers; asserts nothing.

Usage::

    .venv/bin/python bench/submit.py [--seconds 6] [--conc 1,8,32,64] [--rounds 3] [--units 12000]
                                     [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
                                     [--targets bare,careful,jixiao-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

SECRET = b"bench-secret-0123456789abcdef0123"
EXAMPLE = REPO / "config" / "projects" / "urumqi-ip-2023"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ============================================================================ databases (parent)


SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


async def sqlite_synchronous(url: str) -> str:
    """The ``synchronous`` setting jixiao's own engine gives its SQLite connections."""
    from store.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            value = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one()
    finally:
        await engine.dispose()
    return SYNC_NAMES[int(value)]


async def prepare_jixiao(url: str, units: int) -> list[str]:
    """Schema + example project + ``units`` extra units + one launched campaign; the link tokens."""
    from sqlalchemy import insert, select

    from config.loader import load_definition
    from store.campaigns import create_campaign, launch_campaign, make_link_token
    from store.db import create_engine, make_sessionmaker, transaction
    from store.models import Link, Unit, metadata
    from store.projects import load_project

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sm = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with transaction(sm) as session:
        project = (await load_project(session, load_definition(EXAMPLE), now=now, by="bench")).project
        rows = [
            {"project_id": project.id, "key": f"bench-{i:05d}", "name": f"基准测试单位{i:05d}（示例）",
             "channel_kind": "console", "channel_address": f"bench-{i:05d}", "channel_config": {},
             "active": True, "created_at": now, "updated_at": now}
            for i in range(units)
        ]  # fmt: skip
        if rows:
            await session.execute(insert(Unit), rows)
        campaign = await create_campaign(
            session, project.id, name="bench", opens_at=now - timedelta(hours=1),
            closes_at=now + timedelta(days=7), now=now,
        )  # fmt: skip
        await launch_campaign(session, campaign.id, secret=SECRET, now=now)
        salts = (await session.execute(select(Link.token_salt).order_by(Link.id))).scalars().all()
    await engine.dispose()
    return [make_link_token(SECRET, salt) for salt in salts]


def prepare_careful(path: Path, tokens_file: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(HERE / "ref_servers.py"),
            "initdb",
            "--db",
            str(path),
            "--tokens",
            str(tokens_file),
        ],
        check=True,
        capture_output=True,
    )


MINIMAL_PG_SCHEMA = [
    "CREATE TABLE mlink (id SERIAL PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL, unit TEXT NOT NULL, "
    "answered_at TIMESTAMPTZ)",
    "CREATE TABLE mresp (id SERIAL PRIMARY KEY, link_id INTEGER NOT NULL, submission TEXT UNIQUE NOT NULL, "
    "answers TEXT NOT NULL, submitted_at TIMESTAMPTZ NOT NULL)",
]


async def prepare_minimal_pg(dsn: str, tokens: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for stmt in MINIMAL_PG_SCHEMA:
            await conn.execute(stmt)
        await conn.executemany(
            "INSERT INTO mlink (token_hash, unit) VALUES ($1, $2)",
            [(hashlib.sha256(t.encode()).hexdigest(), f"单位{i}") for i, t in enumerate(tokens)],
        )
    finally:
        await conn.close()


def _admin_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg(admin_dsn: str, *sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        for s in sql:
            await conn.execute(s)
    finally:
        await conn.close()


# ============================================================================ servers (child)


def serve_jixiao(port: int, db: str) -> None:
    import logging

    from aiohttp import web

    from bot.app import create_app
    from cli.serve import freeze_startup_objects
    from config.settings import Settings
    from store.db import create_engines, make_sessionmaker

    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="jixiao-bench-")),
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


def serve_minimal_pg(port: int, dsn: str) -> None:
    """The careful handler's work on asyncpg, speaking jixiao's page protocol (submit_jixiao.lua):
    GET → a small page with ``csrf`` and ``submission_id``; POST → one transaction (lookup ``FOR
    UPDATE``, INSERT … ON CONFLICT DO NOTHING, guarded UPDATE) → 303 ``?done=answers``."""
    import secrets
    from urllib.parse import parse_qs

    from aiohttp import web

    def csrf(token_hash: str) -> str:
        return hmac.new(SECRET, token_hash.encode(), hashlib.sha256).hexdigest()[:32]

    async def on_start(app: web.Application) -> Any:
        import asyncpg

        app["pool"] = await asyncpg.create_pool(dsn, min_size=4, max_size=20)
        yield
        await app["pool"].close()

    async def page(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        th = hashlib.sha256(token.encode()).hexdigest()
        row = await request.app["pool"].fetchrow("SELECT id, unit FROM mlink WHERE token_hash=$1", th)
        if row is None:
            raise web.HTTPNotFound()
        return web.Response(
            text=f'<!doctype html><meta charset="utf-8"><title>{row[1]}</title>'
            f'<form method="post" action="/l/{token}/answers"><input type="hidden" name="csrf" value="{csrf(th)}">'
            f'<input type="hidden" name="submission_id" value="{secrets.token_hex(16)}"><button>提交</button></form>',
            content_type="text/html",
        )

    async def post(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        th = hashlib.sha256(token.encode()).hexdigest()
        form = parse_qs((await request.read()).decode())
        if not hmac.compare_digest(form.get("csrf", [""])[0].encode(), csrf(th).encode()):
            raise web.HTTPForbidden()
        now = datetime.now(UTC)
        async with request.app["pool"].acquire() as conn, conn.transaction():
            link = await conn.fetchval("SELECT id FROM mlink WHERE token_hash=$1 FOR UPDATE", th)
            if link is None:
                raise web.HTTPNotFound()
            await conn.execute(
                "INSERT INTO mresp (link_id, submission, answers, submitted_at) VALUES ($1,$2,$3,$4) "
                "ON CONFLICT DO NOTHING",
                link,
                form.get("submission_id", [""])[0],
                json.dumps(form, ensure_ascii=False),
                now,
            )
            await conn.execute(
                "UPDATE mlink SET answered_at=$1 WHERE id=$2 AND answered_at IS NULL", now, link
            )
        raise web.HTTPSeeOther(f"/l/{token}?done=answers#done")

    app = web.Application()
    app.cleanup_ctx.append(on_start)
    app.router.add_get("/l/{token}", page)
    app.router.add_post("/l/{token}/answers", post)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ============================================================================ one window


def _wait_ready(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError as exc:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{what} exited: {err[-2000:]}") from exc
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not start within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Target:
    """One server kind: how to give it a fresh database and start it."""

    def __init__(self, name: str, lua: str, tokens: Path, n_tokens: int) -> None:
        self.name, self.lua, self.tokens, self.n_tokens = name, lua, tokens, n_tokens

    def fresh(self) -> list[str]:  # the command line of a server on a fresh database
        raise NotImplementedError

    def cleanup(self) -> None:
        return None


class SqliteCopy(Target):
    def __init__(
        self, name: str, lua: str, tokens: Path, n_tokens: int, master: Path, argv: list[str]
    ) -> None:
        super().__init__(name, lua, tokens, n_tokens)
        self.master, self.argv = master, argv
        self.copy = master.with_name(master.stem + "-window.db")

    def fresh(self) -> list[str]:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.copy) + suffix).unlink(missing_ok=True)
        shutil.copyfile(self.master, self.copy)
        return [a.replace("{db}", str(self.copy)) for a in self.argv]


class PgCopy(Target):
    def __init__(
        self,
        name: str,
        lua: str,
        tokens: Path,
        n_tokens: int,
        admin: str,
        template: str,
        argv: list[str],
        url: str,
    ) -> None:
        super().__init__(name, lua, tokens, n_tokens)
        self.admin, self.template, self.argv, self.url = admin, template, argv, url
        self.db = template + "_w"

    def fresh(self) -> list[str]:
        asyncio.run(
            _pg(
                self.admin,
                f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)',
                f'CREATE DATABASE "{self.db}" TEMPLATE "{self.template}"',
            )
        )
        from sqlalchemy.engine import make_url

        url = make_url(self.url).set(database=self.db).render_as_string(hide_password=False)
        return [a.replace("{db}", url) for a in self.argv]

    def cleanup(self) -> None:
        asyncio.run(
            _pg(
                self.admin,
                f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)',
                f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)',
            )
        )


class Static(Target):
    def __init__(self, name: str, lua: str, tokens: Path, n_tokens: int, argv: list[str]) -> None:
        super().__init__(name, lua, tokens, n_tokens)
        self.argv = argv

    def fresh(self) -> list[str]:
        return self.argv


def window(
    target: Target, conc: int, seconds: int, profile: Path | None = None, profile_wall: bool = False
) -> dict[str, float]:
    """Start ``target`` on a fresh database, run wrk for ``seconds`` at ``conc``, stop it."""
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in target.fresh()]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    spy = None
    try:
        _wait_ready(proc, port, target.name)
        if profile is not None:
            spy = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(proc.pid), "--duration",
                 str(seconds), "--rate", "200", "--format", "raw", "--output", str(profile), "--nonblocking",
                 "--threads", "--idle" if profile_wall else "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        cpu0, db0 = _cpu_seconds(proc.pid), _postgres_cpu()
        out = subprocess.run(
            ["wrk", f"-t{conc}", f"-c{conc}", f"-d{seconds}s", "-s", str(HERE / target.lua),
             f"http://127.0.0.1:{port}", "--", str(target.tokens), str(conc), str(target.n_tokens)],
            capture_output=True, text=True, check=True, timeout=seconds + 60,
        ).stdout  # fmt: skip
        cpu, db1 = _cpu_seconds(proc.pid) - cpu0, _postgres_cpu()
        # per process: a backend that ended during the window (another target's) is not counted
        db_cpu = sum(used - db0.get(pid, 0.0) for pid, used in db1.items())
        if spy is not None:
            spy.wait(timeout=60)
    finally:
        _stop(proc)
    found = re.search(r"WRKJSON (\{.*\})", out)
    if not found:
        raise RuntimeError(f"{target.name}: no WRKJSON in wrk output:\n{out}")
    result: dict[str, float] = json.loads(found.group(1))
    # Server CPU (user + system, all threads) per committed submission, in ms: unlike the rate,
    # it barely depends on how loaded the machine is.
    result["cpu_ms"] = 1000 * cpu / result["completed"] if result["completed"] else 0.0
    # PostgreSQL's own CPU (every server process: backends, WAL writer, …) per submission; 0 for
    # the SQLite targets, whose database work is in the server's figure.
    result["db_cpu_ms"] = (
        1000 * db_cpu / result["completed"] if result["completed"] and "pg" in target.name else 0.0
    )
    return result


def _postgres_cpu() -> dict[int, float]:
    """User + system CPU time so far of every process named ``postgres``, by pid, in seconds
    (a backend that ends during a window takes its time with it: the figure is a floor)."""
    used: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == "postgres":
                used[int(proc.name)] = _cpu_seconds(int(proc.name))
        except (OSError, ValueError):
            continue  # ended meanwhile
    return used


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ============================================================================ orchestration


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--conc", default="1,8,32,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--units", type=int, default=12_000, help="extra units (= unused links per window)")
    ap.add_argument("--pg", default="", help="admin URL of a PostgreSQL server (adds minimal-pg, jixiao-pg)")
    ap.add_argument("--targets", default="", help="comma-separated subset of target names")
    ap.add_argument(
        "--profile",
        default="",
        help="py-spy raw profile (GIL samples) of the first jixiao window (sqlite, else pg) at the first --conc",
    )
    ap.add_argument("--profile-wall", action="store_true", help="profile wall-clock samples (idle included)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian package wrk)")
    concs = [int(c) for c in args.conc.split(",")]
    work = Path(tempfile.mkdtemp(prefix="jixiao-bench-"))
    py = sys.executable
    try:
        jx_master = work / "jixiao.db"
        tokens = asyncio.run(prepare_jixiao(f"sqlite+aiosqlite:///{jx_master}", args.units))
        synchronous = asyncio.run(sqlite_synchronous(f"sqlite+aiosqlite:///{jx_master}"))
        print(f"# jixiao's SQLite synchronous={synchronous}; the careful reference runs with the same")
        tokens_file = work / "tokens.txt"
        tokens_file.write_text("\n".join(tokens) + "\n")
        ref_master = work / "careful.db"
        prepare_careful(ref_master, tokens_file)
        n = len(tokens)
        ref = str(HERE / "ref_servers.py")
        targets: list[Target] = [
            Static("bare", "submit_ref.lua", tokens_file, n, [py, ref, "bare", "--port", "{port}"]),
            SqliteCopy("careful", "submit_ref.lua", tokens_file, n, ref_master,
                       [py, ref, "sqlite", "--port", "{port}", "--db", "{db}", "--synchronous", synchronous]),
            SqliteCopy("jixiao-sqlite", "submit_jixiao.lua", tokens_file, n, jx_master,
                       [py, __file__, "--serve-jixiao", "{port}", "sqlite+aiosqlite:///{db}"]),
        ]  # fmt: skip
        if args.pg:
            from sqlalchemy.engine import make_url

            admin = _admin_dsn(args.pg)
            base = make_url(args.pg)
            for name in ("jx_bench_tpl", "jx_bench_min_tpl"):
                asyncio.run(
                    _pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
                )
            jx_tpl_url = base.set(database="jx_bench_tpl").render_as_string(hide_password=False)
            pg_jx_tokens = asyncio.run(prepare_jixiao(jx_tpl_url, args.units))
            min_tpl = make_url(admin).set(database="jx_bench_min_tpl").render_as_string(hide_password=False)
            asyncio.run(prepare_minimal_pg(min_tpl, tokens))  # any tokens: the minimal table is its own
            # jixiao-pg has other tokens (its own launch): a file of its own.
            pg_tokens = work / "pg-tokens.txt"
            pg_tokens.write_text("\n".join(pg_jx_tokens) + "\n")
            min_tokens = tokens_file
            targets += [
                PgCopy("minimal-pg", "submit_jixiao.lua", min_tokens, n, admin, "jx_bench_min_tpl",
                       [py, __file__, "--serve-minimal-pg", "{port}", "{db}"], admin),
                PgCopy("jixiao-pg", "submit_jixiao.lua", pg_tokens, n, admin, "jx_bench_tpl",
                       [py, __file__, "--serve-jixiao", "{port}", "{db}"], args.pg),
            ]  # fmt: skip
        if args.targets:
            keep = set(args.targets.split(","))
            targets = [t for t in targets if t.name in keep]
        run(targets, concs, args, work)
    finally:
        for t in locals().get("targets", []):
            try:
                t.cleanup()
            except Exception:
                pass
        shutil.rmtree(work, ignore_errors=True)


def run(targets: list[Target], concs: list[int], args: argparse.Namespace, work: Path) -> None:
    print(f"# link submissions: GET page + POST answers, committed; wrk -t C -c C, {args.seconds}s windows,")
    print(
        f"# {args.rounds} rounds per concurrency, targets interleaved (order rotates), fresh database per window"
    )
    print(
        f"{'target':15} {'c':>3} {'round':>5} {'subs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}"
        f" {'cpu ms/sub':>10} {'db cpu ms':>9} {'load':>5}"
    )
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for conc in concs:
        for r in range(args.rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            for t in order:
                profile = None
                first_jixiao = next(x for x in targets + [t] if x.name.startswith("jixiao"))
                if args.profile and t is first_jixiao and conc == concs[0] and r == 0:
                    profile = Path(args.profile)
                w = window(t, conc, args.seconds, profile, args.profile_wall)
                results.setdefault((t.name, conc), []).append(w)
                print(
                    f"{t.name:15} {conc:>3} {r:>5} {w['rate_per_s']:>9.1f} {w['p50_ms']:>8.2f} "
                    f"{w['p99_ms']:>8.2f} {w['failed']:>7} {w['cpu_ms']:>10.2f} {w['db_cpu_ms']:>9.2f} {os.getloadavg()[0]:>5.1f}",
                    flush=True,
                )
    print("\n# medians; ratios = median over rounds of (jixiao ÷ reference) in the same round")
    names = [t.name for t in targets]

    def ratio(a: str, b: str, conc: int) -> str:
        if (a, conc) not in results or (b, conc) not in results:
            return "—"
        pairs = zip(results[(a, conc)], results[(b, conc)], strict=True)
        return (
            f"{statistics.median(x['rate_per_s'] / y['rate_per_s'] for x, y in pairs if y['rate_per_s']):.2f}"
        )

    header = "| c | " + " | ".join(f"{n} subs/s" for n in names)
    header += " | jixiao-sqlite ÷ careful | jixiao-sqlite ÷ bare | jixiao-sqlite p99 ms"
    if "jixiao-pg" in names:
        header += " | jixiao-pg ÷ minimal-pg | jixiao-pg p99 ms"
    print(header + " |")
    print("|" + "---|" * header.count("|"))
    for conc in concs:
        cells = [str(conc)]
        for n in names:
            rates = [w["rate_per_s"] for w in results.get((n, conc), [])]
            cells.append(f"{statistics.median(rates):,.0f}" if rates else "—")
        cells.append(ratio("jixiao-sqlite", "careful", conc))
        cells.append(ratio("jixiao-sqlite", "bare", conc))
        p99 = [w["p99_ms"] for w in results.get(("jixiao-sqlite", conc), [])]
        cells.append(f"{statistics.median(p99):.0f}" if p99 else "—")
        if "jixiao-pg" in names:
            cells.append(ratio("jixiao-pg", "minimal-pg", conc))
            p99 = [w["p99_ms"] for w in results.get(("jixiao-pg", conc), [])]
            cells.append(f"{statistics.median(p99):.0f}" if p99 else "—")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-jixiao":
        serve_jixiao(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve-minimal-pg":
        serve_minimal_pg(int(sys.argv[2]), sys.argv[3])
    else:
        main()
