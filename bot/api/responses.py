"""Responses, payment confirmations, discrepancies: lists and CSV/XLSX exports.

Exports: CSV is UTF-8 with a BOM (Excel then reads Chinese correctly); XLSX is built off the
event loop. Money is 元 text with 2 decimals in both (a spreadsheet number would be a float);
times are shown in the project's timezone with their offset. Text a unit typed that starts with
``= + - @`` is prefixed with ``'`` so a spreadsheet never runs it as a formula (CSV injection).
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import Field

from bot import keys
from bot.api.common import API, Body, Call, Out, iso, ok
from store.answers import (
    CONFIRMATION_KIND_ZH,
    CONFIRMATION_STATUS_ZH,
    DISPUTE_KIND_ZH,
    ConfirmationRecord,
    ResponseRecord,
    discrepancies,
    list_confirmations,
    list_responses,
    question_labels,
)
from store.db import transaction
from store.errors import NotFound
from store.models import Campaign
from store.projects import get_project
from store.units import yuan

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ListQuery(Body):
    history: bool = False
    campaign: int | None = Field(default=None, ge=1, le=2**31 - 1)


class ExportQuery(ListQuery):
    format: Literal["csv", "xlsx"] = "csv"


class ResponseOut(Out):
    id: int
    unit: str
    unit_name: str
    campaign_id: int | None
    version: int
    is_current: bool
    source: str
    satisfaction: str | None
    submitted_at: str
    answers: dict[str, Any]


class ConfirmationOut(Out):
    """Money in 元 text; ``difference`` = confirmed − disbursed (null for disputes)."""

    id: int
    unit: str
    unit_name: str
    disbursement_key: str
    batch: str
    paid_on: str
    disbursed: str
    version: int
    is_current: bool
    status: str
    kind: str
    received_on: str | None
    amount: str | None
    difference: str | None
    voucher: str
    dispute_kind: str | None
    reason: str
    submitted_at: str


def response_out(r: ResponseRecord) -> ResponseOut:
    x = r.response
    assert x.id is not None
    return ResponseOut(
        id=x.id,
        unit=r.unit_key,
        unit_name=r.unit_name,
        campaign_id=x.campaign_id,
        version=x.version,
        is_current=x.is_current,
        source=x.source,
        satisfaction=x.satisfaction,
        submitted_at=iso(x.submitted_at) or "",
        answers=dict(r.answers),
    )


def confirmation_out(r: ConfirmationRecord) -> ConfirmationOut:
    c = r.confirmation
    assert c.id is not None
    diff = r.difference_fen
    return ConfirmationOut(
        id=c.id,
        unit=r.unit_key,
        unit_name=r.unit_name,
        disbursement_key=r.disbursement_key,
        batch=r.batch,
        paid_on=r.paid_on.isoformat(),
        disbursed=yuan(r.disbursed_fen),
        version=c.version,
        is_current=c.is_current,
        status=c.status,
        kind=r.kind,
        received_on=c.received_on.isoformat() if c.received_on else None,
        amount=yuan(c.amount_fen) if c.amount_fen is not None else None,
        difference=yuan(diff) if diff is not None else None,
        voucher=c.voucher,
        dispute_kind=c.dispute_kind,
        reason=c.reason,
        submitted_at=iso(c.submitted_at) or "",
    )


async def _project_and(
    request: web.Request, call: Call, what: Literal["responses", "confirmations", "discrepancies"]
) -> tuple[str, ZoneInfo, list[Any]]:
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        assert project.id is not None
        campaign_id = getattr(call.query, "campaign", None)
        if campaign_id is not None:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.project_id != project.id:
                raise NotFound(f"本项目没有活动 {campaign_id}", f"no campaign {campaign_id} in this project", where="campaign")  # fmt: skip
        current = not getattr(call.query, "history", False)
        if what == "responses":
            rows: list[Any] = await list_responses(session, project.id, campaign_id, current_only=current)
        elif what == "confirmations":
            rows = await list_confirmations(session, project.id, campaign_id, current_only=current)
        else:
            rows = await discrepancies(session, project.id)
    return project.code, ZoneInfo(project.timezone), rows


@API.op("GET", "/api/projects/{code}/responses", role="reader", tag="responses", summary="问卷答复 / responses",
        query=ListQuery, data={"type": "array", "items": {"$ref": "#/components/schemas/ResponseOut"}}, errors=(400, 404))  # fmt: skip
async def list_responses_(request: web.Request, call: Call) -> web.Response:
    """Current versions by default; ``?history=1`` includes superseded ones."""
    _, _, rows = await _project_and(request, call, "responses")
    return ok([response_out(r) for r in rows])


@API.op("GET", "/api/projects/{code}/confirmations", role="reader", tag="responses", summary="拨付确认 / confirmations",
        query=ListQuery, data={"type": "array", "items": {"$ref": "#/components/schemas/ConfirmationOut"}}, errors=(400, 404))  # fmt: skip
async def list_confirmations_(request: web.Request, call: Call) -> web.Response:
    """Current versions by default; ``?history=1`` includes superseded ones."""
    _, _, rows = await _project_and(request, call, "confirmations")
    return ok([confirmation_out(r) for r in rows])


@API.op("GET", "/api/projects/{code}/discrepancies", role="reader", tag="responses", summary="不一致（争议、金额不符）/ discrepancies",
        data={"type": "array", "items": {"$ref": "#/components/schemas/ConfirmationOut"}}, errors=(404,))  # fmt: skip
async def list_discrepancies_(request: web.Request, call: Call) -> web.Response:
    """Current confirmations that disagree with the ledger: disputes and different amounts."""
    _, _, rows = await _project_and(request, call, "discrepancies")
    return ok([confirmation_out(r) for r in rows])


# ---------------------------------------------------------------------------- exports

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """Text for a spreadsheet cell; user text that could be read as a formula gets a ``'``."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "；".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _local(value: str, tz: ZoneInfo) -> str:
    return datetime.fromisoformat(value).astimezone(tz).isoformat(timespec="seconds") if value else ""


