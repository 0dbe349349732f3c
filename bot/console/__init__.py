"""The web console at ``/console/``: admins run an evaluation, coordinators follow it.

Server-rendered HTML (Jinja2), Chinese first (English by ``?lang=en`` or Accept-Language), no
JavaScript needed (one small script adds copy buttons), every asset served from
``bot/console/static``. Each page group has its own module; every page is a thin skin over the
same store functions the JSON API calls. Authentication, CSRF, roles and project grants are in
:mod:`bot.console.auth`.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


async def _root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/console/")


def setup(app: web.Application, *, start_workers: bool) -> None:
    del start_workers
    from bot.console import (
        audit_page,
        auth,
        campaigns,
        chats,
        definition,
        delivery,
        endpoints,
        overview,
        projects,
        render,
        schedules,
        units,
    )

    app[render.ENV] = render.environment()
    r = app.router
    r.add_get("/console", _root)
    r.add_static("/console/static/", STATIC, append_version=False)
    r.add_get("/console/login", auth.login_page)
    r.add_post("/console/login", auth.login_submit)
    r.add_post("/console/logout", auth.logout)
    r.add_get("/console/", projects.projects_list)
    r.add_get("/console/p/{code}", projects.project_page)
    r.add_post("/console/p/{code}/overrides", projects.override_submit)
    r.add_post("/console/p/{code}/recompute", projects.recompute_submit)
    campaigns.routes(r)
    chats.routes(r)
    delivery.routes(r)
    endpoints.routes(r)
    audit_page.routes(r)
    overview.routes(r)
    schedules.routes(r)
    units.routes(r)
    definition.routes(r)
