"""The full report behind a signed, expiring link: ``GET /r/{signed}``.

``signed`` is ``{project code}.{expiry epoch seconds}.{signature}``; the signature is
base64url(HMAC-SHA256(server secret, "report:" + code + ":" + expiry))[:32]. Whoever holds the
link can read the report until it expires (coordinators forward it inside their group); nothing
else is exposed. Expired or forged links get a friendly page (same page for both, 404/410).

The page (no JavaScript; works in chat apps' in-app browsers) shows the indicator table with each
score's explanation, the warnings (scoring warnings and 双监控 execution-vs-time deviation), an
inline SVG chart of the total and key rates over the snapshot history, and downloads: the table
as XLSX (``scoring.report.xlsx_bytes``), the 自评表 (XLSX, DOCX) and the 评价报告 (DOCX) from
``bot.documents``, raw responses and confirmations as CSV (UTF-8 BOM so Excel opens Chinese text
correctly).

Also exposes the shared helpers the summary job uses (``sign_report``, ``deviation_warnings``,
``time_progress``) — the scheduler may import ``bot``, never the reverse.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.documents import DOCUMENTS, load_document_data
from bot.documents.data import score_table_from_json
from bot.errors import error_page
from bot.links import SECURITY_HEADERS
from config.timefmt import local_time, zone_name
from scoring import money
from scoring.report import pct
from store.models import Project, ProjectVersion, ScoreSnapshot
from store.scores import latest_snapshot, list_snapshots

_SIGNED = re.compile(r"^([a-z0-9]+(?:-[a-z0-9]+)*)\.(\d{1,12})\.([A-Za-z0-9_-]{32})$")
#: How many snapshots the chart plots at most (newest kept).
CHART_POINTS = 200


# ------------------------------------------------------------------------------------ signing


def _mac(secret: bytes, code: str, expiry: int) -> str:
    digest = hmac.new(secret, f"report:{code}:{expiry}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


def sign_report(secret: bytes, code: str, expires_at: datetime) -> str:
    """The path segment for ``code``'s report, valid until ``expires_at`` (aware)."""
    expiry = int(expires_at.timestamp())
    return f"{code}.{expiry}.{_mac(secret, code, expiry)}"


