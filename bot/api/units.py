"""Units and disbursements: list, create, update (admin only: they carry contact addresses)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from bot import keys
from bot.api.common import (
    API,
    KEY_PATTERN,
    NO_CONTROL_LINE,
    Body,
    Call,
    IsoDate,
    Key,
    Line,
    Money,
    Out,
    TypedLine,
    iso,
    map_schema,
    ok,
)
from bot.errors import ApiError
from config.definition import ChannelKind
from config.secrets import redact_channel
from store.db import transaction
from store.models import Disbursement, Unit
from store.projects import get_project
from store.units import (
    DisbursementFields,
    FieldsInvalid,
    UnitFields,
    create_disbursement,
    create_unit,
    get_unit,
    list_disbursements,
    list_units,
    parse_yuan,
    update_disbursement,
    update_unit,
    yuan,
)

ConfigValue = Line(500)
#: A unit's channel config: keys like unit keys, one-line string values, at most 20.
ConfigMap = Annotated[
    dict[Key, ConfigValue],  # type: ignore[valid-type]
    Field(max_length=20),
    map_schema(KEY_PATTERN, {"type": "string", "maxLength": 500, "pattern": NO_CONTROL_LINE}, 20),
]


class UnitOut(Out):
    key: str
    name: str
    uscc: str | None
    channel_kind: str
    channel_address: str
    channel_config: dict[str, str]
    active: bool
    created_at: str
    updated_at: str


class DisbursementOut(Out):
    id: int
    key: str
    unit: str
    unit_name: str
    batch: str
    amount: str
    paid_on: str
    voucher: str
    updated_at: str


def unit_out(u: Unit) -> UnitOut:
    """The unit as the API shows it: a channel address that is a credential (a vendor webhook
    URL) and secret-looking config values are redacted for every role (``config.secrets``)."""
    shown = redact_channel(
        {
            "address": u.channel_address,
            "config": {str(k): str(v) for k, v in (u.channel_config or {}).items()},
        }
    )
    return UnitOut(
        key=u.key,
        name=u.name,
        uscc=u.uscc,
        channel_kind=u.channel_kind,
        channel_address=shown["address"],
        channel_config=shown["config"],
        active=u.active,
        created_at=iso(u.created_at) or "",
        updated_at=iso(u.updated_at) or "",
    )


def disbursement_out(d: Disbursement, u: Unit) -> DisbursementOut:
    assert d.id is not None
    return DisbursementOut(
        id=d.id,
        key=d.key,
        unit=u.key,
        unit_name=u.name,
        batch=d.batch,
        amount=yuan(d.amount_fen),
        paid_on=d.paid_on.isoformat(),
        voucher=d.voucher,
        updated_at=iso(d.updated_at) or "",
    )


def _fields_error(exc: FieldsInvalid) -> ApiError:
    details = [
        {
            "field": p.field,
            "code": p.code,
            "message": f"{p.field}：{p.zh}",
            "message_en": f"{p.field}: {p.en}",
        }
        for p in exc.problems
    ]
    return ApiError(400, "invalid_input", exc.zh, exc.en, where=exc.where, details=details)


class UnitCreate(Body):
    key: Key
    name: TypedLine(200, 1)  # type: ignore[valid-type]
    uscc: Line(30) | None = None  # type: ignore[valid-type]
    channel_kind: ChannelKind = "console"
    channel_address: TypedLine(500) = ""  # type: ignore[valid-type]
    channel_config: ConfigMap = Field(default_factory=dict)
    active: bool = True


class UnitPatch(Body):
    """Only the fields sent change; none may be null except ``uscc`` (null clears it)."""

    name: TypedLine(200, 1) = None  # type: ignore[valid-type]
    uscc: Line(30) | None = None  # type: ignore[valid-type]
    channel_kind: ChannelKind = None  # type: ignore[assignment]
    channel_address: TypedLine(500) = None  # type: ignore[valid-type]
    channel_config: ConfigMap = None  # type: ignore[assignment]
    active: bool = None  # type: ignore[assignment]


class UnitQuery(Body):
    active: bool | None = None


#: A payment date: ISO ``YYYY-MM-DD`` in 1900–2200 (the document states the same pattern).
PaidOn = IsoDate(1900, 2200)


class DisbursementCreate(Body):
    unit: Key
    amount: Money
    paid_on: PaidOn  # type: ignore[valid-type]
    batch: Line(50) = ""  # type: ignore[valid-type]
    voucher: Line(100) = ""  # type: ignore[valid-type]
    key: Line(100, 1) | None = None  # type: ignore[valid-type]


class DisbursementPatch(Body):
    """Only the fields sent change; none may be null."""

    unit: Key = None  # type: ignore[assignment]
    amount: Money = None  # type: ignore[assignment]
    paid_on: PaidOn = None  # type: ignore[valid-type]
    batch: Line(50) = None  # type: ignore[valid-type]
    voucher: Line(100) = None  # type: ignore[valid-type]


class DisbursementQuery(Body):
    unit: Key | None = None


@API.op("GET", "/api/projects/{code}/units", role="admin", tag="units", summary="单位列表 / list units",
        query=UnitQuery, data={"type": "array", "items": {"$ref": "#/components/schemas/UnitOut"}}, errors=(404,))  # fmt: skip
async def list_units_(request: web.Request, call: Call) -> web.Response:
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        assert project.id is not None
        units = await list_units(session, project.id, active=call.query.active)
    return ok([unit_out(u) for u in units])


@API.op("POST", "/api/projects/{code}/units", role="admin", tag="units", summary="新增单位 / create a unit",
        body=UnitCreate, data=UnitOut, success=201, errors=(400, 404, 409, 413, 415))  # fmt: skip
async def create_unit_(request: web.Request, call: Call) -> web.Response:
    """USCC checksum, channel kind/address and inline secrets are checked; the key must be new."""
    b: UnitCreate = call.body
    fields = UnitFields(
        b.key, b.name, b.uscc, b.channel_kind, b.channel_address, dict(b.channel_config), b.active
    )
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            project = await get_project(session, call.path["code"])
            assert project.id is not None
            unit = await create_unit(session, project.id, fields, now=request.app[keys.CLOCK]())
    except FieldsInvalid as exc:
        raise _fields_error(exc) from None
    return ok(unit_out(unit), status=201)


@API.op("PATCH", "/api/projects/{code}/units/{unit_key}", role="admin", tag="units", summary="修改单位 / update a unit",
        body=UnitPatch, data=UnitOut, errors=(400, 404, 413, 415))  # fmt: skip
async def update_unit_(request: web.Request, call: Call) -> web.Response:
    """Only the fields sent change; ``active: false`` takes the unit out of new campaigns."""
    changes: dict[str, Any] = call.body.model_dump(exclude_unset=True)
    for name in ("name", "channel_kind", "channel_address", "active", "channel_config"):
        if name in changes and changes[name] is None:
            raise ApiError(
                400, "invalid_input", f"{name}：不能为 null", f"{name}: must not be null", where=name
            )
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            project = await get_project(session, call.path["code"])
            assert project.id is not None
            unit = await update_unit(
                session, project.id, call.path["unit_key"], changes, now=request.app[keys.CLOCK]()
            )
    except FieldsInvalid as exc:
        raise _fields_error(exc) from None
    return ok(unit_out(unit))


@API.op("GET", "/api/projects/{code}/disbursements", role="admin", tag="units", summary="拨付列表 / list disbursements",
        query=DisbursementQuery, data={"type": "array", "items": {"$ref": "#/components/schemas/DisbursementOut"}},
        errors=(404,))  # fmt: skip
async def list_disbursements_(request: web.Request, call: Call) -> web.Response:
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        assert project.id is not None
        unit_id = None
        if call.query.unit is not None:
            unit_id = (await get_unit(session, project.id, call.query.unit)).id
        rows = await list_disbursements(session, project.id, unit_id=unit_id)
    return ok([disbursement_out(d, u) for d, u in rows])


@API.op("POST", "/api/projects/{code}/disbursements", role="admin", tag="units", summary="新增拨付 / create a disbursement",
        body=DisbursementCreate, data=DisbursementOut, success=201, errors=(400, 404, 409, 413, 415))  # fmt: skip
async def create_disbursement_(request: web.Request, call: Call) -> web.Response:
    """``amount`` is 元 text with at most 2 decimals (``"1234.50"``); the unit must exist."""
    b: DisbursementCreate = call.body
    try:
        fields = DisbursementFields(
            unit_key=b.unit,
            amount_fen=parse_yuan(b.amount),
            paid_on=b.paid_on,
            batch=b.batch,
            voucher=b.voucher,
            key=b.key,
        )
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            project = await get_project(session, call.path["code"])
            assert project.id is not None
            row = await create_disbursement(session, project.id, fields, now=request.app[keys.CLOCK]())
            unit = await get_unit(session, project.id, b.unit)
    except FieldsInvalid as exc:
        raise _fields_error(exc) from None
    return ok(disbursement_out(row, unit), status=201)


@API.op("PATCH", "/api/projects/{code}/disbursements/{disbursement_id}", role="admin", tag="units",
        summary="修改拨付 / update a disbursement", body=DisbursementPatch, data=DisbursementOut,
        errors=(400, 404, 413, 415))  # fmt: skip
async def update_disbursement_(request: web.Request, call: Call) -> web.Response:
    """The key stays (confirmations stay attached); a changed amount shows as a discrepancy."""
    sent: dict[str, Any] = call.body.model_dump(exclude_unset=True)
    for name, value in sent.items():
        if value is None:
            raise ApiError(
                400, "invalid_input", f"{name}：不能为 null", f"{name}: must not be null", where=name
            )
    changes: dict[str, Any] = {}
    try:
        if "amount" in sent:
            changes["amount_fen"] = parse_yuan(sent["amount"])
        if "unit" in sent:
            changes["unit_key"] = sent["unit"]
        for name in ("paid_on", "batch", "voucher"):
            if name in sent:
                changes[name] = sent[name]
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            project = await get_project(session, call.path["code"])
            assert project.id is not None
            row = await update_disbursement(
                session, project.id, call.path["disbursement_id"], changes, now=request.app[keys.CLOCK]()
            )
            unit = await session.get(Unit, row.unit_id)
            assert unit is not None
    except FieldsInvalid as exc:
        raise _fields_error(exc) from None
    return ok(disbursement_out(row, unit))
