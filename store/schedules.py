"""Schedules as data: admin-set rows, their change log, and the claimed runs.

A schedule is ``kind`` (launch | remind | close | recompute | summarise) on a project (and a
campaign for launch/remind/close), a 5-field ``cron`` in an IANA ``timezone``, ``enabled``,
``grace_seconds`` (how late a missed fire may still run) and ``params``. Every write bumps
``version`` and ``updated_at`` (the scheduler polls them) and appends a :class:`ScheduleChange`
(who, when, before → after). "Remove" is a soft delete so the audit and run history keep their
foreign keys.

Each fire is claimed by inserting ``ScheduleRun(schedule_id, fire_time)`` under a unique
constraint with ``ON CONFLICT DO NOTHING RETURNING``: exactly one replica gets the row back.

Functions take the session first and never commit (the caller owns the transaction).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from config.definition import CHANNEL_KINDS, ChannelRef
from store import lite
from store.cron import CronError, validate_cron, validate_timezone
from store.errors import Conflict, Invalid, NotFound
from store.models import Campaign, Project, Schedule, ScheduleChange, ScheduleRun

# re-exported: callers (API, console, CLI) import the view from here too
from store.schedule_view import schedule_json, shown_params, shown_snapshot, snapshot  # noqa: F401

KINDS: tuple[str, ...] = ("launch", "remind", "close", "recompute", "summarise")
CAMPAIGN_KINDS = frozenset({"launch", "remind", "close"})
#: Grace period bounds (seconds): 0 = only on time, up to 7 days late.
MAX_GRACE_SECONDS = 7 * 24 * 3600
#: Fields an admin may set; everything else is derived.
EDITABLE = ("kind", "project", "campaign_id", "cron", "timezone", "enabled", "grace_seconds", "params")
#: ``deviation_threshold``: a fraction strictly between 0 and 1 as text, at most 4 decimals.
DEVIATION_PATTERN = r"^0\.([1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|00[1-9][0-9]?|000[1-9])$"
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_PARAM_KEYS = frozenset({"endpoints", "quiet_hours", "first_n", "report_days", "deviation_threshold", "note"})


def _invalid(field: str, zh: str, en: str) -> Invalid:
    return Invalid(zh, en, where=field)


def check_cron(cron: Any) -> str:
    """The normalised expression, or :class:`Invalid` naming the field and what is wrong."""
    if not isinstance(cron, str):
        raise _invalid("cron", "cron 应为字符串", "cron must be a string")
    try:
        validate_cron(cron)
    except CronError as exc:
        raise Invalid(exc.zh, exc.en, where="cron") from exc
    return " ".join(cron.split())


def check_timezone(name: Any) -> str:
    try:
        validate_timezone(str(name))
    except CronError as exc:
        raise Invalid(exc.zh, exc.en, where="timezone") from exc
    return str(name)


def check_params(params: Any, *, known_kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Validate ``params``.

    - ``endpoints``: list of ``{kind, address, name?, config?}`` (coordinator chats for summaries);
    - ``quiet_hours``: ``["HH:MM", "HH:MM"]`` in the schedule's timezone (may wrap midnight);
    - ``first_n``: how many unit names a summary lists per section (1–200, default 10);
    - ``report_days``: validity of the signed report link (1–90, default 14);
    - ``deviation_threshold``: 双监控 gap as a fraction string, e.g. ``"0.10"`` (default 10 pp).
    """
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise _invalid("params", "params 应为对象", "params must be an object")
    unknown = set(params) - _PARAM_KEYS
    if unknown:
        names = ", ".join(sorted(unknown))
        raise _invalid("params", f"未知参数：{names}", f"unknown params: {names}")
    out = dict(params)
    eps = out.get("endpoints")
    if eps is not None:
        if not isinstance(eps, list):
            raise _invalid("params.endpoints", "endpoints 应为列表", "endpoints must be a list")
        clean = []
        for i, ep in enumerate(eps):
            where = f"params.endpoints[{i}]"
            if not isinstance(ep, dict) or not isinstance(ep.get("kind"), str) or not ep.get("kind"):
                raise _invalid(where, "每个端点需有 kind", "each endpoint needs a kind")
            if known_kinds is not None and ep["kind"] not in known_kinds:
                raise _invalid(
                    f"{where}.kind",
                    f"未知渠道 {ep['kind']!r}，可选：{', '.join(known_kinds)}",
                    f"unknown channel kind {ep['kind']!r}; known: {', '.join(known_kinds)}",
                )
            address = ep.get("address", "")
            if not isinstance(address, str) or len(address) > 500:
                raise _invalid(
                    f"{where}.address", "address 应为不超过500字的字符串", "address must be a string ≤ 500"
                )
            config = ep.get("config") or {}
            if not isinstance(config, dict) or not all(isinstance(v, str) for v in config.values()):
                raise _invalid(
                    f"{where}.config", "config 应为字符串值的对象", "config must be an object of strings"
                )
            _check_channel(where, ep["kind"], address, config)
            clean.append(
                {
                    "kind": ep["kind"],
                    "address": address,
                    "name": str(ep.get("name", ""))[:200],
                    "config": config,
                }
            )
        out["endpoints"] = clean
    quiet = out.get("quiet_hours")
    if quiet is not None and (
        not isinstance(quiet, list)
        or len(quiet) != 2
        or not all(isinstance(q, str) and _HHMM.match(q) for q in quiet)
    ):
        raise _invalid(
            "params.quiet_hours",
            'quiet_hours 应为 ["HH:MM", "HH:MM"]',
            'quiet_hours must be ["HH:MM", "HH:MM"]',
        )
    for key, lo, hi in (("first_n", 1, 200), ("report_days", 1, 90)):
        v = out.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
            raise _invalid(
                f"params.{key}", f"{key} 应为 {lo}–{hi} 的整数", f"{key} must be an integer {lo}–{hi}"
            )
    dev = out.get("deviation_threshold")
    if dev is not None:
        if not isinstance(dev, str) or not re.fullmatch(DEVIATION_PATTERN, dev):
            raise _invalid(
                "params.deviation_threshold",
                'deviation_threshold 应为 0 到 1 之间、至多4位小数的文本（如 "0.10"）',
                'deviation_threshold must be text for a fraction between 0 and 1, at most 4 decimals (e.g. "0.10")',
            )
        out["deviation_threshold"] = str(dev)
    return out


