"""Recompute a project's indicator table from what is stored, and keep the snapshot.

Reads happen in one short transaction, scoring runs off the event loop (``asyncio.to_thread``:
pandas and Decimal work would otherwise block aiohttp), and the snapshot is written in a second
short transaction. A snapshot is saved only when the table or the facts changed, unless forced.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from config.definition import ProjectDefinition
from scheduler.computed import Computed, as_overrides, score_inputs
from scoring.model import Override
from store.db import SessionMaker
from store.facts import FactInputs, ensure_statistics, load_fact_inputs
from store.lite import keeps_snapshot
from store.models import Project, ScoreSnapshot
from store.projects import get_definition, get_project
from store.scores import active_overrides, latest_snapshot, save_snapshot


@dataclass(frozen=True)
class RecomputeResult:
    computed: Computed
    snapshot: ScoreSnapshot
    changed: bool


async def _load(
    session: AsyncSession, code: str
) -> tuple[Project, ProjectDefinition, FactInputs, dict[str, Override]]:
    project = await get_project(session, code)
    defn = await get_definition(session, project)
    inputs = await load_fact_inputs(session, project)
    overrides = as_overrides(await active_overrides(session, project.id))  # type: ignore[arg-type]
    return project, defn, inputs, overrides


async def compute(session: AsyncSession, code: str) -> Computed:
    """Load definition, facts and overrides for ``code`` and score them (off the event loop)."""
    project, defn, inputs, overrides = await _load(session, code)
    return await asyncio.to_thread(score_inputs, project, defn, inputs, overrides, project.current_version)


async def recompute(
    sessionmaker: SessionMaker, code: str, *, now: datetime, trigger: str = "manual", force: bool = False
) -> RecomputeResult:
    """Compute ``code``'s table and save a snapshot when it differs from the latest one."""
    async with sessionmaker() as session:
        async with session.begin():
            await ensure_statistics(session)  # bulk writes since the last analysis: fresh plans
        async with session.begin():
            project, defn, inputs, overrides = await _load(session, code)
        computed = await asyncio.to_thread(
            score_inputs, project, defn, inputs, overrides, project.current_version
        )
        return await keep_snapshot(session, computed, now=now, trigger=trigger, force=force)


async def keep_snapshot(
    session: AsyncSession, computed: Computed, *, now: datetime, trigger: str, force: bool = False
) -> RecomputeResult:
    """Save ``computed`` as a snapshot unless the latest one has its fingerprint (or ``force``),
    in one transaction of ``session`` (:func:`store.lite.keeps_snapshot`, the rule
    ``jixiao score`` also applies on SQLite without the ORM)."""
    project = computed.project
    async with session.begin():
        latest = await latest_snapshot(session, project.id)
        if latest is not None and not keeps_snapshot(latest.fingerprint, computed.fingerprint, force=force):
            return RecomputeResult(computed, latest, changed=False)
        snap = await save_snapshot(
            session,
            project.id,
            definition_version=computed.version,
            total=computed.table.total,
            grade=computed.table.grade,
            fingerprint=computed.fingerprint,
            table=computed.document,
            trigger=trigger,
            now=now,
        )
        return RecomputeResult(computed, snap, changed=True)
