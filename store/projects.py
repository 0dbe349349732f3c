"""Projects: loading a validated definition into the tables, and reading it back.

Functions take the session first and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from config.definition import ProjectDefinition, UnitDef
from store import lite
from store.errors import no_definition, no_such_project
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

#: Unit fields a definition sets, as stored (``channel`` is split into kind/address/config).
UNIT_FIELDS: tuple[str, ...] = ("name", "uscc", "channel_kind", "channel_address", "channel_config", "active")


@dataclass(frozen=True)
class FieldChange:
    """One unit field: its stored value, the definition's value, and which one the load keeps.

    ``source``: ``file`` — the definition changed this field since the version loaded last, so
    its value is written; ``kept`` — the definition did not change it but the stored value
    differs (an edit made through the API, the console or an import), so the stored value stays."""

    field: str
    stored: Any
    file: Any
    source: Literal["file", "kept"]


@dataclass(frozen=True)
class UnitChange:
    """What a load does to one unit: ``add``, ``update`` (fields written), ``deactivate`` (the
    definition dropped it), or ``keep`` (only kept edits to report)."""

    key: str
    name: str
    action: Literal["add", "update", "deactivate", "keep"]
    fields: tuple[FieldChange, ...] = ()

    def describe(self) -> str:
        """One line, Chinese / English, naming the unit and every field and value."""

        def show(value: Any) -> str:
            if isinstance(value, dict):
                return "{" + ", ".join(f"{k}={v}" for k, v in sorted(value.items())) + "}"
            return "（空）" if value in (None, "") else str(value)

        head = {"add": "新增 / add", "update": "更新 / update", "deactivate": "停用 / deactivate",
                "keep": "保留 / keep"}[self.action]  # fmt: skip
        parts = []
        for f in self.fields:
            if f.source == "file":
                parts.append(f"{f.field}: {show(f.stored)} → {show(f.file)}")
            else:
                parts.append(
                    f"{f.field}: 保留接口修改的 {show(f.stored)}（文件为 {show(f.file)}）/ kept the API edit"
                )
        tail = ("；" + "；".join(parts)) if parts else ""
        return f"单位 {self.key} {self.name} {head}{tail}"


@dataclass
class LoadResult:
    """What ``load_project`` did. ``created_version`` is False when the same content was loaded;
    ``unit_changes`` lists every unit the load adds, updates, deactivates, or whose API edits it
    keeps, with each field (the same structured diff ``plan_units`` previews)."""

    project: Project
    version: int
    created_version: bool
    units_added: int = 0
    units_updated: int = 0
    units_deactivated: int = 0
    disbursements: int = 0
    responses_imported: int = 0
    notes: list[str] = field(default_factory=list)
    unit_changes: list[UnitChange] = field(default_factory=list)
    #: the project code as plain text (readable after a dry run's rollback expired ``project``)
    code: str = ""


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
        raise no_such_project(code)
    return project


async def find_project(session: AsyncSession, code: str) -> Project | None:
    """The project with ``code``: :data:`store.lite.PROJECT_BY_CODE_SQL` (also run without the ORM)."""
    table = Project.__table__  # type: ignore[attr-defined]
    stmt = text(lite.PROJECT_BY_CODE_SQL).columns(*(table.c[c] for c in lite.PROJECT_COLUMNS))
    result = await session.execute(select(Project).from_statement(stmt), {"code": code})
    return result.scalar_one_or_none()


async def list_projects(session: AsyncSession) -> list[Project]:
    """Every project, by code: :data:`store.lite.PROJECTS_SQL`, the statement the CLI also runs
    without the ORM."""
    table = Project.__table__  # type: ignore[attr-defined]
    stmt = text(lite.PROJECTS_SQL).columns(*(table.c[c] for c in lite.PROJECT_COLUMNS))
    return list((await session.execute(select(Project).from_statement(stmt))).scalars())


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
    where = {"pid": project.id, "version": v}  # the statements of store.lite (also run without the ORM)
    digest = await session.scalar(text(lite.DEFINITION_HASH_SQL), where)
    if digest is None:
        raise no_definition(project.code, v)
    key = (project.id or 0, v, digest)
    cached = _DEFINITIONS.get(key)
    if cached is not None:
        _DEFINITIONS.move_to_end(key)
        return cached
    table = ProjectVersion.__table__  # type: ignore[attr-defined]
    snapshot = await session.scalar(text(lite.DEFINITION_SQL).columns(table.c.definition), where)
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
            return LoadResult(
                project=project, version=project.current_version, created_version=False, code=info.code
            )

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

    result = LoadResult(project=project, version=version, created_version=True, code=info.code)
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


def _file_fields(unit: UnitDef) -> dict[str, Any]:
    return {
        "name": unit.name,
        "uscc": unit.uscc,
        "channel_kind": unit.channel.kind,
        "channel_address": unit.channel.address,
        "channel_config": dict(unit.channel.config),
        "active": True,
    }


def _row_fields(row: Unit) -> dict[str, Any]:
    return {
        name: (dict(getattr(row, name) or {}) if name == "channel_config" else getattr(row, name))
        for name in UNIT_FIELDS
    }


def diff_units(
    stored: dict[str, dict[str, Any]],
    names: dict[str, str],
    defn: ProjectDefinition,
    previous: ProjectDefinition | None,
) -> list[UnitChange]:
    """The per-field plan of a load (pure): which source wins, field by field.

    Rule (also in the README): the definition file wins for a field **only when the file changed
    that field since the version loaded last** (or the unit is new to the file); otherwise a
    stored value that differs — an edit made through the API, the console or an import — is
    kept and reported. A unit the previous definition listed and this one drops is deactivated
    (never deleted: answers refer to it); units added outside the file are left alone."""
    before = {u.key: _file_fields(u) for u in previous.units} if previous else {}
    out: list[UnitChange] = []
    wanted = set()
    for unit in defn.units:
        wanted.add(unit.key)
        file = _file_fields(unit)
        row = stored.get(unit.key)
        if row is None:
            out.append(UnitChange(unit.key, unit.name, "add"))
            continue
        last = before.get(unit.key)
        changes = []
        for name in UNIT_FIELDS:
            if row[name] == file[name]:
                continue
            file_changed = last is None or last[name] != file[name]
            changes.append(FieldChange(name, row[name], file[name], "file" if file_changed else "kept"))
        if changes:
            action = "update" if any(c.source == "file" for c in changes) else "keep"
            out.append(UnitChange(unit.key, unit.name, action, tuple(changes)))
    for key in sorted(set(before) - wanted):
        row = stored.get(key)
        if row is not None and row["active"]:
            out.append(
                UnitChange(
                    key, names.get(key, ""), "deactivate", (FieldChange("active", True, False, "file"),)
                )
            )
    return out


async def plan_units(session: AsyncSession, defn: ProjectDefinition) -> list[UnitChange]:
    """Preview (read only) what loading ``defn`` would do to the stored units: the structured diff
    ``project load --dry-run``, the API's ``?dry_run=1`` and the console show."""
    project = await find_project(session, defn.project.code)
    if project is None:
        return [UnitChange(u.key, u.name, "add") for u in defn.units]
    previous = await _previous_definition(session, project)
    rows = list((await session.execute(select(Unit).where(Unit.project_id == project.id))).scalars())
    return diff_units({r.key: _row_fields(r) for r in rows}, {r.key: r.name for r in rows}, defn, previous)


