"""Console: the group chats the bot has seen, and connecting them to projects (admins).

Connecting a chat is what lets anyone in it ask the bot about a project's scores, so it is an
admin decision, recorded in the audit log. The page lists what ``store.chats.list_chats`` lets
the viewer see — the API's rule: chats connected to the viewer's projects (showing only those
projects), and chats connected to no project only for admins with access to all projects. An
admin scoped to some projects connects a new chat by the id the bot posted in it ("connect by
id" form). Connect and disconnect call ``store.chats.connect_chat`` / ``disconnect_chat``, as
``POST /api/chats/connect|disconnect`` and ``jixiao bot connect|disconnect`` do.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.console.auth import FORM, Viewer, page
from bot.console.i18n import bilingual
from bot.console.render import render_page
from store.access import visible_project
from store.audit import record
from store.chats import HINTS, VENDORS, connect_chat, disconnect_chat, list_chats
from store.db import transaction
from store.errors import StoreError
from store.models import Project

SHOWN = 500


async def _page(
    request: web.Request, viewer: Viewer, *, status: int = 200, errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None, flash: str = "",
) -> web.Response:  # fmt: skip
    only = request.query.get("connected", "")
    connected = True if only == "1" else False if only == "0" else None
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        chats = await list_chats(session, grants=viewer.grants, connected=connected)
        projects = list(
            (
                await session.execute(
                    select(Project).where(viewer.grants.where(Project.id)).order_by(Project.code)
                )
            ).scalars()
        )
    return render_page(request, viewer, "chats.html", status=status, chats=chats[:SHOWN], total=len(chats),
                       projects=projects, vendors=VENDORS, only=only, errors=errors or {}, form=form or {},
                       flash=flash)  # fmt: skip


@page("admin")
async def chats_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    done = request.query.get("done", "")
    vendor = request.query.get("vendor", "")
    flash = ""
    if done == "connected":
        flash = viewer.t("已连接。") + " " + bilingual(HINTS.get(vendor, ""), viewer.lang)
    elif done == "disconnected":
        flash = viewer.t("已断开。")
    return await _page(request, viewer, flash=flash)


def _chat_fields(form: Any) -> tuple[str, str, str]:
    return (
        str(form.get("vendor", "")).strip(),
        str(form.get("chat_id", "")).strip(),
        str(form.get("project", "")).strip()[:64],
    )


@page("admin")
async def chat_connect(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Connect a chat (picked from the list, or typed by id) to one of the viewer's projects."""
    vendor, chat_id, code = _chat_fields(request[FORM])
    now = request.app[keys.CLOCK]()
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            if not code:
                raise StoreError("请选择项目", "choose a project", where="project")
            project = await visible_project(session, viewer.grants, code)  # 404 → "no such project"
            await connect_chat(session, vendor, chat_id, code, now=now, by=viewer.actor, grants=viewer.grants)
            await record(session, actor=viewer.actor, action="chat.connect", now=now, project_id=project.id,
                         object=f"chat:{vendor}:{chat_id}")  # fmt: skip
    except StoreError as exc:
        where = exc.where if exc.where in ("vendor", "chat_id", "project") else "chat_id"
        errors = {where: exc.en if viewer.lang == "en" else exc.zh}
        form = {"vendor": vendor, "chat_id": chat_id, "project": code}
        return await _page(request, viewer, status=exc.status, errors=errors, form=form)
    raise web.HTTPSeeOther(f"/console/chats?done=connected&vendor={vendor}")


@page("admin")
async def chat_disconnect(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Disconnect a chat from one of the viewer's projects."""
    vendor, chat_id, code = _chat_fields(request[FORM])
    now = request.app[keys.CLOCK]()
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            project = await visible_project(session, viewer.grants, code)
            await disconnect_chat(session, vendor, chat_id, code, grants=viewer.grants)
            await record(session, actor=viewer.actor, action="chat.disconnect", now=now, project_id=project.id,
                         object=f"chat:{vendor}:{chat_id}")  # fmt: skip
    except StoreError as exc:
        return await _page(request, viewer, status=exc.status,
                           errors={"list": exc.en if viewer.lang == "en" else exc.zh})  # fmt: skip
    raise web.HTTPSeeOther("/console/chats?done=disconnected")


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/chats", chats_page)
    r.add_post("/console/chats/connect", chat_connect)
    r.add_post("/console/chats/disconnect", chat_disconnect)