def _check_channel(where: str, kind: str, address: str, config: dict[str, str]) -> None:
    """The channel rules of project files, applied to a coordinator endpoint: no secret written
    inline (name an environment variable with ``*_env``), env names well-formed, a webhook's
    secret variable set. One rule: :class:`config.definition.ChannelRef`."""
    if kind not in CHANNEL_KINDS:
        return  # adapters this build knows but project files do not (checked by known_kinds)
    try:
        ChannelRef(kind=kind, address=address, config=config)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx = err.get("ctx") or {}
        en = str(ctx.get("en", err["msg"]))
        if err["type"] == "channel_secret_missing":
            # Well-formed, but this server's environment lacks the variable: a state conflict.
            raise Conflict(str(ctx.get("zh", err["msg"])), en, where=f"{where}.config") from None
        loc = err.get("loc") or ("",)
        part = "config" if "channel config" in en or loc[0] == "config" else "address"
        raise _invalid(f"{where}.{part}", str(ctx.get("zh", err["msg"])), en) from None


def check_grace(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GRACE_SECONDS:
        raise _invalid(
            "grace_seconds",
            f"grace_seconds 应为 0–{MAX_GRACE_SECONDS} 的整数（秒）",
            f"grace_seconds must be an integer 0–{MAX_GRACE_SECONDS} (seconds)",
        )
    return value


async def _project(session: AsyncSession, code: Any) -> Project:
    if not isinstance(code, str) or not code:
        raise _invalid("project", "缺少项目代码", "project code is required")
    project = (await session.execute(select(Project).where(Project.code == code))).scalar_one_or_none()
    if project is None:
        raise NotFound(f"项目不存在：{code}", f"no such project: {code}", where="project")
    return project


async def _check_campaign(session: AsyncSession, kind: str, project_id: int, campaign_id: Any) -> int | None:
    if kind not in CAMPAIGN_KINDS:
        if campaign_id is not None:
            raise _invalid("campaign_id", f"{kind} 计划不关联活动", f"a {kind} schedule takes no campaign")
        return None
    if isinstance(campaign_id, bool) or not isinstance(campaign_id, int):
        raise _invalid(
            "campaign_id",
            f"{kind} 计划需要 campaign_id（整数）",
            f"a {kind} schedule needs campaign_id (integer)",
        )
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None or campaign.project_id != project_id:
        raise NotFound(
            f"该项目下没有活动 {campaign_id}",
            f"no campaign {campaign_id} in this project",
            where="campaign_id",
        )
    return campaign_id


async def _record(
    session: AsyncSession,
    schedule: Schedule,
    *,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    by: str,
    now: datetime,
) -> None:
    session.add(
        ScheduleChange(
            schedule_id=schedule.id, by=by[:100], at=now, action=action, before=before, after=after
        )
    )
    await session.flush()
    await notify_schedulers(session)


#: PostgreSQL channel on which schedule changes and "run now" requests are announced.
NOTIFY_CHANNEL = "jixiao_schedules"


async def notify_schedulers(session: AsyncSession) -> None:
    """Tell every replica's scheduler to re-sync when this transaction commits (PostgreSQL
    ``NOTIFY``, delivered only on commit, at most once per transaction and payload). SQLite has
    one machine: its schedulers poll."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


async def create_schedule(
    session: AsyncSession,
    *,
    kind: str,
    project: str,
    cron: str,
    campaign_id: int | None = None,
    timezone: str | None = None,
    enabled: bool = True,
    grace_seconds: int = 3600,
    params: dict[str, Any] | None = None,
    by: str,
    now: datetime,
    known_kinds: tuple[str, ...] | None = None,
) -> Schedule:
    """Validate and add a schedule (timezone defaults to the project's). Nothing is written if
    any field is wrong; the error names the field."""
    if kind not in KINDS:
        raise _invalid(
            "kind",
            f"类型 {kind!r} 无效，可选：{', '.join(KINDS)}",
            f"kind {kind!r} is invalid; one of {', '.join(KINDS)}",
        )
    proj = await _project(session, project)
    assert proj.id is not None
    row = Schedule(
        kind=kind,
        project_id=proj.id,
        campaign_id=await _check_campaign(session, kind, proj.id, campaign_id),
        cron=check_cron(cron),
        timezone=check_timezone(timezone or proj.timezone),
        enabled=_check_bool(enabled, "enabled"),
        grace_seconds=check_grace(grace_seconds),
        params=check_params(params, known_kinds=known_kinds),
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    await _record(session, row, action="create", before=None, after=snapshot(row, proj.code), by=by, now=now)
    return row


def _check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(field, f"{field} 应为 true 或 false", f"{field} must be true or false")
    return value


async def find_schedule(session: AsyncSession, schedule_id: int) -> Schedule | None:
    row = await session.get(Schedule, schedule_id)
    return None if row is None or row.deleted_at is not None else row


async def get_schedule(session: AsyncSession, schedule_id: int) -> Schedule:
    row = await find_schedule(session, schedule_id)
    if row is None:
        raise NotFound(f"计划不存在：{schedule_id}", f"no such schedule: {schedule_id}", where="schedule")
    return row


async def list_schedules(
    session: AsyncSession, *, project: str | None = None, enabled_only: bool = False
) -> list[tuple[Schedule, str]]:
    """Live schedules with their project code, oldest first: :func:`store.lite.schedules_sql`,
    the statement the CLI also runs without the ORM."""
    table = Schedule.__table__  # type: ignore[attr-defined]
    sql = text(lite.schedules_sql(project=bool(project), enabled_only=enabled_only))
    params: dict[str, Any] = {}
    if project:
        params["code"] = project
    if enabled_only:
        params["enabled"] = True
        sql = sql.bindparams(bindparam("enabled", type_=table.c.enabled.type))
    stmt = sql.columns(*(table.c[c] for c in lite.SCHEDULE_COLUMNS), Project.__table__.c.code)  # type: ignore[attr-defined]
    orm = select(Schedule, Project.code).from_statement(stmt)
    return [(s, c) for s, c in (await session.execute(orm, params)).all()]


async def project_code(session: AsyncSession, schedule: Schedule) -> str:
    return str(await session.scalar(select(Project.code).where(Project.id == schedule.project_id)))


async def update_schedule(
    session: AsyncSession,
    schedule_id: int,
    *,
    changes: dict[str, Any],
    by: str,
    now: datetime,
    action: str = "update",
    known_kinds: tuple[str, ...] | None = None,
) -> Schedule:
    """Apply ``changes`` (a subset of :data:`EDITABLE`), validated as a whole; bumps the version
    and logs before → after. Unknown fields are an error, not ignored."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise _invalid(sorted(unknown)[0], f"不可修改的字段：{names}", f"fields cannot be set: {names}")
    row = await get_schedule(session, schedule_id)
    code = await project_code(session, row)
    before = snapshot(row, code)
    kind = changes.get("kind", row.kind)
    if kind not in KINDS:
        raise _invalid(
            "kind",
            f"类型 {kind!r} 无效，可选：{', '.join(KINDS)}",
            f"kind {kind!r} is invalid; one of {', '.join(KINDS)}",
        )
    project_id = row.project_id
    if "project" in changes:
        proj = await _project(session, changes["project"])
        assert proj.id is not None
        project_id, code = proj.id, proj.code
    campaign_id = changes.get("campaign_id", row.campaign_id if kind in CAMPAIGN_KINDS else None)
    new = {
        "kind": kind,
        "project_id": project_id,
        "campaign_id": await _check_campaign(session, kind, project_id, campaign_id),
        "cron": check_cron(changes["cron"]) if "cron" in changes else row.cron,
        "timezone": check_timezone(changes["timezone"]) if "timezone" in changes else row.timezone,
        "enabled": _check_bool(changes["enabled"], "enabled") if "enabled" in changes else row.enabled,
        "grace_seconds": check_grace(changes["grace_seconds"])
        if "grace_seconds" in changes
        else row.grace_seconds,
        "params": check_params(changes["params"], known_kinds=known_kinds)
        if "params" in changes
        else row.params,
    }
    if all(getattr(row, k) == v for k, v in new.items()):
        return row  # nothing changed: no version bump, no log line
    for key, value in new.items():
        setattr(row, key, value)
    row.version += 1
    row.updated_at = now
    await session.flush()
    await _record(session, row, action=action, before=before, after=snapshot(row, code), by=by, now=now)
    return row


async def set_enabled(
    session: AsyncSession, schedule_id: int, enabled: bool, *, by: str, now: datetime
) -> Schedule:
    """Pause (False) or resume (True)."""
    return await update_schedule(
        session,
        schedule_id,
        changes={"enabled": enabled},
        by=by,
        now=now,
        action="resume" if enabled else "pause",
    )


async def remove_schedule(session: AsyncSession, schedule_id: int, *, by: str, now: datetime) -> Schedule:
    """Soft-delete: the scheduler drops the job on its next sync; history stays."""
    row = await get_schedule(session, schedule_id)
    before = snapshot(row, await project_code(session, row))
    row.deleted_at = now
    row.enabled = False
    row.version += 1
    row.updated_at = now
    await session.flush()
    await _record(session, row, action="remove", before=before, after=None, by=by, now=now)
    return row


async def list_changes(session: AsyncSession, schedule_id: int) -> list[ScheduleChange]:
    stmt = select(ScheduleChange).where(ScheduleChange.schedule_id == schedule_id).order_by(ScheduleChange.id)
    return list((await session.execute(stmt)).scalars())


async def state_token(session: AsyncSession) -> tuple[int, int, str]:
    """A cheap fingerprint of the schedule table (row count, version sum, latest update): the
    scheduler re-syncs its jobs whenever it changes."""
    count, versions, latest = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Schedule.version), 0), func.max(Schedule.updated_at))
        )
    ).one()
    return int(count), int(versions), str(latest)