async def _sync_units(
    session: AsyncSession,
    project_id: int,
    defn: ProjectDefinition,
    previous: ProjectDefinition | None,
    now: datetime,
    result: LoadResult,
) -> dict[str, Unit]:
    """Apply :func:`diff_units`: add new units, write the fields the file changed, keep the
    fields edited outside the file, deactivate units the file dropped."""
    existing = {
        u.key: u for u in (await session.execute(select(Unit).where(Unit.project_id == project_id))).scalars()
    }
    changes = diff_units(
        {k: _row_fields(r) for k, r in existing.items()},
        {k: r.name for k, r in existing.items()},
        defn,
        previous,
    )
    result.unit_changes = changes
    by_key = {u.key: u for u in defn.units}
    for change in changes:
        if change.action == "add":
            fields = _file_fields(by_key[change.key])
            row = Unit(project_id=project_id, key=change.key, created_at=now, updated_at=now, **fields)
            session.add(row)
            existing[change.key] = row
            result.units_added += 1
            continue
        row = existing[change.key]
        written = [f for f in change.fields if f.source == "file"]
        for f in written:
            setattr(row, f.field, f.file)
        if written:
            row.updated_at = now
            if change.action == "deactivate":
                result.units_deactivated += 1
            else:
                result.units_updated += 1
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
    amounts_changed = False
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
            amounts_changed = amounts_changed or row.amount_fen != d.amount_fen
            row.unit_id, row.amount_fen, row.paid_on, row.voucher = (
                unit_id,
                d.amount_fen,
                d.date,
                d.voucher or "",
            )
            row.updated_at = now
        result.disbursements += 1
    if amounts_changed:
        from store.answers import follow_disbursed_amounts  # local: keeps `project list` light

        await follow_disbursed_amounts(session, project_id)
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
    from store.answers import next_version  # local import: keeps `project list` light

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
        questionnaire_id = questionnaire.id if questionnaire else None
        # The version after the unit's last one (not after its current ones: earlier versions
        # may be many), by the one rule of store.answers; versions are unique per unit.
        last = await session.scalar(
            select(func.max(Response.version)).where(
                Response.project_id == project_id,
                Response.unit_id == unit.id,
                Response.questionnaire_id == questionnaire_id,
            )
        )
        submitted = now
        if r.submitted_on is not None:
            submitted = datetime.combine(r.submitted_on, datetime.min.time(), tzinfo=now.tzinfo)
        resp = Response(
            project_id=project_id,
            questionnaire_id=questionnaire_id,
            unit_id=unit.id,  # type: ignore[arg-type]
            version=next_version(last),
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
