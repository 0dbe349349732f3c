"""Projects: loading a validated definition into the tables, and reading it back.

Functions take the session first and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.definition import ProjectDefinition
from store.errors import NotFound
from store.models import (
    Answer,
    Disbursement,
    FundArrival,
    PaymentConfirmation,
    Project,
    ProjectVersion,
    Questionnaire,
    Response,
    ScoreOverride,
    Unit,
)


@dataclass
class LoadResult:
    """What ``load_project`` did. ``created_version`` is False when the same content was loaded."""

    project: Project
    version: int
    created_version: bool
    units_added: int = 0
    units_updated: int = 0
    units_deactivated: int = 0
    disbursements: int = 0
    responses_imported: int = 0
    notes: list[str] = field(default_factory=list)


def definition_hash(snapshot: dict[str, Any]) -> str:
    """A stable SHA-256 of the definition JSON (key order independent)."""
    blob = json.dumps(snapshot, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def disbursement_keys(defn: ProjectDefinition) -> list[str]:
    """Stable keys for the definition's disbursements: ``unit/batch/date`` plus ``#n`` for repeats.

    They identify a disbursement across reloads so confirmations stay attached to it.
    """
    seen: Counter[str] = Counter()
    keys = []
    for d in defn.disbursements:
        base = f"{d.unit_key}/{d.batch}/{d.date.isoformat()}"
        seen[base] += 1
        keys.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return keys


async def get_project(session: AsyncSession, code: str) -> Project:
    project = await find_project(session, code)
    if project is None:
        raise NotFound(f"项目不存在：{code}", f"no such project: {code}", where="project")
    return project


async def find_project(session: AsyncSession, code: str) -> Project | None:
    return (await session.execute(select(Project).where(Project.code == code))).scalar_one_or_none()


async def list_projects(session: AsyncSession) -> list[Project]:
    return list((await session.execute(select(Project).order_by(Project.code))).scalars())


#: Parsed definitions by (project id, version, content hash). A stored version never changes, so
#: the cache needs no invalidation; it saves re-validating a large snapshot (10,000 units ≈ 0.2 s)
#: on every recompute. Bounded, oldest evicted first.
_DEFINITIONS: OrderedDict[tuple[int, int, str], ProjectDefinition] = OrderedDict()
_DEFINITIONS_MAX = 32


async def get_definition(
    session: AsyncSession, project: Project, version: int | None = None
) -> ProjectDefinition:
    """The validated definition of ``project`` at ``version`` (default: current)."""
    v = version or project.current_version
    where = (ProjectVersion.project_id == project.id, ProjectVersion.version == v)
    digest = await session.scalar(select(ProjectVersion.content_hash).where(*where))
    if digest is None:
        raise NotFound(f"项目 {project.code} 没有第 {v} 版定义", f"project {project.code} has no version {v}")
    key = (project.id or 0, v, digest)
    cached = _DEFINITIONS.get(key)
    if cached is not None:
        _DEFINITIONS.move_to_end(key)
        return cached
    snapshot = await session.scalar(select(ProjectVersion.definition).where(*where))
    defn = ProjectDefinition.model_validate(snapshot)
    _DEFINITIONS[key] = defn
    while len(_DEFINITIONS) > _DEFINITIONS_MAX:
        _DEFINITIONS.popitem(last=False)
    return defn


async def list_versions(session: AsyncSession, project: Project) -> list[ProjectVersion]:
    stmt = (
        select(ProjectVersion).where(ProjectVersion.project_id == project.id).order_by(ProjectVersion.version)
    )
    return list((await session.execute(stmt)).scalars())


async def current_questionnaire(session: AsyncSession, project_id: int) -> Questionnaire | None:
    stmt = (
        select(Questionnaire)
        .where(Questionnaire.project_id == project_id)
        .order_by(Questionnaire.version.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def load_project(
    session: AsyncSession, defn: ProjectDefinition, *, now: datetime, by: str = ""
) -> LoadResult:
    """Store ``defn``: a new project, or a new version of an existing one.

    Idempotent: loading identical content again changes nothing and reports the current version.
    A changed definition becomes version n+1 (old versions are kept); units are matched by key
    (new ones added, changed ones updated, missing ones deactivated, never deleted because
    responses refer to them); disbursements are matched by their stable key; fund arrivals are
    replaced; responses listed in the definition are imported once.
    """
    snapshot = defn.model_dump(mode="json")
    digest = definition_hash(snapshot)
    info = defn.project
    project = await find_project(session, info.code)
    if project is None:
        project = Project(
            code=info.code,
            name=info.name,
            year=info.year,
            timezone=info.timezone,
            current_version=0,
            budget_fen=defn.budget_fen,
            created_at=now,
            updated_at=now,
        )
        session.add(project)
        await session.flush()
    else:
        current = (
            await session.execute(
                select(ProjectVersion).where(
                    ProjectVersion.project_id == project.id,
                    ProjectVersion.version == project.current_version,
                )
            )
        ).scalar_one_or_none()
        if current is not None and current.content_hash == digest:
            return LoadResult(project=project, version=project.current_version, created_version=False)

    assert project.id is not None
    previous = await _previous_definition(session, project)
    version = project.current_version + 1
    session.add(
        ProjectVersion(
            project_id=project.id,
            version=version,
            content_hash=digest,
            definition=snapshot,
            loaded_at=now,
            loaded_by=by,
        )
    )
    project.current_version = version
    project.name = info.name
    project.year = info.year
    project.timezone = info.timezone
    project.budget_fen = defn.budget_fen
    project.updated_at = now

    result = LoadResult(project=project, version=version, created_version=True)
    units = await _sync_units(session, project.id, defn, previous, now, result)
    await _replace_arrivals(session, project.id, defn)
    await _sync_disbursements(session, project.id, defn, previous, units, now, result)
    questionnaire = await _sync_questionnaire(session, project.id, defn, now)
    await _import_responses(session, project.id, defn, units, questionnaire, now, result)
    await _sync_overrides(session, project.id, defn, now, by)
    await session.flush()
    return result


async def _previous_definition(session: AsyncSession, project: Project) -> ProjectDefinition | None:
    if project.current_version == 0:
        return None
    return await get_definition(session, project)


async def _sync_units(
    session: AsyncSession,
    project_id: int,
    defn: ProjectDefinition,
    previous: ProjectDefinition | None,
    now: datetime,
    result: LoadResult,
) -> dict[str, Unit]:
    """Upsert the definition's units by key. A unit the previous definition listed and this one
    drops is deactivated; units added through the API or an import are left alone."""
    existing = {
        u.key: u for u in (await session.execute(select(Unit).where(Unit.project_id == project_id))).scalars()
    }
    wanted = set()
    for u in defn.units:
        wanted.add(u.key)
        row = existing.get(u.key)
        fields = {
            "name": u.name,
            "uscc": u.uscc,
            "channel_kind": u.channel.kind,
            "channel_address": u.channel.address,
            "channel_config": dict(u.channel.config),
            "active": True,
        }
        if row is None:
            row = Unit(project_id=project_id, key=u.key, created_at=now, updated_at=now, **fields)
            session.add(row)
            existing[u.key] = row
            result.units_added += 1
        elif any(getattr(row, k) != v for k, v in fields.items()):
            for k, v in fields.items():
                setattr(row, k, v)
            row.updated_at = now
            result.units_updated += 1
    dropped = {u.key for u in previous.units} - wanted if previous else set()
    for key, row in existing.items():
        if key in dropped and row.active:
            row.active = False
            row.updated_at = now
            result.units_deactivated += 1
    await session.flush()
    return existing


async def _replace_arrivals(session: AsyncSession, project_id: int, defn: ProjectDefinition) -> None:
    await session.execute(delete(FundArrival).where(FundArrival.project_id == project_id))
    session.add_all(
        FundArrival(project_id=project_id, arrived_on=a.date, amount_fen=a.amount_fen, note=a.note)
        for a in defn.arrivals
    )


async def _sync_disbursements(
    session: AsyncSession,
    project_id: int,
    defn: ProjectDefinition,
    previous: ProjectDefinition | None,
    units: dict[str, Unit],
    now: datetime,
    result: LoadResult,
) -> None:
    existing = {
        d.key: d
        for d in (
            await session.execute(select(Disbursement).where(Disbursement.project_id == project_id))
        ).scalars()
    }
    keys = disbursement_keys(defn)
    for key, d in zip(keys, defn.disbursements, strict=True):
        unit_id = units[d.unit_key].id
        assert unit_id is not None
        row = existing.pop(key, None)
        if row is None:
            session.add(
                Disbursement(
                    project_id=project_id,
                    unit_id=unit_id,
                    key=key,
                    batch=d.batch,
                    amount_fen=d.amount_fen,
                    paid_on=d.date,
                    voucher=d.voucher or "",
                    created_at=now,
                    updated_at=now,
                )
            )
        elif (row.unit_id, row.amount_fen, row.paid_on, row.voucher) != (
            unit_id,
            d.amount_fen,
            d.date,
            d.voucher or "",
        ):
            row.unit_id, row.amount_fen, row.paid_on, row.voucher = (
                unit_id,
                d.amount_fen,
                d.date,
                d.voucher or "",
            )
            row.updated_at = now
        result.disbursements += 1
    # Disbursements the previous definition listed and this one drops: delete unless a unit already
    # answered about them. Ones imported through the API are not the definition's to remove.
    dropped = set(disbursement_keys(previous)) - set(keys) if previous else set()
    for key, row in existing.items():
        if key not in dropped:
            continue
        confirmed = await session.scalar(
            select(func.count())
            .select_from(PaymentConfirmation)
            .where(PaymentConfirmation.disbursement_id == row.id)
        )
        if confirmed:
            result.notes.append(
                f"拨付 {key} 已有单位确认，保留 / disbursement {key} kept: it has confirmations"
            )
        else:
            await session.delete(row)


async def _sync_questionnaire(
    session: AsyncSession, project_id: int, defn: ProjectDefinition, now: datetime
) -> Questionnaire | None:
    if defn.questionnaire is None:
        return await current_questionnaire(session, project_id)
    body = defn.questionnaire.model_dump(mode="json")
    latest = await current_questionnaire(session, project_id)
    if latest is not None and latest.definition == body:
        return latest
    q = Questionnaire(
        project_id=project_id,
        version=(latest.version + 1) if latest else 1,
        title=defn.questionnaire.title,
        definition=body,
        created_at=now,
    )
    session.add(q)
    await session.flush()
    return q


async def _import_responses(
    session: AsyncSession,
    project_id: int,
    defn: ProjectDefinition,
    units: dict[str, Unit],
    questionnaire: Questionnaire | None,
    now: datetime,
    result: LoadResult,
) -> None:
    """Import responses collected outside the service, once each (keyed by their content)."""
    if not defn.responses:
        return
    sat_key = defn.questionnaire.satisfaction_question if defn.questionnaire else None
    for r in defn.responses:
        unit = units[r.unit_key]
        blob = json.dumps(
            {"unit": r.unit_key, "answers": r.answers}, sort_keys=True, ensure_ascii=False, default=str
        )
        key = "import:" + hashlib.sha256(f"{project_id}:{blob}".encode()).hexdigest()[:40]
        if await session.scalar(select(Response.id).where(Response.submission_key == key)):
            continue
        # An imported response supersedes the unit's earlier current one (history kept).
        previous = (
            (
                await session.execute(
                    select(Response).where(
                        Response.project_id == project_id,
                        Response.unit_id == unit.id,
                        Response.is_current.is_(True),
                    )
                )
            )
            .scalars()
            .all()
        )
        for p in previous:
            p.is_current = False
        await session.flush()
        submitted = now
        if r.submitted_on is not None:
            submitted = datetime.combine(r.submitted_on, datetime.min.time(), tzinfo=now.tzinfo)
        resp = Response(
            project_id=project_id,
            questionnaire_id=questionnaire.id if questionnaire else None,
            unit_id=unit.id,  # type: ignore[arg-type]
            version=len(previous) + 1,
            is_current=True,
            source="import",
            submission_key=key,
            satisfaction=str(r.answers.get(sat_key))
            if sat_key and r.answers.get(sat_key) is not None
            else None,
            submitted_at=submitted,
        )
        session.add(resp)
        await session.flush()
        session.add_all(Answer(response_id=resp.id, question_key=k, value=v) for k, v in r.answers.items())  # type: ignore[arg-type]
        result.responses_imported += 1


async def _sync_overrides(
    session: AsyncSession, project_id: int, defn: ProjectDefinition, now: datetime, by: str
) -> None:
    """Overrides written in the definition become override rows (only when they changed)."""
    from store.scores import active_overrides  # local import: scores imports this module

    current = await active_overrides(session, project_id)
    for key, ov in defn.overrides().items():
        have = current.get(key)
        if have is not None and have.score == ov.score and have.reason == ov.reason:
            continue
        session.add(
            ScoreOverride(
                project_id=project_id,
                indicator_key=key,
                score=ov.score,
                reason=ov.reason,
                by=ov.by or by or "definition",
                created_at=now,
            )
        )


async def definition_period(session: AsyncSession, project: Project) -> tuple[str | None, str | None]:
    """``(period_start, period_end)`` ISO texts of the current definition, read inside the JSON
    by the database (a 10,000-unit definition is megabytes; pages need two dates of it)."""
    doc = ProjectVersion.definition
    row = (
        await session.execute(
            select(
                doc["project"]["period_start"].as_string(), doc["project"]["period_end"].as_string()
            ).where(
                ProjectVersion.project_id == project.id, ProjectVersion.version == project.current_version
            )
        )
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)
