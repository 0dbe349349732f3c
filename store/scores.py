"""Score snapshots and manual overrides (history kept; caller owns the transaction)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store import lite
from store.errors import Conflict, Invalid, NotFound
from store.lite import ActiveOverride
from store.models import Project, ScoreOverride, ScoreSnapshot


async def active_overrides(session: AsyncSession, project_id: int) -> dict[str, ActiveOverride]:
    """The override in force per indicator key: the newest row, unless it withdrew (inactive).
    :data:`store.lite.OVERRIDES_SQL` folded by :func:`store.lite.active_overrides_of`, as
    ``jixiao score`` reads them without the ORM."""
    table = ScoreOverride.__table__  # type: ignore[attr-defined]
    stmt = text(lite.OVERRIDES_SQL).columns(*(table.c[c] for c in lite.OVERRIDE_COLUMNS))
    rows = (await session.execute(stmt, {"pid": project_id})).mappings().all()
    return lite.active_overrides_of([dict(r) for r in rows])


async def set_override(
    session: AsyncSession,
    project_id: int,
    indicator_key: str,
    *,
    score: Decimal | None,
    reason: str,
    by: str,
    now: datetime,
) -> ScoreOverride:
    """Record an evaluator's judgement (``score=None`` withdraws the override). Append-only."""
    row = ScoreOverride(
        project_id=project_id,
        indicator_key=indicator_key,
        score=score,
        reason=reason,
        by=by,
        active=score is not None,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def override_history(session: AsyncSession, project_id: int) -> list[ScoreOverride]:
    stmt = select(ScoreOverride).where(ScoreOverride.project_id == project_id).order_by(ScoreOverride.id)
    return list((await session.execute(stmt)).scalars())


async def latest_snapshot(session: AsyncSession, project_id: int) -> ScoreSnapshot | None:
    """The newest snapshot: :func:`store.lite.latest_snapshot_sql`, the order ``jixiao score``
    also reads the latest fingerprint in without the ORM."""
    table = ScoreSnapshot.__table__  # type: ignore[attr-defined]
    stmt = text(lite.latest_snapshot_sql()).columns(*(table.c[c] for c in lite.SNAPSHOT_COLUMNS))
    result = await session.execute(select(ScoreSnapshot).from_statement(stmt), {"pid": project_id})
    return result.scalar_one_or_none()


async def get_snapshot(session: AsyncSession, snapshot_id: int) -> ScoreSnapshot:
    row = await session.get(ScoreSnapshot, snapshot_id)
    if row is None:
        raise NotFound(f"评分快照不存在：{snapshot_id}", f"no such score snapshot: {snapshot_id}")
    return row


async def list_snapshots(session: AsyncSession, project_id: int, *, limit: int = 100) -> list[ScoreSnapshot]:
    """Newest first."""
    stmt = (
        select(ScoreSnapshot)
        .where(ScoreSnapshot.project_id == project_id)
        .order_by(ScoreSnapshot.computed_at.desc(), ScoreSnapshot.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def save_snapshot(
    session: AsyncSession,
    project_id: int,
    *,
    definition_version: int,
    total: Decimal,
    grade: str,
    fingerprint: str,
    table: dict[str, Any],
    trigger: str,
    now: datetime,
) -> ScoreSnapshot:
    """A new snapshot: :data:`store.lite.SNAPSHOT_INSERT_SQL`, the statement ``jixiao score``
    also runs on SQLite without the ORM (values typed by the table's columns here)."""
    columns = ScoreSnapshot.__table__.c  # type: ignore[attr-defined]
    stmt = text(lite.SNAPSHOT_INSERT_SQL + " RETURNING id").bindparams(
        *(bindparam(c, type_=columns[c].type) for c in lite.SNAPSHOT_INSERT_COLUMNS)
    )
    values = {"project_id": project_id, "definition_version": definition_version, "computed_at": now,
              "total": total, "grade": grade, "fingerprint": fingerprint, "trigger": trigger, "table": table}  # fmt: skip
    new_id = (await session.execute(stmt, values)).scalar_one()
    row = await session.get(ScoreSnapshot, new_id)
    assert row is not None
    return row


async def indicator_weight(session: AsyncSession, project: Project, key: str) -> Decimal:
    """The 分值 of indicator ``key`` in the project's current definition; NotFound otherwise."""
    from store.projects import get_definition

    defn = await get_definition(session, project)
    for indicator in defn.indicators:
        if indicator.key == key:
            return indicator.weight
    raise NotFound(f"指标不存在：{key}", f"no such indicator: {key}", where="indicator_key")


async def override_indicator(
    session: AsyncSession, project: Project, key: str, *, score: Decimal, reason: str, by: str, now: datetime
) -> ScoreOverride:
    """Set an evaluator's score (0 … the indicator's 分值, at most 2 decimals) with a reason —
    the one rule the API, the console and the CLI apply."""
    weight = await indicator_weight(session, project, key)
    reason = reason.strip()
    if not reason:
        raise Invalid("须写明理由", "a reason is required", where="reason")
    if score < 0:
        raise Invalid(f"score：{score} 不能为负", f"score: {score} must not be negative", where="score")
    if score > weight:
        # well-formed, but above this indicator's 分值 (the project's data): a conflict
        raise Conflict(
            f"score：{score} 超过指标 {key} 的分值 {weight}",
            f"score: {score} exceeds indicator {key}'s weight {weight}",
            where="score",
        )
    if score.as_tuple().exponent < -2:  # type: ignore[operator]
        raise Invalid("score：最多两位小数", "score: at most 2 decimals", where="score")
    assert project.id is not None
    return await set_override(session, project.id, key, score=score, reason=reason, by=by, now=now)


async def withdraw_indicator_override(
    session: AsyncSession, project: Project, key: str, *, reason: str, by: str, now: datetime
) -> ScoreOverride:
    """Withdraw the indicator's active override (NotFound when there is none)."""
    await indicator_weight(session, project, key)
    assert project.id is not None
    if key not in await active_overrides(session, project.id):
        raise NotFound(
            f"指标 {key} 没有生效中的人工评分",
            f"indicator {key} has no active override",
            where="indicator_key",
        )
    if not reason.strip():
        raise Invalid("须写明理由", "a reason is required", where="reason")
    return await set_override(session, project.id, key, score=None, reason=reason.strip(), by=by, now=now)
