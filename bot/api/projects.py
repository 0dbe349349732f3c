"""Projects: validate and load definitions, list them, show one with counts and budget."""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from sqlalchemy import func, select

from bot import keys
from bot.api.common import (
    API,
    MAX_JSON_BYTES,
    MAX_UPLOAD_BYTES,
    MULTIPART_ERRORS,
    Body,
    Call,
    Out,
    iso,
    ok,
    read_limited,
)
from bot.errors import ApiError
from config.definition import ProjectDefinition
from config.loader import DefinitionError, Problem, parse_definition_text
from config.tables import TableError, decode
from store.access import check_load_allowed
from store.db import transaction
from store.models import (
    Campaign,
    Disbursement,
    FundArrival,
    PaymentConfirmation,
    Project,
    ProjectVersion,
    Response,
    Unit,
)
from store.projects import get_project, list_projects, load_project
from store.units import yuan

log = logging.getLogger("jixiao.api")

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_FILES = 10


class ProjectOut(Out):
    code: str
    name: str
    year: int
    timezone: str
    current_version: int
    budget: str
    created_at: str
    updated_at: str


class VersionOut(Out):
    version: int
    content_hash: str
    loaded_at: str
    loaded_by: str


class CountsOut(Out):
    units: int
    active_units: int
    disbursements: int
    campaigns: int
    responses: int
    confirmations: int


class BudgetOut(Out):
    """元 with 2 decimals."""

    budget: str
    arrived: str
    disbursed: str


class ProjectDetailOut(ProjectOut):
    version: VersionOut | None
    counts: CountsOut
    money: BudgetOut
    illustrative: str


class ProblemOut(Out):
    location: str
    code: str
    message: str
    message_en: str


class SummaryOut(Out):
    code: str
    name: str
    indicators: int
    units: int
    disbursements: int
    budget: str


class ValidateOut(Out):
    valid: bool
    problems: list[ProblemOut]
    summary: SummaryOut | None


class FieldChangeOut(Out):
    field: str
    stored: Any
    file: Any
    #: ``file``: the definition changed this field and its value is written; ``kept``: an edit
    #: made outside the file is kept (the file did not change the field since the last load)
    source: str


class UnitChangeOut(Out):
    key: str
    name: str
    action: str
    fields: list[FieldChangeOut]
    message: str


class LoadQuery(Body):
    dry_run: bool = False


class LoadOut(Out):
    code: str
    version: int
    created_version: bool
    units_added: int
    units_updated: int
    units_deactivated: int
    disbursements: int
    responses_imported: int
    notes: list[str]
    unit_changes: list[UnitChangeOut]
    dry_run: bool


class _DryRun(Exception):
    """Raised inside the transaction so that a dry run's load is rolled back."""


def project_out(p: Project) -> ProjectOut:
    return ProjectOut(
        code=p.code,
        name=p.name,
        year=p.year,
        timezone=p.timezone,
        current_version=p.current_version,
        budget=yuan(p.budget_fen),
        created_at=iso(p.created_at) or "",
        updated_at=iso(p.updated_at) or "",
    )


_DEFINITION_BODY = {
    "application/json": {
        "schema": {"type": "object", "description": "the definition in file form (元 as strings, % rates)"}
    },
    "application/toml": {"schema": {"type": "string", "description": "project.toml text"}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {
                "definition": {"type": "string", "format": "binary", "description": "project.toml"},
            },
            "required": ["definition"],
            "additionalProperties": {"type": "string", "format": "binary", "description": "CSV it names"},
        }
    },
}


async def read_definition(request: web.Request) -> ProjectDefinition:
    """The posted definition: JSON object, TOML/JSON text, or multipart (``definition`` plus the
    CSV files it names, e.g. ``units.csv``). Raises ``DefinitionError`` with every problem."""
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        return await _read_multipart(request)
    raw = await read_limited(request, MAX_JSON_BYTES)
    if not raw.strip():
        raise ApiError(
            400, "body_required", "缺少项目定义", "the project definition is missing", where="body"
        )
    try:
        text = decode(raw, name="definition").text  # the one decoder (config.tables)
    except TableError as exc:
        problem = exc.problems[0]
        raise ApiError(400, "encoding", problem.zh, problem.en, where="body") from None
    if ctype == "application/json" and not text.lstrip().startswith("{"):
        raise DefinitionError([Problem("definition.json", "invalid_value", "定义应为 JSON 对象", "a definition is a JSON object")])  # fmt: skip
    filename = "definition.json" if ctype == "application/json" else "project.toml"
    return await _parse(text, None, filename)


