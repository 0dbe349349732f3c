"""Units (项目承担单位) and disbursements (拨付): CRUD and all-or-nothing bulk import.

Invariants:
- money is integer fen inside; it arrives as 元 text (``"1234.50"``) parsed with ``Decimal`` —
  never float. More than 2 decimals, negative amounts and non-numbers are refused. Spreadsheet
  numeric cells (floats from openpyxl) are re-parsed via ``Decimal(str(v))`` and refused when they
  carry more than 2 decimals, else quantized to the fen;
- a bulk import validates every row first and writes nothing when any row is bad; every problem
  names its row (CSV: line number, header = 1; XLSX: sheet row number, header = 1) and column;
- units are matched by ``key`` and disbursements by their stable key
  (``unit/batch/date`` plus ``#n`` for repeats — the same convention as ``store.projects``), so
  importing the same file twice changes nothing.

Functions take the session first, keyword-only after, and never commit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.definition import UnitDef
from config.ledger import Entry, LedgerProblem, check_ledger
from config.loader import translate_error
from config.tables import Table, TableError, cell_text
from config.tables import read_table as _read_table
from config.text import has_control
from scoring import money
from store.answers import follow_disbursed_amounts
from store.errors import Conflict, Invalid, NotFound
from store.models import Disbursement, FundArrival, Project, Unit

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DATE_RE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")

UNIT_COLUMNS = ("key", "name", "uscc", "channel_kind", "channel_address")
DISBURSEMENT_COLUMNS = ("unit", "amount", "date", "batch", "voucher", "key")


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class FieldProblem:
    """One bad value: the field (or column), a stable code, Chinese and English messages."""

    field: str
    code: str
    zh: str
    en: str


@dataclass(frozen=True)
class RowProblem:
    """One bad import row: ``row`` is the 1-based line/sheet row (header = 1); 0 = whole file."""

    row: int
    column: str
    code: str
    zh: str
    en: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "code": self.code,
            "message": self.zh,
            "message_en": self.en,
        }


class ImportRejected(Invalid):
    """The import was refused; ``problems`` lists every bad row. Nothing was written."""

    def __init__(self, problems: list[RowProblem]) -> None:
        self.problems = problems
        rows = sorted({p.row for p in problems if p.row > 1})
        zh = f"导入失败：{len(rows)} 行有错误（第 {'、'.join(map(str, rows[:20]))} 行），未导入任何数据"
        en = (
            f"import refused: {len(rows)} bad row(s) ({', '.join(map(str, rows[:20]))}); nothing was imported"
        )
        if not rows:
            zh, en = f"导入失败：{problems[0].zh}", f"import refused: {problems[0].en}"
        super().__init__(zh, en, where="file")


class FieldsInvalid(Invalid):
    """Field validation failed for a single create/update; ``problems`` names every field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(
            "；".join(p.zh for p in problems), "; ".join(p.en for p in problems), where=first.field
        )


# --------------------------------------------------------------------------- scalar parsing


def _has_control(text: str) -> bool:
    return has_control(text)


def parse_yuan(value: Any, *, field_name: str = "amount") -> int:
    """元 → fen via :func:`scoring.money.parse_yuan` (text, int, Decimal, or a spreadsheet float
    cell re-read from its shortest form). Raises ``FieldsInvalid`` naming ``field_name``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FieldsInvalid([FieldProblem(field_name, "money_invalid", "金额不能为空", "amount is required")])
    try:
        return money.parse_yuan(value, float_cells=True)
    except money.MoneyError as exc:
        raise FieldsInvalid([FieldProblem(field_name, exc.code, exc.zh, exc.en)]) from None


yuan = money.yuan


def parse_date(value: Any, *, field_name: str = "date") -> dt.date:
    """``YYYY-MM-DD`` (or ``YYYY/M/D``) text, or a spreadsheet date/datetime cell → date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        m = _DATE_RE.match(value.strip())
        if m:
            try:
                day = dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                pass
            else:
                if 1900 <= day.year <= 2200:
                    return day
    raise FieldsInvalid(
        [
            FieldProblem(
                field_name,
                "date_invalid",
                f"日期 {value!r} 无效，应为 YYYY-MM-DD",
                f"date {value!r} is invalid: YYYY-MM-DD expected",
            )
        ]
    )


