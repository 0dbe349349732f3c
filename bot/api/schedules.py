"""Admin API for schedules.

``GET/POST /api/schedules``, ``GET/PATCH/DELETE /api/schedules/{id}``,
``POST /api/schedules/{id}/pause|resume|run-now``, ``GET /api/schedules/{id}/runs``.

Reads need any live token, writes an admin token (``bot.api.common`` auth). Every write is
validated as a whole by ``store.schedules`` (a bad cron → 400 naming the field, e.g. "第2段 小时
超出范围 0-23 / field 2 (hour) out of range 0-23"), logged in ``schedule_change`` with the token's
name, and followed by an in-process poke so this process's scheduler re-syncs at once (other
replicas pick the change up on their next poll). "run now" leaves a ``requested`` run that
whichever scheduler polls next takes (exactly one does); it answers 202 with the run id.

Operations live in their own :data:`SCHEDULE_API` registry and are added by
:func:`setup_schedule_routes` (called from ``bot.report.setup``), so this module does not depend
on how ``bot.api`` registers its own.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from bot import keys
from bot.api.common import Body, Call, Registry, ok, wrap
from bot.errors import ApiError
from store.access import visible_project
from store.db import transaction
from store.schedules import (
    create_schedule,
    get_schedule,
    list_changes,
    list_runs,
    list_schedules,
    project_code,
    remove_schedule,
    request_run,
    run_json,
    schedule_json,
    set_enabled,
    shown_snapshot,
    update_schedule,
)

SCHEDULE_API = Registry()


class ScheduleIn(Body):
    kind: str = Field(max_length=20)
    project: str = Field(max_length=64)
    cron: str = Field(max_length=100)
    campaign_id: int | None = None
    timezone: str | None = Field(default=None, max_length=64)
    enabled: bool = True
    grace_seconds: int = 3600
    params: dict[str, Any] | None = None


class SchedulePatch(Body):
    kind: str | None = Field(default=None, max_length=20)
    project: str | None = Field(default=None, max_length=64)
    cron: str | None = Field(default=None, max_length=100)
    campaign_id: int | None = None
    timezone: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    grace_seconds: int | None = None
    params: dict[str, Any] | None = None


def _by(call: Call) -> str:
    return f"api:{call.token.name}" if call.token is not None else "api"


def _id(call: Call) -> int:
    raw = str(call.path.get("schedule_id", ""))
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 2**31 - 1:
        raise ApiError(
            404, "not_found", f"计划不存在：{raw[:40]}", f"no such schedule: {raw[:40]}", where="schedule_id"
        )
    return int(raw)


def _kinds() -> tuple[str, ...]:
    from bot.channels.registry import KINDS

    return KINDS


async def _changed(request: web.Request) -> None:
    hook = request.app[keys.RUN_NOW].get("schedules_changed")
    if hook is not None:
        await hook()


async def _view(request: web.Request, schedule_id: int, status: int = 200) -> web.Response:
    async with request.app[keys.SESSIONMAKER]() as session, session.begin():
        row = await get_schedule(session, schedule_id)
        code = await project_code(session, row)
        changes = await list_changes(session, schedule_id)
    data = schedule_json(row, code, now=request.app[keys.CLOCK]())
    data["changes"] = [
        {
            "at": c.at.isoformat(),
            "by": c.by,
            "action": c.action,
            "before": shown_snapshot(c.before),
            "after": shown_snapshot(c.after),
        }
        for c in changes[-20:]
    ]
    return ok(data, status=status)


@SCHEDULE_API.op("GET", "/api/schedules", role="reader", summary="List schedules", tag="schedules")
async def list_schedules_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Live schedules, each with its next five fire times in its timezone. ``?project=CODE`` filters."""
    project = request.query.get("project") or None
    now = request.app[keys.CLOCK]()
    async with request.app[keys.SESSIONMAKER]() as session, session.begin():
        rows = await list_schedules(session, project=project)
    return ok([schedule_json(s, code, now=now) for s, code in rows if call.grants.allows(s.project_id)])