def response_table(
    rows: list[ResponseRecord], tz: ZoneInfo, labels: dict[str, str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """One row per response; question columns in questionnaire order, headed by the question's
    text (``labels``, key → text) when known, else by its key."""
    labels = labels or {}
    seen = {k for r in rows for k in r.answers}
    questions = [k for k in labels if k in seen] + sorted(seen - set(labels))
    header = ["单位编号 unit", "单位名称 unit_name", "版本 version", "当前 current", "来源 source",
              "满意度 satisfaction", "提交时间 submitted_at", *(labels.get(q, q) for q in questions)]  # fmt: skip
    body = []
    for r in rows:
        x = response_out(r)
        body.append(
            [
                x.unit,
                safe_cell(x.unit_name),
                str(x.version),
                "是" if x.is_current else "否",
                x.source,
                safe_cell(x.satisfaction),
                _local(x.submitted_at, tz),
                *(safe_cell(r.answers.get(q)) for q in questions),
            ]  # fmt: skip
        )
    return header, body


def confirmation_table(rows: list[ConfirmationRecord], tz: ZoneInfo) -> tuple[list[str], list[list[str]]]:
    header = ["单位编号 unit", "单位名称 unit_name", "拨付编号 disbursement_key", "批次 batch", "拨付日期 paid_on",
              "拨付金额（元）disbursed", "版本 version", "当前 current", "状态 status", "类型 kind",
              "到账日期 received_on", "确认金额（元）amount", "差额（元）difference", "凭证 voucher",
              "争议类型 dispute_kind", "原因 reason", "提交时间 submitted_at"]  # fmt: skip
    body = []
    for r in rows:
        x = confirmation_out(r)
        body.append(
            [
                x.unit,
                safe_cell(x.unit_name),
                safe_cell(x.disbursement_key),
                safe_cell(x.batch),
                x.paid_on,
                x.disbursed,
                str(x.version),
                "是" if x.is_current else "否",
                CONFIRMATION_STATUS_ZH.get(x.status, x.status),
                CONFIRMATION_KIND_ZH.get(x.kind, x.kind),
                x.received_on or "",
                x.amount or "",
                x.difference or "",
                safe_cell(x.voucher),
                DISPUTE_KIND_ZH.get(x.dispute_kind or "", x.dispute_kind or ""),
                safe_cell(x.reason),
                _local(x.submitted_at, tz),
            ]  # fmt: skip
        )
    return header, body


def to_csv(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(header: list[str], rows: list[list[str]], title: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    sheet.append(header)
    for row in rows:
        sheet.append(row)  # every cell is text: money stays exact 元 text
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


async def _export(
    request: web.Request, call: Call, what: Literal["responses", "confirmations"]
) -> web.Response:
    code, tz, rows = await _project_and(request, call, what)
    labels: dict[str, str] = {}
    if what == "responses":
        async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
            project = await get_project(session, code)
            labels = await question_labels(session, project.id or 0)
    header, body = response_table(rows, tz, labels) if what == "responses" else confirmation_table(rows, tz)
    stamp = request.app[keys.CLOCK]().astimezone(tz).strftime("%Y%m%d-%H%M")
    name = f"{code}-{what}-{stamp}"
    if call.query.format == "xlsx":
        data = await asyncio.to_thread(to_xlsx, header, body, what)
        return web.Response(
            body=data,
            content_type=XLSX_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return web.Response(
        body=to_csv(header, body),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


_EXPORT_MEDIA = {
    "text/csv": {"schema": {"type": "string"}},
    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
}


@API.op("GET", "/api/projects/{code}/responses/export", role="reader", tag="responses",
        summary="导出问卷答复（CSV/XLSX）/ export responses", query=ExportQuery, produces=_EXPORT_MEDIA, errors=(400, 404))  # fmt: skip
async def export_responses(request: web.Request, call: Call) -> web.Response:
    """One row per response, one column per question; ``?format=xlsx`` for Excel."""
    return await _export(request, call, "responses")


@API.op("GET", "/api/projects/{code}/confirmations/export", role="reader", tag="responses",
        summary="导出拨付确认（CSV/XLSX）/ export confirmations", query=ExportQuery, produces=_EXPORT_MEDIA, errors=(400, 404))  # fmt: skip
async def export_confirmations(request: web.Request, call: Call) -> web.Response:
    """One row per confirmation with disbursed, confirmed and difference in 元."""
    return await _export(request, call, "confirmations")
