"""Console: a project's schedules (admins).

The list shows each schedule's next five fire times in its timezone (named); the form adds or
edits one — kind, cron, timezone (project default), campaign for launch/remind/close, quiet
hours, coordinator endpoints chosen from the list — with a **preview** of the next fire times
before saving and every error next to its field (``store.schedules`` validates, as for the API
and the CLI). Pause, resume, run now, and the runs log with errors.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import exists, select

from bot import keys
from bot.console.auth import FORM, PROJECT, Viewer, page
from bot.console.render import render_page
from store.access import endpoint_visible_clause
from store.audit import record
from store.campaigns import list_campaigns
from store.cron import next_fire_times
from store.db import transaction
from store.errors import NotFound, StoreError
from store.models import ChannelEndpoint, Project, Schedule, Unit
from store.schedules import (
    CAMPAIGN_KINDS,
    KINDS,
    check_cron,
    check_params,
    check_timezone,
    create_schedule,
    get_schedule,
    list_runs,
    list_schedules,
    request_run,
    set_enabled,
    update_schedule,
)

KIND_ZH = {"launch": "发起活动", "remind": "提醒未答复单位", "close": "结束活动", "recompute": "重新计算评分",
           "summarise": "发送评分汇总"}  # fmt: skip


def _kinds() -> tuple[str, ...]:
    from bot.channels.registry import KINDS as CHANNEL_KINDS

    return CHANNEL_KINDS


async def _choices(request: web.Request, viewer: Viewer, project: Project) -> dict[str, Any]:
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        campaigns = await list_campaigns(session, project.id or 0)
        # coordinator chats: the endpoints the viewer may see that are no unit's channel
        unit_channel = exists().where(
            Unit.channel_kind == ChannelEndpoint.kind, Unit.channel_address == ChannelEndpoint.address
        )
        endpoints = list(
            (
                await session.execute(
                    select(ChannelEndpoint)
                    .where(endpoint_visible_clause(viewer.grants), ~unit_channel)
                    .order_by(ChannelEndpoint.id)
                    .limit(200)
                )
            ).scalars()
        )
    return {"campaigns": campaigns, "endpoints": endpoints}


async def _chosen(request: web.Request, viewer: Viewer, ids: set[int]) -> list[ChannelEndpoint]:
    """The ticked endpoints the viewer may see (an id of another project's endpoint is absent)."""
    if not ids:
        return []
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        stmt = select(ChannelEndpoint).where(
            ChannelEndpoint.id.in_(sorted(ids)),  # type: ignore[union-attr]
            endpoint_visible_clause(viewer.grants),
        )
        return list((await session.execute(stmt.order_by(ChannelEndpoint.id))).scalars())


async def _schedule_of(request: web.Request, project: Project) -> Schedule:
    raw = request.match_info["schedule_id"]
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        row = await get_schedule(session, int(raw))
    if row.project_id != project.id or row.deleted_at is not None:
        raise NotFound(f"计划不存在：{raw}", f"no such schedule: {raw}", where="schedule")
    return row


@page("admin")
async def schedules_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    now = request.app[keys.CLOCK]()
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        rows = [s for s, _ in await list_schedules(session, project=project.code)]
    listed = [(s, next_fire_times(s.cron, s.timezone, now=now, count=5) if s.enabled else []) for s in rows]
    form = {
        "kind": "summarise",
        "cron": "17 9 * * 1",
        "timezone": project.timezone,
        "quiet_start": "",
        "quiet_end": "",
    }
    return render_page(request, viewer, "schedules.html", project=project, rows=listed, kind_zh=KIND_ZH,
                       kinds=KINDS, form=form, errors={}, preview=[], editing=None, selected=set(),
                       done=request.query.get("done", ""), **await _choices(request, viewer, project))  # fmt: skip


def _params_from(form: dict[str, Any], chosen: list[ChannelEndpoint]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    start, end = str(form.get("quiet_start", "")).strip(), str(form.get("quiet_end", "")).strip()
    if start or end:
        params["quiet_hours"] = [start, end]
    if chosen:
        # the endpoint's config (which variable holds its key) goes along: the summary is sent with it
        params["endpoints"] = [
            {
                "kind": e.kind,
                "address": e.address,
                "name": e.name,
                **({"config": e.config} if e.config else {}),
            }
            for e in chosen
        ]
    return params


@page("admin")
async def schedule_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Preview (``action=preview``) or save a new or edited (``schedule_id`` set) schedule."""
    project: Project = request[PROJECT]
    form = request[FORM]
    now = request.app[keys.CLOCK]()
    choices = await _choices(request, viewer, project)
    selected = {
        int(v) for k, v in form.items() if k.startswith("ep_") and str(v).isdigit() and len(str(v)) <= 10
    }
    kind = str(form.get("kind", ""))
    cron = str(form.get("cron", ""))
    timezone = str(form.get("timezone", "")).strip() or project.timezone
    raw_campaign = str(form.get("campaign_id", "")).strip()
    campaign_id = int(raw_campaign) if raw_campaign.isdigit() and kind in CAMPAIGN_KINDS else None
    editing = int(form["schedule_id"]) if str(form.get("schedule_id", "")).isdigit() else None
    errors: dict[str, str] = {}
    preview: list[Any] = []
    chosen = await _chosen(request, viewer, selected)
    params = _params_from(form, chosen)

    def note(exc: StoreError) -> None:
        field = (exc.where or "cron").split(".")[0] if not exc.where.startswith("params.") else exc.where
        errors[field] = exc.en if viewer.lang == "en" else exc.zh

    unknown = sorted(selected - {e.id for e in chosen})
    if unknown:  # an id from another project's list (or a made-up one): refused, never dropped silently
        note(StoreError(f"端点不存在或不属于你的项目：#{unknown[0]}",
                        f"no such endpoint among your projects': #{unknown[0]}", where="params.endpoints"))  # fmt: skip
    for check, value in ((check_cron, cron), (check_timezone, timezone)):
        try:
            check(value)
        except StoreError as exc:
            note(exc)
    try:
        check_params(params, known_kinds=_kinds())
    except StoreError as exc:
        note(exc)
    if not errors:
        preview = next_fire_times(cron, timezone, now=now, count=5)
    if not errors and form.get("action") != "preview":
        try:
            async with transaction(request.app[keys.SESSIONMAKER]) as session:
                values = {
                    "kind": kind,
                    "cron": cron,
                    "timezone": timezone,
                    "campaign_id": campaign_id,
                    "params": params,
                }
                if editing is None:
                    row = await create_schedule(session, project=project.code, by=viewer.actor, now=now,
                                                known_kinds=_kinds(), **values)  # fmt: skip
                else:
                    current = await get_schedule(session, editing)
                    if current.project_id != project.id:
                        raise NotFound(
                            f"计划不存在：{editing}", f"no such schedule: {editing}", where="schedule"
                        )
                    row = await update_schedule(session, editing, changes=values, by=viewer.actor, now=now,
                                                known_kinds=_kinds())  # fmt: skip
                await record(session, actor=viewer.actor, action="schedule.create" if editing is None else "schedule.update",
                             now=now, project_id=project.id, object=f"schedule:{row.id}",
                             detail={"kind": kind, "cron": cron, "timezone": timezone})  # fmt: skip
        except StoreError as exc:
            note(exc)
        else:
            hook = request.app[keys.RUN_NOW].get("schedules_changed")
            if hook is not None:
                await hook()
            raise web.HTTPSeeOther(f"/console/p/{project.code}/schedules?done=saved")
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        rows = [s for s, _ in await list_schedules(session, project=project.code)]
    listed = [(s, next_fire_times(s.cron, s.timezone, now=now, count=5) if s.enabled else []) for s in rows]
    return render_page(request, viewer, "schedules.html", status=400 if errors else 200, project=project, rows=listed,
                       kind_zh=KIND_ZH, kinds=KINDS, form=form, errors=errors, preview=preview, editing=editing,
                       selected=selected, done="", **choices)  # fmt: skip


@page("admin")
async def schedule_action(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    row = await _schedule_of(request, project)
    action = request.match_info["action"]
    now = request.app[keys.CLOCK]()
    assert row.id is not None
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        if action == "run-now":
            await request_run(session, row.id, now=now)
        else:
            await set_enabled(session, row.id, action == "resume", by=viewer.actor, now=now)
        await record(session, actor=viewer.actor, action=f"schedule.{action}", now=now, project_id=project.id,
                     object=f"schedule:{row.id}")  # fmt: skip
    hook = request.app[keys.RUN_NOW].get("schedules_changed")
    if hook is not None:
        await hook()
    raise web.HTTPSeeOther(f"/console/p/{project.code}/schedules?done={action}")


@page("admin")
async def schedule_edit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    row = await _schedule_of(request, project)
    now = request.app[keys.CLOCK]()
    choices = await _choices(request, viewer, project)
    quiet = (row.params or {}).get("quiet_hours") or ["", ""]
    wanted = {(e.get("kind"), e.get("address")) for e in (row.params or {}).get("endpoints", [])}
    selected = {e.id for e in choices["endpoints"] if (e.kind, e.address) in wanted}
    form = {"kind": row.kind, "cron": row.cron, "timezone": row.timezone, "campaign_id": str(row.campaign_id or ""),
            "quiet_start": quiet[0], "quiet_end": quiet[1]}  # fmt: skip
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        runs = await list_runs(session, row.id or 0, limit=50)
    return render_page(request, viewer, "schedule.html", project=project, schedule=row, kind_zh=KIND_ZH, kinds=KINDS,
                       form=form, errors={}, preview=next_fire_times(row.cron, row.timezone, now=now, count=5),
                       editing=row.id, selected=selected, runs=runs, **choices)  # fmt: skip


def routes(r: web.UrlDispatcher) -> None:
    base = "/console/p/{code}/schedules"
    r.add_get(base, schedules_page)
    r.add_post(base, schedule_submit)
    r.add_get(base + "/{schedule_id:\\d{1,10}}", schedule_edit)
    r.add_post(base + "/{schedule_id:\\d{1,10}}/{action:pause|resume|run-now}", schedule_action)