async def _parse(text: str, base_dir: Path | None, filename: str) -> ProjectDefinition:
    try:
        return await asyncio.to_thread(parse_definition_text, text, base_dir=base_dir, filename=filename)
    except DefinitionError:
        raise
    except RecursionError:
        raise ApiError(400, "invalid_definition", "项目定义嵌套过深", "the definition is nested too deeply", where="body") from None  # fmt: skip
    except Exception as exc:  # the loader must report problems, but no input may become a 500
        log.warning("definition loader raised %s on API input", type(exc).__name__, exc_info=True)
        raise ApiError(400, "invalid_definition", f"项目定义无法解析（{type(exc).__name__}）",
                       f"the definition cannot be read ({type(exc).__name__})", where="body") from None  # fmt: skip


async def _read_multipart(request: web.Request) -> ProjectDefinition:
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        raise ApiError(413, "too_large", "上传内容过大", "upload too large")
    try:
        reader = await request.multipart()
    except MULTIPART_ERRORS:
        raise ApiError(400, "multipart_invalid", "multipart 请求体格式错误", "malformed multipart body", where="body") from None  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="jixiao-def-") as tmp:
        base = Path(tmp)
        text: str | None = None
        count = 0
        total = 0
        try:
            while (part := await reader.next()) is not None:
                count += 1
                if count > MAX_FILES:
                    raise ApiError(400, "too_many_files", f"最多上传 {MAX_FILES} 个文件", f"at most {MAX_FILES} files")  # fmt: skip
                if not isinstance(part, BodyPartReader):  # a nested multipart: not ours
                    continue
                data = await part.read(decode=True)
                total += len(data)
                if total > MAX_UPLOAD_BYTES:
                    raise ApiError(413, "too_large", "上传内容过大", "upload too large")
                if part.name == "definition":  # type: ignore[union-attr]
                    try:
                        text = decode(bytes(data), name="definition").text
                    except TableError as exc:
                        problem = exc.problems[0]
                        raise ApiError(400, "encoding", problem.zh, problem.en, where="definition") from None
                    continue
                name = Path(part.filename or part.name or "").name  # type: ignore[union-attr]
                if not _SAFE_NAME.match(name):
                    raise ApiError(400, "file_name", f"文件名 {name[:60]!r} 无效", f"invalid file name {name[:60]!r}", where="files")  # fmt: skip
                (base / name).write_bytes(bytes(data))
        except ApiError:
            raise
        except MULTIPART_ERRORS as exc:
            raise ApiError(400, "multipart_invalid", "multipart 请求体格式错误", f"malformed multipart body ({type(exc).__name__})", where="body") from None  # fmt: skip
        if text is None:
            raise ApiError(400, "body_required", "缺少 definition 文件字段", "the 'definition' file field is missing", where="definition")  # fmt: skip
        return await _parse(text, base, "project.toml")


def _problems(exc: DefinitionError) -> list[ProblemOut]:
    return [ProblemOut(location=p.location, code=p.code, message=p.zh, message_en=p.en) for p in exc.problems]


@API.op("POST", "/api/projects/validate", role="admin", tag="projects", summary="校验项目定义 / validate a definition",
        body=_DEFINITION_BODY, data=ValidateOut, errors=(400, 413, 415))  # fmt: skip
async def validate_project(request: web.Request, call: Call) -> web.Response:
    """Check a definition without storing it; every problem comes back with its location."""
    try:
        defn = await read_definition(request)
    except DefinitionError as exc:
        return ok(ValidateOut(valid=False, problems=_problems(exc), summary=None))
    summary = SummaryOut(
        code=defn.project.code,
        name=defn.project.name,
        indicators=len(defn.indicators),
        units=len(defn.units),
        disbursements=len(defn.disbursements),
        budget=yuan(defn.budget_fen),
    )
    return ok(ValidateOut(valid=True, problems=[], summary=summary))


@API.op("POST", "/api/projects/load", role="admin", tag="projects", summary="导入项目定义（新版本）/ load a definition",
        body=_DEFINITION_BODY, query=LoadQuery, data=LoadOut, success=201, errors=(400, 413, 415))  # fmt: skip
