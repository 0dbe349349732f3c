"""A project's score table from its loaded inputs — the pure part of a recompute, shared by
:func:`scheduler.recompute.recompute` (the ORM, either database) and ``jixiao score`` on SQLite
(the stdlib reader, :mod:`store.lite`). It imports no SQLAlchemy and no table classes: the
project only needs ``code``, ``name``, ``year`` and ``timezone`` (``store.models.Project`` or
``store.lite.ProjectRow``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from config.definition import ProjectDefinition
from scoring.engine import score_table
from scoring.facts import funds_statement, satisfaction_fact
from scoring.model import Actual, FundsStatement, Override, ScoreTable
from scoring.money import yuan
from scoring.report import table_json
from store.errors import no_definition, no_such_project
from store.fact_sql import FACT_STATEMENTS, FactInputs, fold_fact_inputs
from store.lite import ActiveOverride, SqliteReader


class ProjectInfo(Protocol):
    """What a computed table names of its project."""

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def year(self) -> int: ...
    @property
    def timezone(self) -> str: ...


@dataclass(frozen=True)
class Computed:
    """A freshly computed table with what it was computed from."""

    project: Any  # store.models.Project or store.lite.ProjectRow (ProjectInfo)
    definition: ProjectDefinition
    inputs: FactInputs
    table: ScoreTable
    document: dict[str, Any]
    fingerprint: str
    #: the definition version scored (the project's current one when loaded)
    version: int


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


def as_overrides(active: Mapping[str, ActiveOverride]) -> dict[str, Override]:
    """The engine's overrides from the ones in force (:func:`store.scores.active_overrides`)."""
    return {k: Override(score=v.score, reason=v.reason, by=v.by) for k, v in active.items()}


def score_inputs(
    project: ProjectInfo,
    defn: ProjectDefinition,
    inputs: FactInputs,
    overrides: dict[str, Override],
    version: int,
) -> Computed:
    """Score ``defn`` (at ``version``) on ``inputs`` and ``overrides``; the fingerprint hashes the
    table document with its facts, so equal inputs give equal fingerprints on either path."""
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
    return Computed(project, defn, inputs, table, doc, hashlib.sha256(blob.encode()).hexdigest(), version)


def compute_on_sqlite(reader: SqliteReader, code: str) -> tuple[Computed, str | None]:
    """``code``'s table computed from a SQLite file read with the stdlib (no SQLAlchemy), in one
    read transaction, and the fingerprint of its latest snapshot (None if none).

    The same statements (:mod:`store.lite`, :mod:`store.fact_sql`) and the same scoring
    (:func:`score_inputs`) as :func:`scheduler.recompute.recompute`; tests prove both give the
    same table. Raises the store's NotFound for an unknown project or a missing definition."""
    with reader.snapshot():
        project = reader.project(code)
        if project is None:
            raise no_such_project(code)
        snapshot = reader.definition(project)
        if snapshot is None:
            raise no_definition(project.code, project.current_version)
        params = {"pid": project.id}
        rows = {name: reader.tuples(sql, params) for name, sql in FACT_STATEMENTS.items()}
        overrides = as_overrides(reader.active_overrides(project.id))
        latest = reader.latest_fingerprint(project.id)
    defn = ProjectDefinition.model_validate(snapshot)
    inputs = fold_fact_inputs(project.budget_fen, rows)
    return score_inputs(project, defn, inputs, overrides, project.current_version), latest
