"""Bulk import of units and disbursements from CSV or XLSX: all rows or nothing.

The file comes as the raw body (``text/csv`` or the XLSX media type) or as the ``file`` field of a
multipart form. XLSX is recognised by its ZIP signature, so a mislabelled upload still works.
Every bad row is reported (row number, column, reason) and nothing is stored.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bot import keys
from bot.api.common import (
    API,
    MAX_UPLOAD_BYTES,
    MULTIPART_ERRORS,
    Body,
    Call,
    Out,
    ok,
    read_limited,
    too_large,
)
from bot.errors import ApiError
from config.tables import encoding_label
from store.db import transaction
from store.projects import get_project
from store.units import ImportRejected, Table, import_disbursements, import_units, read_table

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_FILE_BODY = {
    "text/csv": {
        "schema": {
            "type": "string",
            "description": "CSV, header row first: UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030/GBK",
        }
    },
    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    },
}


class ImportQuery(Body):
    dry_run: bool = False


class ImportOut(Out):
    created: int
    updated: int
    unchanged: int
    rows: int
    dry_run: bool
    #: the file's encoding as found by the one decoder (UTF-8, UTF-8 (BOM), UTF-16, GB18030 (GBK)) or xlsx
    encoding: str


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back after the real import ran."""


async def read_upload(request: web.Request) -> bytes:
    """The uploaded file's bytes (raw body or multipart field ``file``), at most MAX_UPLOAD_BYTES."""
    if request.content_type.startswith("multipart/"):
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            raise too_large(MAX_UPLOAD_BYTES)
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if getattr(part, "name", None) == "file" and hasattr(part, "read"):
                    data = bytes(await part.read(decode=True))  # type: ignore[union-attr]
                    if len(data) > MAX_UPLOAD_BYTES:
                        raise too_large(MAX_UPLOAD_BYTES)
                    return data
        except ApiError:
            raise
        except MULTIPART_ERRORS as exc:
            raise ApiError(400, "multipart_invalid", "multipart 请求体格式错误",
                           f"malformed multipart body ({type(exc).__name__})", where="body") from None  # fmt: skip
        raise ApiError(
            400, "body_required", "缺少 file 文件字段", "the 'file' field is missing", where="file"
        )
    data = await read_limited(request, MAX_UPLOAD_BYTES)
    if not data.strip():
        raise ApiError(400, "body_required", "缺少文件内容（CSV 或 XLSX）", "the file (CSV or XLSX) is missing", where="body")  # fmt: skip
    return data


async def _table(request: web.Request) -> Table:
    data = await read_upload(request)
    try:
        return await asyncio.to_thread(read_table, data)  # openpyxl parsing is CPU work
    except ImportRejected as exc:
        raise _rejected(exc) from None


def _rejected(exc: ImportRejected) -> ApiError:
    return ApiError(
        400, "import_rejected", exc.zh, exc.en, where="file", details=[p.as_dict() for p in exc.problems]
    )


async def run_import(
    sessionmaker: Any, code: str, table: Table, importer: Any, *, dry_run: bool, now: Any
) -> Any:
    """Import ``table`` into project ``code`` with ``importer`` (``import_units`` or
    ``import_disbursements``), all-or-nothing; a dry run does the whole import and rolls it back,
    so it finds exactly the problems the real one would. Raises ``ImportRejected``. Shared by the
    API and the console."""
    try:
        async with transaction(sessionmaker) as session:
            project = await get_project(session, code)
            assert project.id is not None
            summary = await importer(session, project.id, table, now=now)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return summary


async def _run(request: web.Request, call: Call, importer: object) -> web.Response:
    table = await _table(request)
    dry = bool(call.query.dry_run)
    try:
        summary = await run_import(request.app[keys.SESSIONMAKER], call.path["code"], table, importer,
                                   dry_run=dry, now=request.app[keys.CLOCK]())  # fmt: skip
    except ImportRejected as exc:
        raise _rejected(exc) from None
    out = ImportOut(
        **summary.as_dict(), rows=len(table.rows), dry_run=dry, encoding=encoding_label(table.encoding)
    )
    return ok(out, status=200 if dry else 201)


@API.op("POST", "/api/projects/{code}/units/import", role="admin", tag="units",
        summary="批量导入单位（CSV/XLSX）/ import units", body=_FILE_BODY, query=ImportQuery, data=ImportOut,
        success=201, errors=(400, 404, 413))  # fmt: skip
async def import_units_(request: web.Request, call: Call) -> web.Response:
    """Columns: key, name, uscc, channel_kind, channel_address, other ``channel_*`` (config, e.g.
    ``channel_secret_env``), active. Units are matched by key (created or updated). Any bad row →
    400 listing every row, nothing stored. ``?dry_run=1`` checks without storing."""
    return await _run(request, call, import_units)


@API.op("POST", "/api/projects/{code}/disbursements/import", role="admin", tag="units",
        summary="批量导入拨付（CSV/XLSX）/ import disbursements", body=_FILE_BODY, query=ImportQuery,
        data=ImportOut, success=201, errors=(400, 404, 413))  # fmt: skip
async def import_disbursements_(request: web.Request, call: Call) -> web.Response:
    """Columns: unit, amount (元, ≤ 2 decimals), date (YYYY-MM-DD), batch, voucher, optional key.
    Matched by key (default ``unit/batch/date``), so re-importing a file changes nothing."""
    return await _run(request, call, import_disbursements)