class BadReportLink(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason  # "forged" | "expired"
        super().__init__(reason)


def verify_report(secret: bytes, signed: str, *, now: datetime) -> str:
    """The project code of a valid, unexpired link; :class:`BadReportLink` otherwise."""
    m = _SIGNED.match(signed)
    if m is None:
        raise BadReportLink("forged")
    code, expiry, sig = m[1], int(m[2]), m[3]
    if not hmac.compare_digest(sig, _mac(secret, code, expiry)):
        raise BadReportLink("forged")
    if now.timestamp() >= expiry:
        raise BadReportLink("expired")
    return code


# ------------------------------------------------------------------------------------ 双监控


def yuan(fen: int) -> str:
    """Integer fen → ``1,234.56 元``."""
    return f"{money.yuan_display(fen)} 元"


def time_progress(start: date | None, end: date | None, today: date) -> Decimal | None:
    """Elapsed share of the period (both ends inclusive), clamped to [0, 1], 4 decimals half-up."""
    if start is None or end is None or end < start:
        return None
    total = (end - start).days + 1
    elapsed = min(max((today - start).days + 1, 0), total)
    return (Decimal(elapsed) / Decimal(total)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def deviation_warnings(
    *,
    budget_fen: int,
    disbursed_fen: int,
    period_start: date | None,
    period_end: date | None,
    today: date,
    threshold: Decimal = Decimal("0.10"),
) -> list[str]:
    """双监控: a warning when the execution rate (disbursed / budget) is behind the elapsed share
    of the period by more than ``threshold`` (a fraction; 0.10 = 10 percentage points)."""
    progress = time_progress(period_start, period_end, today)
    if progress is None or budget_fen <= 0:
        return []
    execution = (Decimal(disbursed_fen) / Decimal(budget_fen)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    gap = progress - execution
    if gap <= threshold:
        return []
    return [
        f"预算执行进度滞后：执行率 {pct(execution)}（已支出 {yuan(disbursed_fen)} / 预算 {yuan(budget_fen)}），"
        f"时间进度 {pct(progress)}，相差 {pct(gap)}，超过 {pct(threshold)}"
    ]


def period_of(definition: dict[str, Any] | None) -> tuple[date | None, date | None]:
    """(period_start, period_end) from a stored definition JSON, or (None, None)."""
    info = (definition or {}).get("project", {})
    try:
        return date.fromisoformat(str(info["period_start"])), date.fromisoformat(str(info["period_end"]))
    except (KeyError, ValueError, TypeError):
        return None, None


# ------------------------------------------------------------------------------------ chart


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    points: str  # SVG polyline "x,y x,y …"
    last: str
    #: SVG stroke-dasharray and width: series that sit on the same value (all at 100) stay
    #: distinguishable — the total is a wide pale band, the rates thinner dashed lines on it
    dash: str = ""
    width: str = "2"


def _rate(n: int, d: int) -> Decimal | None:
    return None if d <= 0 else Decimal(n) / Decimal(d)


def chart(
    snapshots: list[ScoreSnapshot], tz: ZoneInfo, *, width: int = 640, height: int = 240
) -> dict[str, Any]:
    """Polylines (0–100 scale) for 总分 and the key rates over the snapshots (oldest first).

    x is proportional to time; with one snapshot the points sit in the middle."""
    pad_l, pad_r, pad_t, pad_b = 36, 10, 10, 28
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    times = [s.computed_at.timestamp() for s in snapshots]
    t0, t1 = (min(times), max(times)) if times else (0.0, 0.0)

    def x(t: float) -> float:
        return pad_l + (plot_w / 2 if t1 == t0 else (t - t0) / (t1 - t0) * plot_w)

    def y(v: Decimal) -> float:
        v = min(max(v, Decimal(0)), Decimal(100))
        return pad_t + plot_h - float(v) / 100 * plot_h  # float only for pixel positions

    def facts(s: ScoreSnapshot) -> dict[str, Any]:
        return dict((s.table or {}).get("facts") or {})

    getters: list[tuple[str, str, Any]] = [
        ("总分", "#7fb0e6", lambda s: Decimal(str(s.total))),
        (
            "问卷回收率 %",
            "#1a7f37",
            lambda s: _pct100(_rate(facts(s).get("responded_units", 0), facts(s).get("invited_units", 0))),
        ),
        (
            "拨付确认率 %",
            "#bf8700",
            lambda s: _pct100(_rate(facts(s).get("confirmed_count", 0), facts(s).get("disbursements", 0))),
        ),
        (
            "预算执行率 %",
            "#8250df",
            lambda s: _pct100(_rate(facts(s).get("disbursed_fen", 0), facts(s).get("budget_fen", 0))),
        ),
    ]
    styles = [("", "6"), ("8 4", "2.5"), ("3 3", "2.5"), ("1 4", "3")]
    series = []
    for (name, color, get), (dash, stroke) in zip(getters, styles, strict=True):
        pts = []
        last = None
        for s, t in zip(snapshots, times, strict=True):
            v = get(s)
            if v is None:
                continue
            pts.append(f"{x(t):.1f},{y(v):.1f}")
            last = v
        if pts:
            series.append(
                Series(
                    name,
                    color,
                    " ".join(pts),
                    "—" if last is None else f"{last.quantize(Decimal('0.01'))}",
                    dash=dash,
                    width=stroke,
                )
            )
    grid = [{"y": f"{y(Decimal(v)):.1f}", "label": str(v)} for v in (0, 25, 50, 75, 100)]
    labels = []
    if snapshots:
        labels.append(
            {"x": f"{x(t0):.1f}", "text": snapshots[0].computed_at.astimezone(tz).strftime("%m-%d %H:%M")}
        )
        if len(snapshots) > 1:
            labels.append(
                {
                    "x": f"{x(t1):.1f}",
                    "text": snapshots[-1].computed_at.astimezone(tz).strftime("%m-%d %H:%M"),
                }
            )
    return {
        "width": width,
        "height": height,
        "series": series,
        "grid": grid,
        "labels": labels,
        "x0": pad_l,
        "x1": width - pad_r,
        "ybase": height - pad_b + 16,
        "count": len(snapshots),
        "zone": zone_name(tz),  # the axis labels are clock times in this zone: the caption says which
    }


def _pct100(rate: Decimal | None) -> Decimal | None:
    return None if rate is None else rate * 100


# ------------------------------------------------------------------------------------ score table


# ------------------------------------------------------------------------------------ handlers

#: Every ``/r/…`` response (page, error page, download): the unit page's CSP and
#: ``Referrer-Policy: no-referrer`` (the signed code is in the URL and must not leak through
#: Referer), never cached, never indexed.
REPORT_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "private, no-store", "X-Robots-Tag": "noindex"}


def _bad_link(request: web.Request, reason: str) -> web.Response:
    resp = _bad_link_page(request, reason)
    resp.headers.update(REPORT_HEADERS)
    return resp


def _bad_link_page(request: web.Request, reason: str) -> web.Response:
    if reason == "expired":
        return error_page(
            request,
            410,
            "报告链接已过期",
            "这个报告链接已过有效期。请在群里查看最新的评分汇总消息，其中有新的报告链接。",
            "Report link expired",
            "This report link has expired. Open the latest score summary in your group chat for a fresh link.",
        )
    return error_page(
        request,
        404,
        "报告链接无效",
        "无法打开这个报告链接，请检查链接是否完整，或使用群里最新汇总消息中的链接。",
        "Invalid report link",
        "This report link cannot be opened. Check that it is complete, or use the link in the latest summary.",
    )


async def _resolve(request: web.Request) -> tuple[str, str] | web.Response:
    signed = request.match_info["signed"]
    try:
        code = verify_report(request.app[keys.SECRET], signed, now=request.app[keys.CLOCK]())
    except BadReportLink as exc:
        return _bad_link(request, exc.reason)
    return code, signed


async def _load(
    request: web.Request, code: str
) -> tuple[Project, ScoreSnapshot | None, dict[str, Any] | None] | None:
    async with request.app[keys.SESSIONMAKER]() as session, session.begin():
        project = (await session.execute(select(Project).where(Project.code == code))).scalar_one_or_none()
        if project is None:
            return None
        snap = await latest_snapshot(session, project.id)  # type: ignore[arg-type]
        definition = await session.scalar(
            select(ProjectVersion.definition).where(
                ProjectVersion.project_id == project.id, ProjectVersion.version == project.current_version
            )
        )
    return project, snap, definition


async def report_page(request: web.Request) -> web.StreamResponse:
    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    code, signed = resolved
    loaded = await _load(request, code)
    if loaded is None:
        return _bad_link(request, "forged")
    project, snap, definition = loaded
    tz = ZoneInfo(project.timezone)
    now = request.app[keys.CLOCK]()
    async with request.app[keys.SESSIONMAKER]() as session, session.begin():
        history = list(reversed(await list_snapshots(session, project.id, limit=CHART_POINTS)))  # type: ignore[arg-type]
    doc = snap.table if snap is not None else None
    warnings: list[str] = []
    if doc is not None:
        facts = doc.get("facts") or {}
        start, end = period_of(definition)
        warnings += deviation_warnings(
            budget_fen=int(facts.get("budget_fen", project.budget_fen)),
            disbursed_fen=int(facts.get("disbursed_fen", 0)),
            period_start=start,
            period_end=end,
            today=now.astimezone(tz).date(),
        )
        warnings += [w["message"] for w in doc.get("warnings", [])]
    html = (
        request.app[keys.TEMPLATES]
        .get_template("report.html")
        .render(
            lang="zh-CN",
            title=f"{project.name} 绩效评价报告",
            project=project,
            doc=doc,
            snapshot=snap,
            computed_local=local_time(snap.computed_at, tz) if snap else "",
            rows=_rows(doc) if doc else [],
            groups=grouped_rows(_rows(doc)) if doc else [],
            warnings=warnings,
            chart=chart(history, tz),
            phone_chart=chart(history, tz, width=360, height=220),
            signed=signed,
            pct=pct,
        )
    )
    return web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers=REPORT_HEADERS,
    )


#: Internal references an evaluator leaves in a definition — "（§7 #12）", "(§四(三)1)" — are
#: for the people who maintain it, not for readers of the report.
_INTERNAL_NOTE = re.compile(r"\s*[（(]\s*§[^（）()]*(?:[（(][^（）()]*[)）][^（）()]*)*[)）]")


def clean_explanation(text: str) -> str:
    """An explanation as a reader should see it: internal § references removed."""
    return _INTERNAL_NOTE.sub("", text or "").strip()


def _rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in doc.get("indicators", []):
        rate = None if r.get("rate") is None else Decimal(str(r["rate"]))
        out.append(
            {
                **r,
                "explanation": clean_explanation(r.get("explanation", "")),
                "rate_text": pct(rate),
                "score_text": "—" if r.get("score") is None else r["score"],
            }
        )
    return out


def grouped_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped by 一级/二级 (in order), so a phone shows the group as a heading row
    instead of two narrow columns that wrap one character per line."""
    groups: list[dict[str, Any]] = []
    for r in rows:
        heading = f"{r.get('level1', '')} · {r.get('level2', '')}".strip(" ·")
        if not groups or groups[-1]["heading"] != heading:
            groups.append({"heading": heading, "rows": []})
        groups[-1]["rows"].append(r)
    return groups


async def report_xlsx(request: web.Request) -> web.StreamResponse:
    from scoring.report import xlsx_bytes

    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    loaded = await _load(request, resolved[0])
    if loaded is None or loaded[1] is None:
        return _bad_link(request, "forged")
    project, snap, _ = loaded
    assert snap is not None
    table = score_table_from_json(snap.table)
    # pandas/openpyxl are CPU work: keep them off the event loop.
    data = await asyncio.to_thread(xlsx_bytes, table, f"{project.name}（{project.year}）绩效评价评分表")
    return _download(
        data,
        f"{project.code}-score.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


async def report_document(request: web.Request) -> web.StreamResponse:
    """``/r/{signed}/zipingbiao.xlsx`` etc.: a deliverable rendered from the latest score result."""
    from store.errors import NotFound

    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    doc = DOCUMENTS[request.match_info["document"]]
    try:
        async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
            data = await load_document_data(session, resolved[0])
    except NotFound:
        return _bad_link(request, "forged")
    body = await asyncio.to_thread(doc.render, data)
    return _download(body, doc.filename(resolved[0], data.year), doc.media_type)


def _download(data: bytes, filename: str, mime: str) -> web.Response:
    return web.Response(
        body=data,
        headers={
            **REPORT_HEADERS,
            "Content-Type": mime,
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


def _csv(header: list[str], rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for row in rows:
        # Cells starting with = + - @ would run as formulas in Excel: prefix a quote.
        writer.writerow(["'" + c if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in row])
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def _fen_text(fen: int | None) -> str:
    return "" if fen is None else money.yuan(fen)


async def report_csv(request: web.Request) -> web.StreamResponse:
    import json

    from store.answers import list_confirmations, list_responses

    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    loaded = await _load(request, resolved[0])
    if loaded is None:
        return _bad_link(request, "forged")
    project, _, _ = loaded
    tz = ZoneInfo(project.timezone)
    what = request.match_info["what"]
    async with request.app[keys.SESSIONMAKER]() as session, session.begin():
        if what == "responses":
            records = await list_responses(session, project.id)  # type: ignore[arg-type]
            qkeys = sorted({k for r in records for k in r.answers})
            # Cells stay plain local times a spreadsheet can parse; the header names their zone.
            header = ["单位代码", "单位名称", "版本", f"提交时间（{zone_name(tz)}）", "满意度", *qkeys]
            rows = [
                [
                    r.unit_key,
                    r.unit_name,
                    r.response.version,
                    r.response.submitted_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
                    r.response.satisfaction or "",
                    *(
                        v
                        if isinstance(v := r.answers.get(k), str)
                        else ("" if v is None else json.dumps(v, ensure_ascii=False))
                        for k in qkeys
                    ),
                ]
                for r in records
            ]
        else:
            confs = await list_confirmations(session, project.id)  # type: ignore[arg-type]
            header = ["单位代码", "单位名称", "拨付编号", "批次", "拨付日期", "拨付金额(元)", "状态", "确认金额(元)", "差额(元)", "收款日期", "异议类型", "说明", f"提交时间（{zone_name(tz)}）"]  # fmt: skip
            rows = [
                [
                    c.unit_key,
                    c.unit_name,
                    c.disbursement_key,
                    c.batch,
                    c.paid_on.isoformat(),
                    _fen_text(c.disbursed_fen),
                    c.confirmation.status,
                    _fen_text(c.confirmation.amount_fen),
                    _fen_text(c.difference_fen),
                    c.confirmation.received_on.isoformat() if c.confirmation.received_on else "",
                    c.confirmation.dispute_kind or "",
                    c.confirmation.reason,
                    c.confirmation.submitted_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
                ]
                for c in confs
            ]
    return _download(_csv(header, rows), f"{project.code}-{what}.csv", "text/csv; charset=utf-8")


def setup(app: web.Application, *, start_workers: bool) -> None:
    """Routes of the full report, plus the admin schedule API (``bot.api.schedules``)."""
    del start_workers  # nothing runs in the background here
    app.router.add_get("/r/{signed}", report_page)
    app.router.add_get("/r/{signed}/table.xlsx", report_xlsx)
    names = "|".join(name.replace(".", r"\.") for name in DOCUMENTS)
    app.router.add_get(f"/r/{{signed}}/{{document:{names}}}", report_document)
    app.router.add_get(r"/r/{signed}/{what:responses|confirmations}.csv", report_csv)
    from bot.api.schedules import setup_schedule_routes

    setup_schedule_routes(app)