# --------------------------------------------------------------------------- units


@dataclass
class UnitFields:
    """The editable fields of a unit (already type-checked; :func:`check_unit` checks meaning)."""

    key: str
    name: str
    uscc: str | None = None
    channel_kind: str = "console"
    channel_address: str = ""
    channel_config: dict[str, str] = field(default_factory=dict)
    active: bool = True


def check_unit(fields: UnitFields) -> tuple[UnitFields, list[FieldProblem]]:
    """Normalise and validate a unit through ``config.definition.UnitDef`` — the same model the
    definition loader validates units.csv with (key pattern, name 1–200 characters cleaned of
    control characters by ``config.text``, USCC checksum, channel kind/address, secrets written
    inline) — and return the cleaned fields and every problem, named by API field."""
    problems: list[FieldProblem] = []
    kind = fields.channel_kind.strip() or "console"
    config = {str(k): str(v) for k, v in fields.channel_config.items()}
    data = {
        "key": fields.key.strip(),
        "name": fields.name,
        "uscc": (fields.uscc or "").strip() or None,
        "channel": {"kind": kind, "address": fields.channel_address, "config": config},
    }
    try:
        unit = UnitDef.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            code, zh, en = translate_error(err)
            if loc[:1] == ["channel"]:
                if loc[1:2] == ["kind"]:
                    where = "channel_kind"
                elif loc[1:2] == ["config"]:
                    where = "channel_config"
                elif loc[1:2] == ["address"]:
                    where = "channel_address"
                else:  # model-level: its English text names the config part
                    where = "channel_config" if "channel config" in en else "channel_address"
            else:
                where = loc[0] if loc else "unit"
            if where == "key":
                zh, en = (
                    f"单位编号 {data['key']!r} 无效：应为字母数字开头、由字母数字 _ . - 组成、不超过64位",
                    f"unit key {data['key']!r} is invalid: letters, digits, _ . - (max 64), starting with a letter or digit",
                )
            problems.append(FieldProblem(where, code, zh, en))
        return fields, problems
    cleaned = UnitFields(
        unit.key,
        unit.name,
        unit.uscc,
        unit.channel.kind,
        unit.channel.address,
        dict(unit.channel.config),
        fields.active,
    )
    return cleaned, problems


async def list_units(session: AsyncSession, project_id: int, *, active: bool | None = None) -> list[Unit]:
    stmt = select(Unit).where(Unit.project_id == project_id).order_by(Unit.key)
    if active is not None:
        stmt = stmt.where(Unit.active.is_(active))
    return list((await session.execute(stmt)).scalars())


