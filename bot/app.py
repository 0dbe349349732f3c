"""The aiohttp application factory.

``create_app`` wires shared resources under typed keys and registers each feature's routes.
Nothing is built at import time; the composition root (``cli.serve``) or a test calls it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jinja2
from aiohttp import web

from bot import keys
from bot.errors import error_middleware
from config.settings import Settings
from store.db import SessionMaker, create_engines, make_sessionmaker
from store.migrate import ensure_schema

TEMPLATE_DIR = Path(__file__).parent / "templates"

#: Largest request body accepted (spreadsheet imports); pages and JSON are far smaller.
MAX_BODY_BYTES = 5 * 1024 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


def template_env() -> jinja2.Environment:
    """Jinja2 with autoescape on for every template (all user-supplied text is escaped)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


async def health(request: web.Request) -> web.Response:
    """Liveness and database reachability (a read), for load balancers and ``jixiao serve``
    checks. It can say ok while writes fail (full disk): use ``/readyz`` to route traffic."""
    from sqlalchemy import text

    from store.faults import classify_fault

    try:
        async with request.app[keys.SESSIONMAKER]() as session:
            await session.execute(text("SELECT 1"))
        db = "ok"
    except Exception as exc:  # report, don't crash: health must always answer
        fault = classify_fault(exc)
        db = f"error: {fault.kind if fault else type(exc).__name__}"
    status = 200 if db == "ok" else 503
    return web.json_response({"ok": db == "ok", "database": db}, status=status)


def replica_name() -> str:
    """This process's name in the ``heartbeat`` table: host and pid."""
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"[:100]


async def ready(request: web.Request) -> web.Response:
    """Readiness: a write commits (this replica's heartbeat row) and, on a SQLite file, its
    directory is writable with free space left. 503 + ``Retry-After`` with the fault otherwise,
    so a reverse proxy stops sending answers to a replica that cannot store them."""
    from store.faults import StoreUnavailable, check_writable, classify_fault

    settings = request.app[keys.SETTINGS]
    try:
        await check_writable(
            request.app[keys.SESSIONMAKER],
            name=replica_name(),
            now=request.app[keys.CLOCK](),
            url=_bound_url(request.app[keys.SESSIONMAKER]) or settings.db_url,
        )
    except StoreUnavailable as exc:
        fault = exc.fault
    except Exception as exc:
        fault = classify_fault(exc)
        if fault is None:
            raise
    else:
        return web.json_response({"ok": True, "database": "ok", "write": "ok"})
    body = {"ok": False, "database": f"error: {fault.kind}", "write": fault.kind, "detail": fault.en}
    return web.json_response(body, status=503, headers={"Retry-After": str(fault.retry_after_s)})


def _bound_url(sessionmaker: SessionMaker) -> str:
    engine = sessionmaker.kw.get("bind")
    return "" if engine is None else engine.url.render_as_string(hide_password=False)


async def index(request: web.Request) -> web.Response:
    """A plain landing page: what this service is and where admins go (nothing sensitive)."""
    from sqlalchemy import func, select

    from store.models import Project

    async with request.app[keys.SESSIONMAKER]() as session:
        count = await session.scalar(select(func.count()).select_from(Project))
    html = (
        request.app[keys.TEMPLATES]
        .get_template("index.html")
        .render(title="jixiao 绩效", projects=count or 0)
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def create_app(
    settings: Settings,
    *,
    sessionmaker: SessionMaker | None = None,
    read_sessionmaker: SessionMaker | None = None,
    clock: Callable[[], datetime] | None = None,
    channels: dict[str, Any] | None = None,
    run_now: dict[str, Callable[..., Any]] | None = None,
    http: aiohttp.ClientSession | None = None,
    start_workers: bool = True,
) -> web.Application:
    """Build the app. Without ``sessionmaker`` the app owns an engine on ``settings.db_url``
    (migrated at start-up, disposed at cleanup). ``start_workers`` false skips the delivery worker
    (tests that drive it by hand). ``read_sessionmaker`` serves pure reads (the unit page); it
    defaults to ``sessionmaker``."""
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = clock or utc_now
    app[keys.TEMPLATES] = template_env()
    app[keys.RUN_NOW] = dict(run_now or {})
    app[keys.SECRET] = settings.secret()
    if sessionmaker is not None:
        app[keys.SESSIONMAKER] = sessionmaker
        app[keys.READ_SESSIONMAKER] = read_sessionmaker or sessionmaker
    else:
        app.cleanup_ctx.append(_own_database)
    if channels is None:
        from bot.channels.registry import build_adapters

        channels = build_adapters(settings.channel_base_urls)
    app[keys.CHANNELS] = channels
    if http is not None:
        app[keys.HTTP] = http
    else:
        app.cleanup_ctx.append(_own_http)

    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/", index)
    for setup in _feature_setups():
        setup(app, start_workers=start_workers)
    return app


def _feature_setups() -> list[Callable[..., None]]:
    """Each feature module exposes ``setup(app, *, start_workers)``; imported here, not at top,
    so a feature that is not built yet does not break the others."""
    import importlib

    out = []
    for name in (
        "bot.links",
        "bot.pages",
        "bot.api",
        "bot.report",
        "bot.inbound",
        "bot.outbox",
        "bot.console",
    ):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        out.append(module.setup)
    return out


async def _own_database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    engine, read_engine = create_engines(settings.db_url, **settings.engine_options())
    await ensure_schema(engine)
    app[keys.SESSIONMAKER] = make_sessionmaker(engine)
    app[keys.READ_SESSIONMAKER] = make_sessionmaker(read_engine)
    yield
    if read_engine is not engine:
        await read_engine.dispose()
    await engine.dispose()


async def _own_http(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=30, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[keys.HTTP] = session
        yield
