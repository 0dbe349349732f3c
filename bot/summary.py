"""The coordinators' score summary as a platform-neutral message: ``gather_summary`` reads the
database, everything else is pure (data in, Message out). Shared by the scheduled summary job
(``scheduler.jobs``) and the bot's chat-command replies (``bot.inbound``).

What a summary says, in order: project, total and grade; the indicator table (a ``Table`` block —
each channel adapter renders it for its platform and splits long tables at row boundaries); what
changed since the previous summarised snapshot; 回收率 (answered / invited) and who has not
answered; unconfirmed and disputed payments (counts, money in 元, first N names); 双监控 deviation
warnings (execution rate behind time progress) and the scoring warnings; a signed link to the full
report.

Money arrives as integer fen and is shown in 元 with two decimals; scores and rates are Decimal
strings from the snapshot and are never turned into floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.channels.message import Block, Bullets, Link, Message, Table, Text
from bot.report import deviation_warnings, period_of, yuan
from config.timefmt import local_time
from scoring.report import HEADERS, pct
from store.db import SessionMaker
from store.models import (
    Campaign,
    Disbursement,
    PaymentConfirmation,
    ProjectVersion,
    Response,
    ScoreSnapshot,
    Unit,
)
from store.models import (
    Link as LinkRow,
)
from store.schedules import previous_result
from store.scores import latest_snapshot

MINUS = "−"  # U+2212: a real minus sign reads better than a hyphen in chat clients


def signed(delta: Decimal) -> str:
    """``+0.83`` / ``−0.83`` / ``±0`` with the snapshot's decimals."""
    if delta > 0:
        return f"+{delta}"
    if delta < 0:
        return f"{MINUS}{-delta}"
    return "±0"


def _dec(x: Any) -> Decimal | None:
    return None if x is None else Decimal(str(x))