async def find_unit(session: AsyncSession, project_id: int, key: str) -> Unit | None:
    stmt = select(Unit).where(Unit.project_id == project_id, Unit.key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_unit(session: AsyncSession, project_id: int, key: str) -> Unit:
    unit = await find_unit(session, project_id, key)
    if unit is None:
        raise NotFound(f"单位不存在：{key}", f"no such unit: {key}", where="unit")
    return unit


def _apply_unit(row: Unit, f: UnitFields) -> bool:
    """Copy fields onto ``row``; True when something changed."""
    values = {
        "name": f.name,
        "uscc": f.uscc,
        "channel_kind": f.channel_kind,
        "channel_address": f.channel_address,
        "channel_config": dict(f.channel_config),
        "active": f.active,
    }
    changed = [k for k, v in values.items() if getattr(row, k) != v]
    for k in changed:
        setattr(row, k, values[k])
    return bool(changed)


async def create_unit(
    session: AsyncSession, project_id: int, fields: UnitFields, *, now: dt.datetime
) -> Unit:
    """Add a unit; ``Conflict`` when the key is taken, ``FieldsInvalid`` listing bad fields."""
    cleaned, problems = check_unit(fields)
    if problems:
        raise FieldsInvalid(problems)
    if await find_unit(session, project_id, cleaned.key) is not None:
        raise Conflict(
            f"单位编号 {cleaned.key} 已存在", f"unit key {cleaned.key} already exists", where="key"
        )
    row = Unit(project_id=project_id, key=cleaned.key, created_at=now, updated_at=now, name=cleaned.name)
    _apply_unit(row, cleaned)
    session.add(row)
    await session.flush()
    return row


async def update_unit(
    session: AsyncSession, project_id: int, key: str, changes: dict[str, Any], *, now: dt.datetime
) -> Unit:
    """Change some fields of unit ``key`` (``changes`` keys: name, uscc, channel_kind,
    channel_address, channel_config, active). The key itself never changes (history refers to it)."""
    row = await get_unit(session, project_id, key)
    merged = UnitFields(
        key=row.key,
        name=row.name,
        uscc=row.uscc,
        channel_kind=row.channel_kind,
        channel_address=row.channel_address,
        channel_config=dict(row.channel_config or {}),
        active=row.active,
    )
    for name, value in changes.items():
        if not hasattr(merged, name) or name == "key":
            raise Invalid(f"不能修改字段 {name}", f"field {name} cannot be changed", where=name)
        setattr(merged, name, value)
    cleaned, problems = check_unit(merged)
    if problems:
        raise FieldsInvalid(problems)
    if _apply_unit(row, cleaned):
        row.updated_at = now
    await session.flush()
    return row


# --------------------------------------------------------------------------- disbursements


@dataclass
class DisbursementFields:
    """A disbursement as entered: unit key, amount in fen, paid-on date, batch label, voucher."""

    unit_key: str
    amount_fen: int
    paid_on: dt.date
    batch: str = ""
    voucher: str = ""
    key: str | None = None


def disbursement_base_key(unit_key: str, batch: str, paid_on: dt.date) -> str:
    return f"{unit_key}/{batch}/{paid_on.isoformat()}"


async def list_disbursements(
    session: AsyncSession, project_id: int, *, unit_id: int | None = None
) -> list[tuple[Disbursement, Unit]]:
    """Disbursements with their unit, by date then key."""
    stmt = (
        select(Disbursement, Unit)
        .join(Unit, Unit.id == Disbursement.unit_id)
        .where(Disbursement.project_id == project_id)
        .order_by(Disbursement.paid_on, Disbursement.key)
    )
    if unit_id is not None:
        stmt = stmt.where(Disbursement.unit_id == unit_id)
    return [(d, u) for d, u in (await session.execute(stmt)).all()]


async def get_disbursement(session: AsyncSession, project_id: int, disbursement_id: int) -> Disbursement:
    row = await session.get(Disbursement, disbursement_id)
    if row is None or row.project_id != project_id:
        raise NotFound(
            f"拨付记录不存在：{disbursement_id}",
            f"no such disbursement: {disbursement_id}",
            where="disbursement",
        )
    return row


def _check_disbursement_text(batch: str, voucher: str, key: str | None) -> list[FieldProblem]:
    problems = []
    if len(batch) > 50 or _has_control(batch):
        problems.append(
            FieldProblem("batch", "invalid_value", "批次不超过50字", "batch must be at most 50 characters")
        )
    if len(voucher) > 100 or _has_control(voucher):
        problems.append(FieldProblem("voucher", "invalid_value", "凭证号不超过100字", "voucher must be at most 100 characters"))  # fmt: skip
    if key is not None and (not key or len(key) > 100 or _has_control(key)):
        problems.append(FieldProblem("key", "invalid_value", "拨付编号为1–100字", "disbursement key must be 1–100 characters"))  # fmt: skip
    return problems


async def _free_key(session: AsyncSession, project_id: int, base: str, taken: set[str]) -> str:
    existing = (
        set(
            (
                await session.execute(
                    select(Disbursement.key).where(
                        Disbursement.project_id == project_id,
                        (Disbursement.key == base) | Disbursement.key.startswith(base + "#"),
                    )
                )
            ).scalars()
        )
        | taken
    )
    if base not in existing:
        return base
    n = 2
    while f"{base}#{n}" in existing:
        n += 1
    return f"{base}#{n}"


async def create_disbursement(
    session: AsyncSession, project_id: int, fields: DisbursementFields, *, now: dt.datetime
) -> Disbursement:
    """Add one payment. Without a key, ``unit/batch/date`` (``#n`` for repeats) is used."""
    problems = _check_disbursement_text(fields.batch, fields.voucher, fields.key)
    unit = await find_unit(session, project_id, fields.unit_key)
    if unit is None:
        problems.append(FieldProblem("unit", "unknown_unit", f"单位 {fields.unit_key!r} 不存在", f"unit {fields.unit_key!r} does not exist"))  # fmt: skip
    if problems:
        raise FieldsInvalid(problems)
    assert unit is not None and unit.id is not None
    if fields.key is not None:
        clash = await session.scalar(
            select(Disbursement.id).where(
                Disbursement.project_id == project_id, Disbursement.key == fields.key
            )
        )
        if clash is not None:
            raise Conflict(
                f"拨付编号 {fields.key} 已存在", f"disbursement key {fields.key} already exists", where="key"
            )
        key = fields.key
    else:
        key = await _free_key(
            session, project_id, disbursement_base_key(unit.key, fields.batch, fields.paid_on), set()
        )
    row = Disbursement(
        project_id=project_id,
        unit_id=unit.id,
        key=key,
        batch=fields.batch,
        amount_fen=fields.amount_fen,
        paid_on=fields.paid_on,
        voucher=fields.voucher,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    await _require_ledger(session, project_id)
    return row


async def update_disbursement(
    session: AsyncSession, project_id: int, disbursement_id: int, changes: dict[str, Any], *, now: dt.datetime
) -> Disbursement:
    """Change amount_fen, paid_on, batch, voucher or unit_key of one disbursement (its key stays,
    so confirmations stay attached; a changed amount shows up as a discrepancy)."""
    row = await get_disbursement(session, project_id, disbursement_id)
    problems = _check_disbursement_text(changes.get("batch", ""), changes.get("voucher", ""), None)
    if "unit_key" in changes:
        unit = await find_unit(session, project_id, changes["unit_key"])
        if unit is None:
            problems.append(FieldProblem("unit", "unknown_unit", f"单位 {changes['unit_key']!r} 不存在", f"unit {changes['unit_key']!r} does not exist"))  # fmt: skip
        else:
            changes = {**changes, "unit_id": unit.id}
    if problems:
        raise FieldsInvalid(problems)
    changed = False
    amount_changed = "amount_fen" in changes and row.amount_fen != changes["amount_fen"]
    for name in ("amount_fen", "paid_on", "batch", "voucher", "unit_id"):
        if name in changes and getattr(row, name) != changes[name]:
            setattr(row, name, changes[name])
            changed = True
    if changed:
        row.updated_at = now
        await _require_ledger(session, project_id)
    if amount_changed:
        await follow_disbursed_amounts(session, project_id)
    await session.flush()
    return row


# --------------------------------------------------------------------------- the ledger


async def ledger_problems(session: AsyncSession, project_id: int) -> list[LedgerProblem[str]]:
    """The project's ledger as it stands in this session (pending changes flushed) checked by
    :func:`config.ledger.check_ledger` — the same invariants the definition loader applies.
    Each problem's ``ref`` is the disbursement's key (None for a total)."""
    from store.projects import get_definition  # local: projects imports this module's neighbours

    await session.flush()
    project = await session.get(Project, project_id)
    if project is None:
        raise NotFound(f"项目不存在：{project_id}", f"no such project: {project_id}", where="project")
    period = None
    if project.current_version:
        info = (await get_definition(session, project)).project
        period = (info.period_start, info.period_end)
    arrivals = [
        Entry(f"arrival:{day}", day, int(fen))
        for day, fen in (
            await session.execute(
                select(FundArrival.arrived_on, FundArrival.amount_fen).where(
                    FundArrival.project_id == project_id
                )
            )
        ).all()
    ]
    disbursements = [
        Entry(key, day, int(fen))
        for key, day, fen in (
            await session.execute(
                select(Disbursement.key, Disbursement.paid_on, Disbursement.amount_fen).where(
                    Disbursement.project_id == project_id
                )
            )
        ).all()
    ]
    return check_ledger(
        period=period, budget_fen=project.budget_fen, arrivals=arrivals, disbursements=disbursements
    )


def _ledger_field(problem: LedgerProblem[str]) -> str:
    return "paid_on" if problem.field == "date" else "amount"


async def _require_ledger(session: AsyncSession, project_id: int) -> None:
    """Refuse (``FieldsInvalid``) a single change that breaks the ledger; the caller rolls back."""
    problems = await ledger_problems(session, project_id)
    if problems:
        raise FieldsInvalid([FieldProblem(_ledger_field(p), p.code, p.zh, p.en) for p in problems])


# --------------------------------------------------------------------------- tables


Kind = Literal["csv", "xlsx"]


def _reject(code: str, zh: str, en: str) -> ImportRejected:
    return ImportRejected([RowProblem(0, "", code, zh, en)])


def read_table(data: bytes, kind: Kind | None = None) -> Table:
    """CSV or XLSX bytes → :class:`config.tables.Table` through the one reader and decoder
    (``config.tables``: UTF-8 ± BOM, UTF-16 BOM, GB18030); ``ImportRejected`` on unreadable files."""
    try:
        return _read_table(data, kind)
    except TableError as exc:
        raise ImportRejected(
            [RowProblem(p.row, p.column, p.code, p.zh, p.en) for p in exc.problems]
        ) from None


_text = cell_text


def _missing_columns(table: Table, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in table.header]
    if missing:
        raise ImportRejected(
            [
                RowProblem(
                    1,
                    ",".join(missing),
                    "header",
                    f"表头缺少列：{', '.join(missing)}",
                    f"header is missing column(s): {', '.join(missing)}",
                )
            ]  # fmt: skip
        )


def _row_problems(number: int, exc: FieldsInvalid) -> list[RowProblem]:
    return [RowProblem(number, p.field, p.code, f"第 {number} 行 {p.field}：{p.zh}", f"row {number} {p.field}: {p.en}") for p in exc.problems]  # fmt: skip


@dataclass
class ImportSummary:
    """What an import did (counts of rows)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def parse_unit_rows(table: Table) -> tuple[list[tuple[int, UnitFields]], list[RowProblem]]:
    """Validate every unit row (columns as in ``units.csv``: key, name, uscc, channel_kind,
    channel_address, other ``channel_*`` columns → channel config, ``active`` optional)."""
    _missing_columns(table, ("key", "name"))
    out: list[tuple[int, UnitFields]] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for number, cells in table.rows:
        config = {
            c.removeprefix("channel_"): _text(v)
            for c, v in cells.items()
            if c.startswith("channel_") and c not in ("channel_kind", "channel_address") and _text(v)
        }
        active_text = _text(cells.get("active", "")).lower()
        if active_text not in ("", "1", "true", "yes", "y", "是", "0", "false", "no", "n", "否"):
            problems.append(RowProblem(number, "active", "invalid_value", f"第 {number} 行 active：应为 是/否 或 true/false", f"row {number} active: true/false expected"))  # fmt: skip
        fields = UnitFields(
            key=_text(cells.get("key")),
            name=_text(cells.get("name")),
            uscc=_text(cells.get("uscc")) or None,
            channel_kind=_text(cells.get("channel_kind")) or "console",
            channel_address=_text(cells.get("channel_address")),
            channel_config=config,
            active=active_text not in ("0", "false", "no", "n", "否"),
        )
        cleaned, field_problems = check_unit(fields)
        if field_problems:
            problems.extend(_row_problems(number, FieldsInvalid(field_problems)))
            continue
        if cleaned.key in seen:
            problems.append(RowProblem(number, "key", "duplicate_unit_key", f"第 {number} 行 key：单位编号 {cleaned.key} 与第 {seen[cleaned.key]} 行重复",
                                       f"row {number} key: unit key {cleaned.key} repeats row {seen[cleaned.key]}"))  # fmt: skip
            continue
        seen[cleaned.key] = number
        out.append((number, cleaned))
    return out, problems


async def import_units(
    session: AsyncSession, project_id: int, table: Table, *, now: dt.datetime
) -> ImportSummary:
    """Create or update units from a table; all-or-nothing (raises ``ImportRejected``)."""
    rows, problems = parse_unit_rows(table)
    if problems:
        raise ImportRejected(problems)
    if not rows:
        raise _reject("empty", "文件中没有数据行", "the file has no data rows")
    existing = {u.key: u for u in await list_units(session, project_id)}
    summary = ImportSummary()
    for _number, f in rows:
        row = existing.get(f.key)
        if row is None:
            row = Unit(project_id=project_id, key=f.key, name=f.name, created_at=now, updated_at=now)
            _apply_unit(row, f)
            session.add(row)
            summary.created += 1
        elif _apply_unit(row, f):
            row.updated_at = now
            summary.updated += 1
        else:
            summary.unchanged += 1
    await session.flush()
    return summary


async def import_disbursements(
    session: AsyncSession, project_id: int, table: Table, *, now: dt.datetime
) -> ImportSummary:
    """Create or update disbursements from a table (columns: unit, amount (元), date, batch,
    voucher, optional key); all-or-nothing (raises ``ImportRejected`` listing every bad row)."""
    _missing_columns(table, ("unit", "amount", "date"))
    units = {u.key: u for u in await list_units(session, project_id)}
    problems: list[RowProblem] = []
    parsed: list[tuple[int, DisbursementFields]] = []
    for number, cells in table.rows:
        row_problems: list[RowProblem] = []
        unit_key = _text(cells.get("unit"))
        if unit_key not in units:
            row_problems.append(RowProblem(number, "unit", "unknown_unit", f"第 {number} 行 unit：单位 {unit_key!r} 不存在",
                                           f"row {number} unit: unit {unit_key!r} does not exist"))  # fmt: skip
        amount_fen = paid_on = None
        try:
            amount_fen = parse_yuan(cells.get("amount", ""), field_name="amount")
        except FieldsInvalid as exc:
            row_problems.extend(_row_problems(number, exc))
        try:
            paid_on = parse_date(cells.get("date", ""), field_name="date")
        except FieldsInvalid as exc:
            row_problems.extend(_row_problems(number, exc))
        batch, voucher = _text(cells.get("batch")), _text(cells.get("voucher"))
        key = _text(cells.get("key")) or None
        text_problems = _check_disbursement_text(batch, voucher, key)
        if text_problems:
            row_problems.extend(_row_problems(number, FieldsInvalid(text_problems)))
        if row_problems:
            problems.extend(row_problems)
            continue
        assert amount_fen is not None and paid_on is not None
        parsed.append((number, DisbursementFields(unit_key, amount_fen, paid_on, batch, voucher, key)))
    # Stable keys: explicit, else unit/batch/date with #n for repeats inside the file.
    seen: Counter[str] = Counter()
    keyed: list[tuple[int, str, DisbursementFields]] = []
    first_row: dict[str, int] = {}
    for number, f in parsed:
        if f.key is None:
            base = disbursement_base_key(f.unit_key, f.batch, f.paid_on)
            seen[base] += 1
            key = base if seen[base] == 1 else f"{base}#{seen[base]}"
        else:
            key = f.key
        if key in first_row:
            problems.append(RowProblem(number, "key", "duplicate_key", f"第 {number} 行 key：拨付编号 {key} 与第 {first_row[key]} 行重复",
                                       f"row {number} key: disbursement key {key} repeats row {first_row[key]}"))  # fmt: skip
            continue
        first_row[key] = number
        keyed.append((number, key, f))
    if problems:
        raise ImportRejected(sorted(problems, key=lambda p: p.row))
    if not keyed:
        raise _reject("empty", "文件中没有数据行", "the file has no data rows")
    existing = {
        d.key: d
        for d in (
            await session.execute(select(Disbursement).where(Disbursement.project_id == project_id))
        ).scalars()
    }
    summary = ImportSummary()
    amounts_changed = False
    for _number, key, f in keyed:
        unit_id = units[f.unit_key].id
        assert unit_id is not None
        row = existing.get(key)
        values = (unit_id, f.amount_fen, f.paid_on, f.batch, f.voucher)
        if row is None:
            session.add(
                Disbursement(
                    project_id=project_id,
                    unit_id=unit_id,
                    key=key,
                    batch=f.batch,
                    amount_fen=f.amount_fen,
                    paid_on=f.paid_on,
                    voucher=f.voucher,
                    created_at=now,
                    updated_at=now,
                )
            )
            summary.created += 1
        elif (row.unit_id, row.amount_fen, row.paid_on, row.batch, row.voucher) != values:
            amounts_changed = amounts_changed or row.amount_fen != f.amount_fen
            row.unit_id, row.amount_fen, row.paid_on, row.batch, row.voucher = values
            row.updated_at = now
            summary.updated += 1
        else:
            summary.unchanged += 1
    if amounts_changed:
        await follow_disbursed_amounts(session, project_id)
    await session.flush()
    rows_by_key = {key: number for number, key, _ in keyed}
    ledger = await ledger_problems(session, project_id)
    if ledger:
        out = []
        for p in ledger:
            number = rows_by_key.get(p.ref or "", 0)
            column = "date" if p.field == "date" else "amount"
            if number:
                out.append(RowProblem(number, column, p.code, f"第 {number} 行 {column}：{p.zh}", f"row {number} {column}: {p.en}"))  # fmt: skip
            elif p.ref is not None:
                out.append(RowProblem(0, column, p.code, f"已有拨付 {p.ref}：{p.zh}", f"existing disbursement {p.ref}: {p.en}"))  # fmt: skip
            else:
                out.append(RowProblem(0, column, p.code, f"导入后{p.zh}", f"after this import, {p.en}"))
        raise ImportRejected(out)
    return summary


async def units_page(
    session: AsyncSession, project_id: int, *, search: str = "", limit: int = 50, offset: int = 0
) -> tuple[int, list[Unit]]:
    """``(matching count, one page)`` of the project's units by key; ``search`` matches key,
    name or USCC (substring). Uses the (project_id, key) unique index: fast at 10,000 units."""
    stmt = select(Unit).where(Unit.project_id == project_id)
    if search:
        like = f"%{search.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(Unit.key.like(like), Unit.name.like(like), Unit.uscc.like(like)))  # type: ignore[union-attr,attr-defined]
    total = int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())
    rows = list((await session.execute(stmt.order_by(Unit.key).limit(limit).offset(offset))).scalars())
    return total, rows