@SCHEDULE_API.op(
    "POST",
    "/api/schedules",
    role="admin",
    summary="Create a schedule",
    tag="schedules",
    body=ScheduleIn,
    success=201,
)
async def create_schedule_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Create a schedule; the timezone defaults to the project's."""
    b: ScheduleIn = call.body
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await visible_project(session, call.grants, b.project)
        row = await create_schedule(
            session,
            kind=b.kind,
            project=b.project,
            cron=b.cron,
            campaign_id=b.campaign_id,
            timezone=b.timezone,
            enabled=b.enabled,
            grace_seconds=b.grace_seconds,
            params=b.params,
            by=_by(call),
            now=request.app[keys.CLOCK](),
            known_kinds=_kinds(),
        )
    await _changed(request)
    assert row.id is not None
    return await _view(request, row.id, status=201)


@SCHEDULE_API.op(
    "GET", "/api/schedules/{schedule_id}", role="reader", summary="Show a schedule", tag="schedules"
)
async def get_schedule_op(request: web.Request, call: Call) -> web.StreamResponse:
    """One schedule with its next fire times and its recent change log."""
    return await _view(request, _id(call))


@SCHEDULE_API.op(
    "PATCH",
    "/api/schedules/{schedule_id}",
    role="admin",
    summary="Change a schedule",
    tag="schedules",
    body=SchedulePatch,
)
async def patch_schedule_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Change some fields; the whole result is validated before anything is stored."""
    sid = _id(call)
    changes = call.body.model_dump(exclude_unset=True)
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        if changes.get("project") is not None:
            await visible_project(session, call.grants, changes["project"])
        await update_schedule(
            session, sid, changes=changes, by=_by(call), now=request.app[keys.CLOCK](), known_kinds=_kinds()
        )
    await _changed(request)
    return await _view(request, sid)


@SCHEDULE_API.op(
    "DELETE", "/api/schedules/{schedule_id}", role="admin", summary="Remove a schedule", tag="schedules"
)
async def delete_schedule_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Remove (its change log and runs are kept)."""
    sid = _id(call)
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await remove_schedule(session, sid, by=_by(call), now=request.app[keys.CLOCK]())
    await _changed(request)
    return ok({"id": sid, "removed": True})


async def _toggle(request: web.Request, call: Call, enabled: bool) -> web.StreamResponse:
    sid = _id(call)
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await set_enabled(session, sid, enabled, by=_by(call), now=request.app[keys.CLOCK]())
    await _changed(request)
    return await _view(request, sid)


@SCHEDULE_API.op(
    "POST", "/api/schedules/{schedule_id}/pause", role="admin", summary="Pause a schedule", tag="schedules"
)
async def pause_schedule_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Stop firing until resumed (fires while paused are not caught up later)."""
    return await _toggle(request, call, False)


@SCHEDULE_API.op(
    "POST", "/api/schedules/{schedule_id}/resume", role="admin", summary="Resume a schedule", tag="schedules"
)
async def resume_schedule_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Fire again from the next cron time."""
    return await _toggle(request, call, True)


@SCHEDULE_API.op(
    "POST",
    "/api/schedules/{schedule_id}/run-now",
    role="admin",
    summary="Run a schedule now",
    tag="schedules",
    success=202,
)
async def run_now_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Queue an immediate run; the run's status is under ``/runs``."""
    sid = _id(call)
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        run_id = await request_run(session, sid, now=request.app[keys.CLOCK]())
    await _changed(request)
    return ok({"schedule_id": sid, "run_id": run_id, "status": "requested"}, status=202)


@SCHEDULE_API.op(
    "GET", "/api/schedules/{schedule_id}/runs", role="reader", summary="Runs of a schedule", tag="schedules"
)
async def runs_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Newest first: fire time, status (running | ok | failed | missed | requested), error, result."""
    sid = _id(call)
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
    except ValueError:
        raise ApiError(
            400, "invalid_input", "limit 应为整数", "limit must be an integer", where="query.limit"
        ) from None
    async with request.app[keys.SESSIONMAKER]() as session, session.begin():
        await get_schedule(session, sid)
        runs = await list_runs(session, sid, limit=limit)
    return ok([run_json(r) for r in runs])


def setup_schedule_routes(app: web.Application) -> None:
    """Add the schedule operations to ``app`` (idempotent per app)."""
    for op in SCHEDULE_API.operations:
        app.router.add_route(op.method, op.path, wrap(op))