# ------------------------------------------------------------------------------------------ runs


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


async def claim_run(
    session: AsyncSession, schedule_id: int, fire_time: datetime, *, now: datetime, status: str = "running"
) -> int | None:
    """Claim one fire. Returns the run id if this caller won, None if someone already had it.

    The unique (schedule_id, fire_time) constraint decides; the insert is atomic on both
    backends, so replicas sharing PostgreSQL (or processes sharing a SQLite file) run a fire once.
    """
    stmt = (
        _insert(session, ScheduleRun)
        .values(
            schedule_id=schedule_id, fire_time=fire_time, status=status, started_at=now, error="", result=None
        )
        .on_conflict_do_nothing(index_elements=["schedule_id", "fire_time"])
        .returning(ScheduleRun.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def record_missed(
    session: AsyncSession, schedule_id: int, fire_time: datetime, *, now: datetime, reason: str
) -> bool:
    """Record a fire that will not run (too late for its grace period). True if newly recorded."""
    run_id = await claim_run(session, schedule_id, fire_time, now=now, status="missed")
    if run_id is None:
        return False
    await session.execute(
        update(ScheduleRun).where(ScheduleRun.id == run_id).values(finished_at=now, error=reason[:4000])
    )
    return True


async def finish_run(
    session: AsyncSession,
    run_id: int,
    *,
    status: str,
    now: datetime,
    error: str = "",
    result: dict[str, Any] | None = None,
) -> None:
    """Mark a claimed run ``ok`` or ``failed`` (error text kept, cut to 4000 chars)."""
    await session.execute(
        update(ScheduleRun)
        .where(ScheduleRun.id == run_id)
        .values(status=status, finished_at=now, error=error[:4000], result=result)
    )


async def request_run(session: AsyncSession, schedule_id: int, *, now: datetime) -> int:
    """Ask for an immediate run (API "run now"): a ``requested`` row that whichever scheduler
    polls next takes over with :func:`take_requested`. Returns the run id."""
    await get_schedule(session, schedule_id)
    run_id = await claim_run(session, schedule_id, now, now=now, status="requested")
    if run_id is None:  # same microsecond twice: the first request stands
        run_id = await session.scalar(
            select(ScheduleRun.id).where(ScheduleRun.schedule_id == schedule_id, ScheduleRun.fire_time == now)
        )
    await notify_schedulers(session)
    return int(run_id)  # type: ignore[arg-type]


async def requested_runs(session: AsyncSession) -> list[ScheduleRun]:
    stmt = select(ScheduleRun).where(ScheduleRun.status == "requested").order_by(ScheduleRun.id)
    return list((await session.execute(stmt)).scalars())


async def take_requested(session: AsyncSession, run_id: int, *, now: datetime) -> bool:
    """Move a requested run to running; True only for the one caller whose update matched."""
    result = await session.execute(
        update(ScheduleRun)
        .where(ScheduleRun.id == run_id, ScheduleRun.status == "requested")
        .values(status="running", started_at=now)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def list_runs(session: AsyncSession, schedule_id: int, *, limit: int = 50) -> list[ScheduleRun]:
    """Newest first."""
    stmt = (
        select(ScheduleRun)
        .where(ScheduleRun.schedule_id == schedule_id)
        .order_by(ScheduleRun.fire_time.desc(), ScheduleRun.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def last_fire_time(session: AsyncSession, schedule_id: int) -> datetime | None:
    """The latest fire time recorded for the schedule (any status)."""
    return await session.scalar(
        select(func.max(ScheduleRun.fire_time)).where(ScheduleRun.schedule_id == schedule_id)
    )


async def previous_result(
    session: AsyncSession, schedule_id: int, *, before: datetime
) -> dict[str, Any] | None:
    """The result of the latest successful run before ``before`` (e.g. the snapshot a summary
    last reported, to compute "what changed")."""
    stmt = (
        select(ScheduleRun.result)
        .where(
            ScheduleRun.schedule_id == schedule_id,
            ScheduleRun.status == "ok",
            ScheduleRun.fire_time < before,
        )
        .order_by(ScheduleRun.fire_time.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def run_json(run: ScheduleRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "schedule_id": run.schedule_id,
        "fire_time": run.fire_time.isoformat(),
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error,
        "result": run.result,
    }