def table_rows(indicators: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Rows as published: 一级/二级 shown on their first row only; 分值, 得分, 得分率."""
    out = []
    last1 = last2 = None
    for r in indicators:
        l1 = r["level1"] if r["level1"] != last1 else ""
        l2 = r["level2"] if (r["level1"], r["level2"]) != (last1, last2) else ""
        last1, last2 = r["level1"], r["level2"]
        name = (
            r["name"]
            + ("（调整）" if r.get("overridden") else "")
            + ("（不适用）" if not r.get("applicable", True) else "")
        )
        score = "—" if r.get("score") is None else str(r["score"])
        out.append((l1, l2, name, str(r["weight"]), score, pct(_dec(r.get("rate")))))
    return out


def changes(current: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    """Lines for the total and every indicator whose score moved, e.g. ``满意度 5.00 → 4.17 (−0.83)``."""
    if previous is None:
        return []
    lines = []
    t0, t1 = _dec(previous.get("total")), _dec(current.get("total"))
    if t0 is not None and t1 is not None and t0 != t1:
        lines.append(f"总分 {t0} → {t1} ({signed(t1 - t0)})")
    if previous.get("grade") != current.get("grade"):
        lines.append(f"等级 {previous.get('grade')} → {current.get('grade')}")
    before = {r["key"]: r for r in previous.get("indicators", [])}
    for r in current.get("indicators", []):
        old = before.get(r["key"])
        if old is None:
            lines.append(f"{r['name']} 新增，得分 {r.get('score') or '—'}")
            continue
        a, b = _dec(old.get("score")), _dec(r.get("score"))
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"{r['name']} {a if a is not None else '—'} → {b if b is not None else '—'}")
        else:
            lines.append(f"{r['name']} {a} → {b} ({signed(b - a)})")
    return lines


@dataclass(frozen=True)
class Names:
    """A count, money (fen) and the first few unit names of a group of units/payments."""

    count: int
    fen: int = 0
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SummaryData:
    """Everything a summary shows, already gathered from the database."""

    project_code: str
    project_name: str
    when_local: str  # e.g. "2026-03-02 09:00（北京时间）" (config.timefmt.local_time)
    snapshot: dict[str, Any]
    previous: dict[str, Any] | None
    invited: int
    answered: int
    not_answered: Names
    unconfirmed: Names
    disputed: Names
    budget_fen: int
    disbursed_fen: int
    period_start: date | None
    period_end: date | None
    today: date
    deviation_threshold: Decimal = Decimal("0.10")
    report_url: str | None = None
    extra_warnings: tuple[str, ...] = field(default_factory=tuple)


def deviations(data: SummaryData) -> list[str]:
    """双监控 warnings for the summary (see ``bot.report.deviation_warnings``)."""
    return deviation_warnings(
        budget_fen=data.budget_fen,
        disbursed_fen=data.disbursed_fen,
        period_start=data.period_start,
        period_end=data.period_end,
        today=data.today,
        threshold=data.deviation_threshold,
    )


def _names(group: Names, n_shown: int) -> str:
    shown = "、".join(group.names)
    more = group.count - len(group.names)
    if n_shown and more > 0:
        shown += f" 等（另 {more} 家）"
    return shown


def build_summary(data: SummaryData) -> Message:
    """The summary message. Sections with nothing to say are left out; the table always shows."""
    snap = data.snapshot
    blocks: list[Block] = [
        Text(
            f"项目：{data.project_name}（{data.project_code}）\n总分 {snap.get('total')}，等级 {snap.get('grade')}"
        )
    ]
    # In chat apps without tables: 一级 as headings, one "名称 得分/分值" line per indicator.
    blocks.append(Table(HEADERS, table_rows(snap.get("indicators", [])), group=0, line="{2} {4}/{3}"))
    if data.previous is None:
        blocks.append(Text("变化：首次汇总"))
    else:
        moved = changes(snap, data.previous)
        blocks.append(Text("较上次汇总的变化：" + ("无" if not moved else "")))
        if moved:
            blocks.append(Bullets(moved))
    rate = pct(Decimal(data.answered) / Decimal(data.invited)) if data.invited else "—"
    lines = [f"问卷回收率 {rate}（已答 {data.answered} / 已邀请 {data.invited}）"]
    if data.not_answered.count:
        lines.append(
            f"未答单位 {data.not_answered.count} 家：{_names(data.not_answered, len(data.not_answered.names))}"
        )
    if data.unconfirmed.count:
        lines.append(
            f"未确认拨付 {data.unconfirmed.count} 笔，{yuan(data.unconfirmed.fen)}："
            f"{_names(data.unconfirmed, len(data.unconfirmed.names))}"
        )
    if data.disputed.count:
        lines.append(
            f"有异议拨付 {data.disputed.count} 笔，{yuan(data.disputed.fen)}：{_names(data.disputed, len(data.disputed.names))}"
        )
    blocks.append(Bullets(lines))
    warnings = deviations(data)
    warnings += [w["message"] if isinstance(w, dict) else str(w) for w in snap.get("warnings", [])]
    warnings += list(data.extra_warnings)
    if warnings:
        blocks.append(Text("预警："))
        blocks.append(Bullets([f"⚠ {w}" for w in warnings]))
    link = Link(data.report_url, "完整报告与表格下载（链接有效期内可用）") if data.report_url else None
    return Message(
        title=f"{data.project_name} 绩效评分汇总 {data.when_local}", blocks=tuple(blocks), link=link
    )


# --------------------------------------------------------------------------- payload (JSON) form


def message_to_payload(message: Message, **extra: Any) -> dict[str, Any]:
    """The outbox payload of a Message: ``title``, ``blocks`` (``{"type": "text"|"table"|
    "bullets", …}``), ``link``, plus ``extra`` keys (``kind``, ``link_id`` …). Same shape as
    ``store.campaigns.invitation_payload``."""
    blocks: list[dict[str, Any]] = []
    for b in message.blocks:
        if isinstance(b, Text):
            blocks.append({"type": "text", "text": b.text})
        elif isinstance(b, Table):
            table: dict[str, Any] = {
                "type": "table",
                "headers": list(b.headers),
                "rows": [list(r) for r in b.rows],
            }
            if b.line:
                table.update(group=b.group, line=b.line)
            blocks.append(table)
        else:
            blocks.append({"type": "bullets", "items": list(b.items)})
    out: dict[str, Any] = {**extra, "title": message.title, "blocks": blocks}
    if message.link is not None:
        out["link"] = {"url": message.link.url, "text": message.link.text}
    return out


def payload_to_message(payload: dict[str, Any], *, link_url: str | None = None) -> Message:
    """Inverse of :func:`message_to_payload`; ``link_url`` replaces a ``{link_url}`` placeholder."""
    blocks: list[Block] = []
    for b in payload.get("blocks", []):
        kind = b.get("type")
        if kind == "table":
            blocks.append(
                Table(
                    tuple(b["headers"]),
                    tuple(tuple(r) for r in b["rows"]),
                    group=int(b.get("group", -1)),
                    line=str(b.get("line", "")),
                )
            )
        elif kind == "bullets":
            blocks.append(Bullets(tuple(b["items"])))
        else:
            blocks.append(Text(str(b.get("text", ""))))
    link = None
    if payload.get("link"):
        url = payload["link"]["url"]
        if link_url is not None:
            url = url.replace("{link_url}", link_url)
        link = Link(url, payload["link"].get("text", url))
    return Message(title=payload.get("title", ""), blocks=tuple(blocks), link=link)


# --------------------------------------------------------------------------- gathering (database)


def report_token_url(report_url_base: str, secret: bytes, code: str, *, now: datetime, days: int) -> str:
    from bot.report import sign_report

    return f"{report_url_base.rstrip('/')}/r/{sign_report(secret, code, now + timedelta(days=days))}"


async def gather_summary(
    sm: SessionMaker,
    project_code: str,
    *,
    schedule_id: int | None,
    fire_time: datetime,
    now: datetime,
    report_url: str | None,
    first_n: int = 10,
    deviation_threshold: Decimal = Decimal("0.10"),
    snapshot: ScoreSnapshot | None = None,
    previous_snapshot_id: int | None = None,
    require_snapshot: bool = True,
) -> tuple[SummaryData, ScoreSnapshot]:
    """Read everything the summary shows (one short read transaction). Returns (SummaryData, snapshot).

    "What changed" compares with the snapshot the schedule's previous fire summarised
    (``schedule_id``), or with ``previous_snapshot_id`` (chat commands: the last summary posted). Without a snapshot: LookupError, unless
    ``require_snapshot`` is false (answer rate and payments need none; the snapshot part of the
    data is then empty and the returned snapshot None)."""
    from store.projects import get_project

    async with sm() as session, session.begin():
        project = await get_project(session, project_code)
        pid = project.id
        snap = snapshot or await latest_snapshot(session, pid)  # type: ignore[arg-type]
        if snap is None and require_snapshot:
            raise LookupError("no snapshot")
        previous_doc = None
        if schedule_id is not None:
            prev = await previous_result(session, schedule_id, before=fire_time)
            if prev and prev.get("snapshot_id"):
                prev_snap = await session.get(ScoreSnapshot, prev["snapshot_id"])
                previous_doc = prev_snap.table if prev_snap is not None else None
        elif previous_snapshot_id is not None:
            prev_snap = await session.get(ScoreSnapshot, previous_snapshot_id)
            previous_doc = prev_snap.table if prev_snap is not None else None
        definition = await session.scalar(
            select(ProjectVersion.definition).where(
                ProjectVersion.project_id == pid, ProjectVersion.version == project.current_version
            )
        )
        start, end = period_of(definition)
        # 回收率: units with a live link in any campaign of the project vs. those with a current response.
        invited_units = (
            select(LinkRow.unit_id)
            .join(Campaign, Campaign.id == LinkRow.campaign_id)
            .where(Campaign.project_id == pid, LinkRow.revoked_at.is_(None))
            .distinct()
        ).subquery()
        # Uncorrelated IN / NOT IN (once per query): a correlated EXISTS per unit was planned on
        # SQLite as a scan of all current responses per unit (10,000 units: 4 s per query).
        responded = select(Response.unit_id).where(Response.project_id == pid, Response.is_current.is_(True))
        invited = int(await session.scalar(select(func.count()).select_from(invited_units)) or 0)
        answered = int(
            await session.scalar(
                select(func.count())
                .select_from(Unit)
                .where(Unit.id.in_(select(invited_units.c.unit_id)), Unit.id.in_(responded))
            )
            or 0
        )
        not_answered_q = (
            select(Unit.name)
            .where(Unit.id.in_(select(invited_units.c.unit_id)), Unit.id.not_in(responded))
            .order_by(Unit.key)
        )
        not_answered_names = tuple((await session.execute(not_answered_q.limit(first_n))).scalars())
        current_conf = (
            select(PaymentConfirmation.disbursement_id, PaymentConfirmation.status)
            .where(PaymentConfirmation.project_id == pid, PaymentConfirmation.is_current.is_(True))
            .subquery()
        )
        base = (
            select(Disbursement.amount_fen, Unit.name, Unit.key)
            .join(Unit, Unit.id == Disbursement.unit_id)
            .outerjoin(current_conf, current_conf.c.disbursement_id == Disbursement.id)
            .where(Disbursement.project_id == pid)
        )

        async def group(cond: Any) -> Names:
            sub = base.where(cond).subquery()
            count, fen = (
                await session.execute(select(func.count(), func.coalesce(func.sum(sub.c.amount_fen), 0)))
            ).one()
            names = (
                await session.execute(
                    select(sub.c.name).group_by(sub.c.name, sub.c.key).order_by(sub.c.key).limit(first_n)
                )
            ).scalars()
            return Names(int(count), int(fen), tuple(names))

        unconfirmed = await group(current_conf.c.status.is_(None))
        disputed = await group(current_conf.c.status == "disputed")
        disbursed = int(
            await session.scalar(
                select(func.coalesce(func.sum(Disbursement.amount_fen), 0)).where(
                    Disbursement.project_id == pid
                )
            )
            or 0
        )
        not_answered_count = invited - answered
    tz = ZoneInfo(project.timezone)
    local = fire_time.astimezone(tz)
    data = SummaryData(
        project_code=project.code,
        project_name=project.name,
        when_local=local_time(local, tz),
        snapshot=snap.table if snap is not None else {},
        previous=previous_doc,
        invited=invited,
        answered=answered,
        not_answered=Names(not_answered_count, 0, not_answered_names),
        unconfirmed=unconfirmed,
        disputed=disputed,
        budget_fen=project.budget_fen,
        disbursed_fen=disbursed,
        period_start=start,
        period_end=end,
        today=now.astimezone(tz).date(),
        deviation_threshold=deviation_threshold,
        report_url=report_url,
    )
    return data, snap
