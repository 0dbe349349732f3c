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

import functools
import re
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from aiohttp import web
from pydantic import (
    AfterValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    RootModel,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from bot import keys
from bot.api.common import CODE_PATTERN, Body, Call, Line, Registry, map_schema, ok, union_tags, wrap
from bot.errors import ApiError
from store.access import visible_project
from store.cron import CronError, cron_pattern, validate_cron
from store.db import transaction
from store.errors import Invalid
from store.schedules import (
    DEVIATION_PATTERN,
    MAX_GRACE_SECONDS,
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


class TimezoneName(str):
    """An IANA timezone name this server knows; published as the enum of those names."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            _known_zone, core_schema.str_schema(max_length=64)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"type": "string", "enum": sorted(_zones())}


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_zone(value: str) -> str:
    if value not in _zones():
        raise PydanticCustomError(
            "timezone",
            "未知时区（应为 IANA 名称，如 Asia/Shanghai）",
            {
                "zh": "未知时区（应为 IANA 名称，如 Asia/Shanghai）",
                "en": "unknown timezone (use an IANA name such as Asia/Shanghai)",
            },
        )
    return value


#: A 5-field cron expression, exactly as ``store.cron.validate_cron`` accepts it.
def _cron(value: str) -> str:
    try:
        validate_cron(value)
    except CronError as exc:
        raise PydanticCustomError("cron", exc.en, {"zh": exc.zh, "en": exc.en}) from None
    return value


@functools.cache
def _cron_schema() -> dict[str, Any]:
    return {"type": "string", "maxLength": 100, "pattern": cron_pattern()}


class _CronJsonSchema:
    """Publishes :func:`store.cron.cron_pattern` (built on first use, not at import)."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return dict(_cron_schema())


#: A 5-field cron expression: checked by ``store.cron.validate_cron`` (messages name the field)
#: and published as the regular expression that accepts exactly the same expressions.
Cron = Annotated[str, StringConstraints(max_length=100), AfterValidator(_cron), _CronJsonSchema()]
ProjectCode = Annotated[str, StringConstraints(max_length=64, pattern=CODE_PATTERN)]
Grace = Annotated[int, Field(ge=0, le=MAX_GRACE_SECONDS)]
_ENV_KEY = r"^[a-z][a-z0-9_]{0,59}_env$"


def _env_key(value: str) -> str:
    if not re.fullmatch(_ENV_KEY, value):
        zh = f'渠道配置 {value[:40]!r} 不是 *_env 引用：密钥不得直接写入，请改用 名称_env = "环境变量名"'
        en = f'channel config {value[:40]!r} is not an *_env reference: never write a secret, use name_env = "ENV_VAR"'
        raise PydanticCustomError("channel_secret_inline", en, {"zh": zh, "en": en})
    return value


#: A config key naming an environment variable (``key_env``); the pattern is published and checked.
EnvKey = Annotated[
    str, AfterValidator(_env_key), WithJsonSchema({"type": "string", "pattern": _ENV_KEY, "maxLength": 64})
]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Z_][A-Z0-9_]*$")]
HHMM = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class _EndpointBase(Body):
    """A coordinator chat. Secrets are named, never written: ``config`` holds only ``*_env``
    keys whose values are environment variable names."""

    name: Line(200) = ""  # type: ignore[valid-type]
    config: Annotated[
        dict[EnvKey, EnvName],
        Field(max_length=20),
        map_schema(
            _ENV_KEY,
            {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^[A-Z_][A-Z0-9_]*$"},
            20,
        ),
    ] = Field(default_factory=dict)


class EmailEndpoint(_EndpointBase):
    kind: Literal["email"]
    address: Annotated[
        str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*@[^\x00-\x1f\x7f]*$")
    ]


class WebhookEndpoint(_EndpointBase):
    kind: Literal["webhook"]
    address: Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://[^\x00-\x1f\x7f]*$")]


class ChatEndpoint(_EndpointBase):
    kind: Literal["wecom", "dingtalk", "feishu", "telegram", "slack", "console"]
    address: Line(500) = ""  # type: ignore[valid-type]


Endpoint = Annotated[EmailEndpoint | WebhookEndpoint | ChatEndpoint, Field(discriminator="kind")]
# pydantic puts the union member's tag into error locations; error paths leave it out.
union_tags.update({"email", "webhook", "wecom", "dingtalk", "feishu", "telegram", "slack", "console"})
union_tags.update({"launch", "remind", "close", "recompute", "summarise"})


class ScheduleParams(Body):
    """What summaries and reminders use; see ``store.schedules.check_params``."""

    endpoints: list[Endpoint] | None = Field(default=None, max_length=20)
    quiet_hours: list[HHMM] | None = Field(default=None, min_length=2, max_length=2)
    first_n: int | None = Field(default=None, ge=1, le=200)
    report_days: int | None = Field(default=None, ge=1, le=90)
    deviation_threshold: Annotated[str, StringConstraints(pattern=DEVIATION_PATTERN)] | None = None
    note: Line(500) | None = None  # type: ignore[valid-type]


class _ScheduleFields(Body):
    project: ProjectCode
    cron: Cron
    timezone: TimezoneName | None = None
    enabled: bool = True
    grace_seconds: Grace = 3600
    params: ScheduleParams | None = None


class CampaignSchedule(_ScheduleFields):
    """launch / remind / close act on one campaign of the project."""

    kind: Literal["launch", "remind", "close"]
    campaign_id: int = Field(ge=1, le=2**31 - 1)


class ProjectSchedule(_ScheduleFields):
    """recompute / summarise act on the project (no campaign)."""

    kind: Literal["recompute", "summarise"]
    campaign_id: None = None


class ScheduleIn(RootModel[Annotated[CampaignSchedule | ProjectSchedule, Field(discriminator="kind")]]):
    """A new schedule: its kind decides whether ``campaign_id`` is required or absent."""


class SchedulePatch(Body):
    """Only the fields sent change (none null except ``campaign_id`` and ``params``); the whole
    result is then validated, and a result that conflicts with what is stored (a launch without
    a campaign, a webhook secret this server lacks) is a 409."""

    kind: Literal["launch", "remind", "close", "recompute", "summarise"] = None  # type: ignore[assignment]
    project: ProjectCode = None  # type: ignore[assignment]
    cron: Cron = None  # type: ignore[assignment]
    campaign_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    timezone: TimezoneName = None  # type: ignore[assignment]
    enabled: bool = None  # type: ignore[assignment]
    grace_seconds: Grace = None  # type: ignore[assignment]
    params: ScheduleParams | None = None


class ScheduleQuery(Body):
    project: ProjectCode | None = None


class RunsQuery(Body):
    limit: int = Field(default=50, ge=1, le=500)


def _params(params: ScheduleParams | None) -> dict[str, Any] | None:
    return None if params is None else params.model_dump(exclude_none=True)


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


@SCHEDULE_API.op(
    "GET", "/api/schedules", role="reader", summary="List schedules", tag="schedules", query=ScheduleQuery
)
async def list_schedules_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Live schedules, each with its next five fire times in its timezone. ``?project=CODE`` filters."""
    project = call.query.project
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
    errors=(404, 409),
)
async def create_schedule_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Create a schedule; the timezone defaults to the project's."""
    b = call.body.root
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
            params=_params(b.params),
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
    errors=(409,),
)
async def patch_schedule_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Change some fields; the whole result is validated before anything is stored."""
    sid = _id(call)
    changes = call.body.model_dump(exclude_unset=True)
    if "params" in changes:
        changes["params"] = _params(call.body.params)
    if changes.get("project") is not None:
        async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
            await visible_project(session, call.grants, changes["project"])
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            await update_schedule(
                session,
                sid,
                changes=changes,
                by=_by(call),
                now=request.app[keys.CLOCK](),
                known_kinds=_kinds(),
            )
    except Invalid as exc:
        # Every field was valid on its own: what is wrong is the combination with the stored one.
        raise ApiError(409, "conflict", exc.zh, exc.en, where=exc.where) from None
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
    "GET",
    "/api/schedules/{schedule_id}/runs",
    role="reader",
    summary="Runs of a schedule",
    tag="schedules",
    query=RunsQuery,
)
async def runs_op(request: web.Request, call: Call) -> web.StreamResponse:
    """Newest first: fire time, status (running | ok | failed | missed | requested), error, result."""
    sid = _id(call)
    limit = call.query.limit
    async with request.app[keys.SESSIONMAKER]() as session, session.begin():
        await get_schedule(session, sid)
        runs = await list_runs(session, sid, limit=limit)
    return ok([run_json(r) for r in runs])


def setup_schedule_routes(app: web.Application) -> None:
    """Add the schedule operations to ``app`` (idempotent per app)."""
    for op in SCHEDULE_API.operations:
        app.router.add_route(op.method, op.path, wrap(op))
