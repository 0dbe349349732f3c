"""The deliverables and the narrative behind them.

- ``GET /api/projects/{code}/documents/zipingbiao.xlsx|zipingbiao.docx|baogao.docx``: the 自评表
  (附件1) and the 评价报告 (附件3) rendered from the latest stored score result (404 until the
  project has been scored) — the same result the summaries and the report page show;
- ``GET|PUT /api/projects/{code}/narrative``: the text people write (背景, 目标, per-indicator
  evidence and deviation notes, 经验做法, 问题, 建议), validated by ``config.narrative`` (every
  problem with its field path) and stored as a new revision (``store.narrative``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from bot import keys
from bot.api.common import API, MAX_JSON_BYTES, Call, Out, iso, ok, read_limited
from bot.documents import DOCUMENTS, Document, load_document_data
from bot.errors import ApiError
from config.loader import DefinitionError
from config.narrative import Narrative
from store.db import transaction
from store.narrative import current_narrative, save_narrative
from store.projects import get_project


class NarrativeOut(Out):
    """The narrative that applies now; ``revision`` 0 means nothing has been written yet."""

    revision: int
    definition_version: int | None
    created_at: str | None
    created_by: str
    narrative: Narrative


async def _document(request: web.Request, call: Call, doc: Document) -> web.Response:
    async with transaction(request.app[keys.READ_SESSIONMAKER]) as session:
        data = await load_document_data(session, call.path["code"])
    body = await asyncio.to_thread(doc.render, data)  # python-docx/openpyxl: CPU work
    return web.Response(
        body=body,
        content_type=doc.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{doc.filename(call.path["code"], data.year)}"',
            "Cache-Control": "private, no-store",
        },
    )


def _media(doc: Document) -> dict[str, Any]:
    return {doc.media_type: {"schema": {"type": "string", "format": "binary"}}}


_ZX, _ZD, _BD = DOCUMENTS["zipingbiao.xlsx"], DOCUMENTS["zipingbiao.docx"], DOCUMENTS["baogao.docx"]


@API.op("GET", "/api/projects/{code}/documents/zipingbiao.xlsx", role="reader", tag="documents",
        summary="项目支出绩效自评表（附件1，XLSX）/ self-evaluation form as XLSX", produces=_media(_ZX), errors=(404,))  # fmt: skip
async def zipingbiao_xlsx(request: web.Request, call: Call) -> web.Response:
    """The 自评表 in the official layout (merged cells as printed; amounts in 万元, exact), from
    the latest score result. 404 when the project has not been scored yet."""
    return await _document(request, call, _ZX)


@API.op("GET", "/api/projects/{code}/documents/zipingbiao.docx", role="reader", tag="documents",
        summary="项目支出绩效自评表（附件1，DOCX）/ self-evaluation form as DOCX", produces=_media(_ZD), errors=(404,))  # fmt: skip
async def zipingbiao_docx(request: web.Request, call: Call) -> web.Response:
    """The same 自评表 as a Word table. 404 when the project has not been scored yet."""
    return await _document(request, call, _ZD)


@API.op("GET", "/api/projects/{code}/documents/baogao.docx", role="reader", tag="documents",
        summary="绩效评价报告（附件3，DOCX 初稿）/ evaluation report draft as DOCX", produces=_media(_BD), errors=(404,))  # fmt: skip
async def baogao_docx(request: web.Request, call: Call) -> web.Response:
    """The 评价报告 draft in the seven sections of the 附件3 outline: computed sentences from the
    score result and the ledger, narrative where people wrote it. 404 when not scored yet."""
    return await _document(request, call, _BD)


def _narrative_out(record: Any) -> NarrativeOut:
    return NarrativeOut(
        revision=record.revision,
        definition_version=record.definition_version,
        created_at=iso(record.created_at),
        created_by=record.created_by,
        narrative=record.narrative,
    )


@API.op("GET", "/api/projects/{code}/narrative", role="reader", tag="documents",
        summary="说明文本（背景、佐证、偏差分析、经验、问题、建议）/ the project's narrative", data=NarrativeOut, errors=(404,))  # fmt: skip
async def get_narrative(request: web.Request, call: Call) -> web.Response:
    """The narrative that applies now (revision 0 and empty fields when none was written)."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        record = await current_narrative(session, project)
    return ok(_narrative_out(record))


_NARRATIVE_BODY = {
    "application/json": {
        "schema": {"$ref": "#/components/schemas/Narrative"},
    }
}


@API.op("PUT", "/api/projects/{code}/narrative", role="admin", tag="documents",
        summary="保存说明文本（整体替换，新稿次）/ replace the narrative", body=_NARRATIVE_BODY, data=NarrativeOut,
        errors=(400, 404, 413, 415))  # fmt: skip
async def put_narrative(request: web.Request, call: Call) -> web.Response:
    """Replace the whole narrative (the same fields as ``narrative.toml``). Every problem comes
    back at once with its field path (``indicators.KEY.evidence``); an unchanged text keeps the
    current revision. Indicator keys must exist in the current definition."""
    if request.content_type not in ("application/json", ""):
        raise ApiError(415, "unsupported_media_type", f"请求体应为 JSON（收到 {request.content_type}）",
                       f"the body must be JSON (got {request.content_type})", where="Content-Type")  # fmt: skip
    raw = await read_limited(request, MAX_JSON_BYTES)
    try:
        data = json.loads(raw.decode("utf-8-sig")) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"JSON 格式错误：{exc}", f"malformed JSON: {exc}", where="body") from None  # fmt: skip
    if not isinstance(data, dict):
        raise ApiError(400, "body_required", "请求体应为 JSON 对象（说明文本各字段）", "the body must be a JSON object (the narrative fields)", where="body")  # fmt: skip
    assert call.token is not None
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        try:
            record, _ = await save_narrative(
                session,
                project,
                data,
                now=request.app[keys.CLOCK](),
                by=f"api:{call.token.name}",
                filename="body",
            )
        except DefinitionError as exc:
            details = [
                {
                    "field": p.location.removeprefix("body: "),
                    "code": p.code,
                    "message": p.zh,
                    "message_en": p.en,
                }
                for p in exc.problems
            ]
            raise ApiError(400, "invalid_narrative", "；".join(f"{d['field']}：{d['message']}" for d in details[:5]),
                           "; ".join(f"{d['field']}: {d['message_en']}" for d in details[:5]),
                           where=details[0]["field"], details=details) from None  # fmt: skip
    return ok(_narrative_out(record))
