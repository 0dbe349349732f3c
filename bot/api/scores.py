"""Scores: latest snapshot, history, recompute now, and manual overrides with a reason.

Scores are exact decimals rendered as strings (``"97.50"``); an override must lie between 0 and
the indicator's 分值 and needs a written reason (it is kept forever, append-only).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, StringConstraints

from bot import keys
from bot.api.common import API, Body, Call, Out, Para, iso, ok
from bot.errors import ApiError
from store.db import transaction
from store.models import ScoreSnapshot
from store.projects import get_project
from store.scores import (
    active_overrides,
    latest_snapshot,
    list_snapshots,
    override_indicator,
    withdraw_indicator_override,
)

Score = Decimal


class SnapshotSummaryOut(Out):
    id: int
    computed_at: str
    definition_version: int
    total: str
    grade: str
    trigger: str


class SnapshotOut(SnapshotSummaryOut):
    table: dict[str, Any]


class RecomputeOut(Out):
    changed: bool
    snapshot: SnapshotSummaryOut


class OverrideIn(Body):
    """``score`` in points as text (≤ 2 decimals, 0 … the indicator's 分值: above it is a 409,
    as the 分值 is the project's data); ``reason`` is required."""

    score: Annotated[
        str, StringConstraints(max_length=7, pattern=r"^(1000(\.0{1,2})?|[0-9]{1,3}(\.[0-9]{1,2})?)$")
    ]
    reason: Para(2000, 1)  # type: ignore[valid-type]


class OverrideWithdrawIn(Body):
    reason: Para(2000, 1)  # type: ignore[valid-type]


class OverrideOut(Out):
    indicator: str
    score: str | None
    active: bool
    reason: str
    by: str
    created_at: str


class HistoryQuery(Body):
    limit: int = Field(default=100, ge=1, le=1000)


def summary_out(s: ScoreSnapshot) -> SnapshotSummaryOut:
    assert s.id is not None
    return SnapshotSummaryOut(
        id=s.id,
        computed_at=iso(s.computed_at) or "",
        definition_version=s.definition_version,
        total=str(s.total),
        grade=s.grade,
        trigger=s.trigger,
    )


@API.op("GET", "/api/projects/{code}/scores", role="reader", tag="scores", summary="最新评分表 / latest score table",
        data=SnapshotOut, errors=(404,))  # fmt: skip
async def latest_score(request: web.Request, call: Call) -> web.Response:
    """The newest snapshot with its full indicator table (404 until the first computation)."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        snap = await latest_snapshot(session, project.id)  # type: ignore[arg-type]
    if snap is None:
        raise ApiError(404, "no_snapshot", f"项目 {project.code} 尚未计算评分（可 POST scores/recompute）",
                       f"project {project.code} has no score yet (POST scores/recompute)", where="scores")  # fmt: skip
    return ok(SnapshotOut(**summary_out(snap).model_dump(), table=dict(snap.table or {})))


@API.op("GET", "/api/projects/{code}/scores/history", role="reader", tag="scores", summary="评分历史 / score history",
        query=HistoryQuery, data={"type": "array", "items": {"$ref": "#/components/schemas/SnapshotSummaryOut"}},
        errors=(400, 404))  # fmt: skip
async def score_history(request: web.Request, call: Call) -> web.Response:
    """Total, grade and time of each snapshot, newest first."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        snaps = await list_snapshots(session, project.id, limit=call.query.limit)  # type: ignore[arg-type]
    return ok([summary_out(s) for s in snaps])


@API.op("POST", "/api/projects/{code}/scores/recompute", role="admin", tag="scores", summary="立即重新计算 / recompute now",
        data=RecomputeOut, errors=(404, 503))  # fmt: skip
async def recompute_scores(request: web.Request, call: Call) -> web.Response:
    """Score the project now; a snapshot is saved only when the table changed."""
    hook = request.app[keys.RUN_NOW].get("recompute")
    if hook is None:
        raise ApiError(503, "recompute_unavailable", "本服务实例未接入重新计算（请通过 jixiao serve 运行）",
                       "recompute is not wired into this app instance (run it through jixiao serve)")  # fmt: skip
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
    result = await hook(project.code, now=request.app[keys.CLOCK](), trigger="api")
    return ok(RecomputeOut(changed=bool(result.changed), snapshot=summary_out(result.snapshot)))


@API.op("GET", "/api/projects/{code}/overrides", role="reader", tag="scores", summary="人工调整（生效中）/ active overrides",
        data={"type": "array", "items": {"$ref": "#/components/schemas/OverrideOut"}}, errors=(404,))  # fmt: skip
async def list_overrides(request: web.Request, call: Call) -> web.Response:
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        current = await active_overrides(session, project.id)  # type: ignore[arg-type]
    return ok(
        [
            OverrideOut(
                indicator=k,
                score=str(o.score),
                active=True,
                reason=o.reason,
                by=o.by,
                created_at=iso(o.created_at) or "",
            )  # fmt: skip
            for k, o in sorted(current.items())
        ]
    )


@API.op("POST", "/api/projects/{code}/overrides/{indicator_key}", role="admin", tag="scores",
        summary="设置人工评分（须写明理由）/ set an override", body=OverrideIn, data=OverrideOut, success=201,
        errors=(400, 404, 409, 413, 415))  # fmt: skip
async def set_override_(request: web.Request, call: Call) -> web.Response:
    """The evaluator's score for one indicator (0 … its 分值), with the reason; takes effect at
    the next recompute."""
    b: OverrideIn = call.body
    key = call.path["indicator_key"]
    assert call.token is not None
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        row = await override_indicator(
            session, project, key, score=Decimal(b.score), reason=b.reason,
            by=f"api:{call.token.name}", now=request.app[keys.CLOCK](),
        )  # fmt: skip
    return ok(_override_out(row), status=201)


@API.op("DELETE", "/api/projects/{code}/overrides/{indicator_key}", role="admin", tag="scores",
        summary="撤销人工评分（须写明理由）/ withdraw an override", body=OverrideWithdrawIn, data=OverrideOut,
        errors=(400, 404, 413, 415))  # fmt: skip
async def withdraw_override(request: web.Request, call: Call) -> web.Response:
    """Withdraw the indicator's override (recorded with its reason; history is kept)."""
    key = call.path["indicator_key"]
    assert call.token is not None
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        row = await withdraw_indicator_override(
            session, project, key, reason=call.body.reason,
            by=f"api:{call.token.name}", now=request.app[keys.CLOCK](),
        )  # fmt: skip
    return ok(_override_out(row))


def _override_out(row: Any) -> OverrideOut:
    return OverrideOut(
        indicator=row.indicator_key,
        score=str(row.score) if row.score is not None else None,
        active=row.active,
        reason=row.reason,
        by=row.by,
        created_at=iso(row.created_at) or "",
    )