async def load_project_(request: web.Request, call: Call) -> web.Response:
    """Store a definition: a new project or a new version (identical content changes nothing:
    200 with ``created_version`` false). Invalid definitions get 400 with every problem.
    ``unit_changes`` names every unit and field the load changes, and the API edits it keeps
    (the file wins only for fields it changed since the last load). ``?dry_run=1`` shows the
    same without storing anything (200)."""
    defn = await read_definition(request)
    assert call.token is not None
    dry = bool(call.query.dry_run)
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            await check_load_allowed(session, call.grants, defn.project.code)
            result = await load_project(
                session, defn, now=request.app[keys.CLOCK](), by=f"api:{call.token.name}"
            )
            if dry:
                raise _DryRun
    except _DryRun:
        pass
    out = LoadOut(
        code=result.code,
        version=result.version,
        created_version=result.created_version,
        units_added=result.units_added,
        units_updated=result.units_updated,
        units_deactivated=result.units_deactivated,
        disbursements=result.disbursements,
        responses_imported=result.responses_imported,
        notes=result.notes,
        unit_changes=[
            UnitChangeOut(
                key=c.key,
                name=c.name,
                action=c.action,
                fields=[
                    FieldChangeOut(field=f.field, stored=f.stored, file=f.file, source=f.source)
                    for f in c.fields
                ],
                message=c.describe(),
            )
            for c in result.unit_changes
        ],
        dry_run=dry,
    )
    return ok(out, status=201 if result.created_version and not dry else 200)


@API.op("GET", "/api/projects", role="reader", tag="projects", summary="项目列表 / list projects",
        data={"type": "array", "items": {"$ref": "#/components/schemas/ProjectOut"}})  # fmt: skip
async def list_projects_(request: web.Request, call: Call) -> web.Response:
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        projects = await list_projects(session)
    return ok([project_out(p) for p in projects if call.grants.allows(p.id)])


async def _count(session: Any, stmt: Any) -> int:
    return int((await session.execute(stmt)).scalar_one() or 0)


@API.op("GET", "/api/projects/{code}", role="reader", tag="projects", summary="项目详情 / one project",
        data=ProjectDetailOut, errors=(404,))  # fmt: skip
async def get_project_(request: web.Request, call: Call) -> web.Response:
    """The project with its current definition version, counts and money (元)."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        p = await get_project(session, call.path["code"])
        pid = p.id
        version = (
            await session.execute(
                select(ProjectVersion).where(
                    ProjectVersion.project_id == pid, ProjectVersion.version == p.current_version
                )
            )
        ).scalar_one_or_none()
        n = func.count()
        counts = CountsOut(
            units=await _count(session, select(n).select_from(Unit).where(Unit.project_id == pid)),
            active_units=await _count(
                session, select(n).select_from(Unit).where(Unit.project_id == pid, Unit.active.is_(True))
            ),
            disbursements=await _count(
                session, select(n).select_from(Disbursement).where(Disbursement.project_id == pid)
            ),
            campaigns=await _count(
                session, select(n).select_from(Campaign).where(Campaign.project_id == pid)
            ),
            responses=await _count(
                session,
                select(n)
                .select_from(Response)
                .where(Response.project_id == pid, Response.is_current.is_(True)),
            ),
            confirmations=await _count(
                session,
                select(n)
                .select_from(PaymentConfirmation)
                .where(PaymentConfirmation.project_id == pid, PaymentConfirmation.is_current.is_(True)),
            ),
        )
        arrived = await _count(
            session,
            select(func.coalesce(func.sum(FundArrival.amount_fen), 0)).where(FundArrival.project_id == pid),
        )
        disbursed = await _count(
            session,
            select(func.coalesce(func.sum(Disbursement.amount_fen), 0)).where(Disbursement.project_id == pid),
        )
    base = project_out(p).model_dump()
    out = ProjectDetailOut(
        **base,
        version=VersionOut(
            version=version.version,
            content_hash=version.content_hash,
            loaded_at=iso(version.loaded_at) or "",
            loaded_by=version.loaded_by,
        )
        if version
        else None,
        counts=counts,
        money=BudgetOut(budget=yuan(p.budget_fen), arrived=yuan(arrived), disbursed=yuan(disbursed)),
        illustrative=str((version.definition.get("project") or {}).get("illustrative", ""))
        if version
        else "",
    )
    return ok(out)
