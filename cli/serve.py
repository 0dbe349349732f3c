"""``jixiao serve``: the composition root of the running service.

It builds the settings, the database (migrated), loads the bundled example project into an empty
database (so a fresh checkout shows something real), wires the scheduler and the "run now" hooks
into the bot app, and runs it until SIGINT/SIGTERM (in-flight requests and deliveries finish).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cli.context import Context

if TYPE_CHECKING:
    from aiohttp import web

    from config.settings import Settings
    from store.db import SessionMaker

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "projects" / "urumqi-ip-2023"
log = logging.getLogger("jixiao.serve")


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="运行服务 / run the service")
    p.add_argument("--host", help="bind address (default JIXIAO_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default JIXIAO_PORT or 8080)")
    p.add_argument("--no-scheduler", action="store_true", help="do not run schedules in this process")
    p.set_defaults(handler=serve)


async def load_example_if_empty(ctx: Context) -> None:
    from config.loader import load_definition
    from store.db import transaction
    from store.projects import list_projects, load_project

    sm = await ctx.sessionmaker()
    async with transaction(sm) as session:
        if await list_projects(session) or not EXAMPLE.exists():
            return
        result = await load_project(session, load_definition(EXAMPLE), now=ctx.now(), by="example")
    log.info("loaded example project %s v%s", result.project.code, result.version)


def build_app(settings: Settings, sm: SessionMaker, *, with_scheduler: bool = True) -> web.Application:
    """The wired application on a migrated database (also used by tests and benchmarks)."""

    from bot.app import create_app
    from scheduler.recompute import recompute
    from store.db import read_sessionmaker_for

    async def recompute_now(code: str, *, now: Any, trigger: str = "api") -> Any:
        return await recompute(sm, code, now=now, trigger=trigger)

    read_sm = read_sessionmaker_for(sm)  # SQLite: pages read concurrently with the writer
    app = create_app(
        settings, sessionmaker=sm, read_sessionmaker=read_sm, run_now={"recompute": recompute_now}
    )
    if read_sm is not sm:

        async def _dispose_read_engine(_: web.Application) -> None:
            await read_sm.kw["bind"].dispose()

        app.on_cleanup.append(_dispose_read_engine)
    if with_scheduler:
        try:
            from scheduler.service import attach_scheduler
        except ModuleNotFoundError as exc:
            if exc.name != "scheduler.service":
                raise
        else:
            attach_scheduler(app, sm)
    return app


def public_url_for(settings: Settings, host: str, port: int) -> tuple[str, str | None]:
    """The base URL personal links are built on, and a warning when it looks wrong.

    With no ``JIXIAO_PUBLIC_URL`` configured the links point at the address actually served (so
    ``--port 9000`` gives ``…:9000`` links). A configured URL wins; when its host or port is not
    the bind address, a warning says so (right behind a reverse proxy, wrong on a laptop).
    """
    if "public_url" not in settings.model_fields_set:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}", None
    url = settings.public_url
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    if (parts.port or default_port) != port or (
        host not in ("0.0.0.0", "::")
        and parts.hostname not in (host, "localhost" if host == "127.0.0.1" else host)
    ):
        return url, (
            f"注意：公开地址 {url} 与监听地址 {host}:{port} 不一致（反向代理后属正常）/ "
            f"note: the public URL {url} is not the bind address {host}:{port} (fine behind a reverse proxy)"
        )
    return url, None


async def serve(args: argparse.Namespace, ctx: Context) -> int:
    from aiohttp import web

    from bot.logs import RedactingAccessLogger, setup_logging
    from store.faults import check_sqlite_directory

    settings = ctx.settings
    setup_logging(settings.log_level)
    check_sqlite_directory(settings.db_url)  # a read-only or full data directory: one line, exit 1
    host, port = args.host or settings.host, args.port or settings.port
    public_url, warning = public_url_for(settings, host, port)
    if warning:
        print(warning, file=ctx.err)
    settings = settings.model_copy(update={"public_url": public_url})
    ctx.settings = settings
    sm = await ctx.sessionmaker()  # migrates the schema
    if settings.load_example:
        await load_example_if_empty(ctx)
    app = build_app(settings, sm, with_scheduler=not args.no_scheduler)
    runner = web.AppRunner(app, shutdown_timeout=30, access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    freeze_startup_objects()
    print(
        f"jixiao serving on http://{host}:{port} (database {_safe_url(settings.db_url)}); "
        f"links: {public_url} — Ctrl+C to stop",
        file=ctx.out,
    )
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # stops accepting, waits for in-flight requests, runs cleanup_ctx
    return 0


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (modules, models, compiled statements, templates)
    out of the garbage collector's view: they live as long as the process, and re-scanning them
    made each full collection stall the event loop ~100–140 ms under load (bench/README.md,
    "Link submissions"). Collect first, so nothing already dead is kept forever. From here on
    the collector runs with the thresholds the process started with (the console script holds
    it back only while a command starts: :mod:`cli.entry`)."""
    import gc

    from cli.entry import restore_normal_gc

    gc.collect()
    gc.freeze()
    restore_normal_gc()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
