"""Recompute a project's indicator table from what is stored, and keep the snapshot.

Reads happen in one short transaction, scoring runs off the event loop (``asyncio.to_thread``:
pandas and Decimal work would otherwise block aiohttp), and the snapshot is written in a second
short transaction. A snapshot is saved only when the table or the facts changed, unless forced.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from config.definition import ProjectDefinition
from scoring.engine import score_table
from scoring.facts import funds_statement, satisfaction_fact
from scoring.model import Actual, FundsStatement, Override, ScoreTable
from scoring.money import yuan
from scoring.report import table_json
from store.db import SessionMaker
from store.facts import FactInputs, ensure_statistics, load_fact_inputs
from store.models import Project, ScoreSnapshot
from store.projects import get_definition, get_project
from store.scores import active_overrides, latest_snapshot, save_snapshot


@dataclass(frozen=True)
class Computed:
    """A freshly computed table with what it was computed from."""

    project: Project
    definition: ProjectDefinition
    inputs: FactInputs
    table: ScoreTable
    document: dict[str, Any]
    fingerprint: str


@dataclass(frozen=True)
class RecomputeResult:
    computed: Computed
    snapshot: ScoreSnapshot
    changed: bool


def build_actuals(defn: ProjectDefinition, inputs: FactInputs) -> dict[str, Actual]:
    """Actual per indicator key: computed facts for fact sources, entered values otherwise."""
    return build_facts(defn, inputs)[1]


def build_facts(defn: ProjectDefinition, inputs: FactInputs) -> tuple[FundsStatement, dict[str, Actual]]:
    """The funds statement (declared amounts or the ledger, see ``scoring.facts.funds_statement``)
    and the actual per indicator key."""
    statement, facts = funds_statement(
        inputs.budget_fen,
        inputs.arrivals,
        inputs.disbursed_by_date,
        execution_denominator=defn.execution_denominator,
        declared=defn.declared,
    )
    q = defn.questionnaire
    if q is not None:
        facts["survey.satisfaction"] = satisfaction_fact(
            inputs.satisfaction_counts,
            scale=q.scale,
            satisfied=q.satisfied,
            method=q.method,
            weights=q.likert_weights,
            invited=inputs.invited_units or None,
            responded=inputs.responded_units,
        )
    entered = defn.entered_actuals()
    actuals: dict[str, Actual] = {}
    for ind in defn.indicators:
        spec = ind.spec()
        if spec.source == "entered":
            if spec.key in entered:
                actuals[spec.key] = entered[spec.key]
        elif spec.source in facts:
            actuals[spec.key] = facts[spec.source]
    return statement, actuals


def facts_summary(inputs: FactInputs) -> dict[str, Any]:
    """The facts block stored with every snapshot (money as fen integers and 元 strings)."""
    arrived = sum(a for _, a in inputs.arrivals)
    return {
        "budget_fen": inputs.budget_fen,
        "budget": yuan(inputs.budget_fen),
        "arrived_fen": arrived,
        "arrived": yuan(arrived),
        "disbursed_fen": inputs.disbursed_fen,
        "disbursed": yuan(inputs.disbursed_fen),
        "confirmed_fen": inputs.confirmed_fen,
        "confirmed": yuan(inputs.confirmed_fen),
        "disbursements": inputs.disbursement_count,
        "confirmed_count": inputs.confirmed_count,
        "disputed_count": inputs.disputed_count,
        "unconfirmed_count": inputs.unconfirmed_count,
        "discrepancy_count": inputs.discrepancy_count,
        "satisfaction_counts": dict(sorted(inputs.satisfaction_counts.items())),
        "responded_units": inputs.responded_units,
        "invited_units": inputs.invited_units,
        "active_units": inputs.active_units,
    }


def _score(
    project: Project,
    defn: ProjectDefinition,
    inputs: FactInputs,
    overrides: dict[str, Override],
    version: int,
) -> Computed:
    statement, actuals = build_facts(defn, inputs)
    table = score_table(
        defn.indicator_specs(),
        actuals,
        defn.policy,
        defn.with_sources(overrides),
        published_total=defn.published_total,
        funds=statement,
    )
    info = {
        "code": project.code,
        "name": project.name,
        "year": project.year,
        "definition_version": version,
        "timezone": project.timezone,
    }
    doc = table_json(table, info)
    doc["facts"] = facts_summary(inputs)
    blob = json.dumps(doc, sort_keys=True, ensure_ascii=False)
    return Computed(project, defn, inputs, table, doc, hashlib.sha256(blob.encode()).hexdigest())


async def _load(
    session: AsyncSession, code: str
) -> tuple[Project, ProjectDefinition, FactInputs, dict[str, Override]]:
    project = await get_project(session, code)
    defn = await get_definition(session, project)
    inputs = await load_fact_inputs(session, project)
    overrides = {
        k: Override(score=v.score, reason=v.reason, by=v.by)
        for k, v in (await active_overrides(session, project.id)).items()  # type: ignore[arg-type]
    }
    return project, defn, inputs, overrides


async def compute(session: AsyncSession, code: str) -> Computed:
    """Load definition, facts and overrides for ``code`` and score them (off the event loop)."""
    project, defn, inputs, overrides = await _load(session, code)
    return await asyncio.to_thread(_score, project, defn, inputs, overrides, project.current_version)


async def recompute(
    sessionmaker: SessionMaker, code: str, *, now: datetime, trigger: str = "manual", force: bool = False
) -> RecomputeResult:
    """Compute ``code``'s table and save a snapshot when it differs from the latest one."""
    async with sessionmaker() as session:
        async with session.begin():
            await ensure_statistics(session)  # bulk writes since the last analysis: fresh plans
        async with session.begin():
            project, defn, inputs, overrides = await _load(session, code)
        computed = await asyncio.to_thread(_score, project, defn, inputs, overrides, project.current_version)
        async with session.begin():
            latest = await latest_snapshot(session, project.id)  # type: ignore[arg-type]
            if latest is not None and latest.fingerprint == computed.fingerprint and not force:
                return RecomputeResult(computed, latest, changed=False)
            snap = await save_snapshot(
                session,
                project.id,  # type: ignore[arg-type]
                definition_version=project.current_version,
                total=computed.table.total,
                grade=computed.table.grade,
                fingerprint=computed.fingerprint,
                table=computed.document,
                trigger=trigger,
                now=now,
            )
            return RecomputeResult(computed, snap, changed=True)
