"""The audit log page (admins): every console change, newest first, within the admin's projects."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.console.auth import Viewer, page
from bot.console.render import render_page
from store.audit import list_entries
from store.models import Project

PAGE = 100


@page("admin")
async def audit_log(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    try:
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        offset = 0
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        entries = await list_entries(session, viewer.grants, limit=PAGE + 1, offset=offset)
        codes = dict((await session.execute(select(Project.id, Project.code))).all())
    more = len(entries) > PAGE
    return render_page(request, viewer, "audit.html", entries=entries[:PAGE], codes=codes, offset=offset,
                       more=more, page_size=PAGE)  # fmt: skip


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/audit", audit_log)
