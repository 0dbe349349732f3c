"""Console pages: the projects list and the project page (score table, explanations, warnings,
history chart, overrides, definition upload with a preview).

Reads and writes go through the same store functions as the API (``store.scores``,
``store.projects``); the chart and the report rows come from ``bot.report``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import keys
from bot.console.auth import FORM, PROJECT, Viewer, page
from bot.console.render import render_page

#: Internal notes in explanations ("（§7 #12）", "报告未给出…") are for evaluators writing the
#: definition; ``clean_explanation`` keeps them off pages people read.
from bot.report import (
    chart,
    clean_explanation,
    deviation_warnings,
    period_of,
    sign_report,
)
from scoring.report import pct
from store.audit import record
from store.campaigns import campaign_funnel, list_campaigns, running_campaign
from store.db import transaction
from store.errors import StoreError
from store.models import Project
from store.outbox import last_sent_at
from store.projects import definition_period, list_projects
from store.scores import (
    active_overrides,
    latest_snapshot,
    list_snapshots,
    override_indicator,
    withdraw_indicator_override,
)


@page()
async def projects_list(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    rows: list[dict[str, Any]] = []
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        for p in await list_projects(session):
            if not viewer.grants.allows(p.id):
                continue
            assert p.id is not None
            snap = await latest_snapshot(session, p.id)
            camp = await running_campaign(session, p.id)
            funnel = await campaign_funnel(session, camp.id) if camp is not None and camp.id else None
            rows.append(
                {
                    "project": p,
                    "snapshot": snap,
                    "campaign": camp,
                    "rate": pct(funnel.answer_rate)
                    if funnel is not None and funnel.answer_rate is not None
                    else "—",
                    "funnel": funnel,
                    "summary_at": await last_sent_at(session, p.id, kind="summary"),
                }
            )
    return render_page(request, viewer, "projects.html", rows=rows)


async def project_context(request: web.Request, project: Project) -> dict[str, Any]:
    """What the project page and the coordinator view show: the latest table (explanations
    cleaned), warnings, the history chart, overrides and campaigns."""
    tz = ZoneInfo(project.timezone)
    now = request.app[keys.CLOCK]()
    assert project.id is not None
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        snap = await latest_snapshot(session, project.id)
        history = list(reversed(await list_snapshots(session, project.id, limit=200)))
        overrides = await active_overrides(session, project.id)
        campaigns = await list_campaigns(session, project.id)
        start_text, end_text = await definition_period(session, project)
    doc = snap.table if snap is not None else None
    warnings: list[str] = []
    rows: list[dict[str, Any]] = []
    if doc is not None:
        facts = doc.get("facts") or {}
        start, end = period_of({"project": {"period_start": start_text, "period_end": end_text}})
        warnings += deviation_warnings(
            budget_fen=int(facts.get("budget_fen", project.budget_fen)),
            disbursed_fen=int(facts.get("disbursed_fen", 0)),
            period_start=start,
            period_end=end,
            today=now.astimezone(tz).date(),
        )
        warnings += [clean_explanation(w["message"]) for w in doc.get("warnings", [])]
        for r in doc.get("indicators", []):
            rate = None if r.get("rate") is None else Decimal(str(r["rate"]))
            rows.append(
                {
                    **r,
                    "rate_text": pct(rate),
                    "score_text": "—" if r.get("score") is None else r["score"],
                    "explanation": clean_explanation(r.get("explanation", "")),
                }
            )
    previous = history[-2] if len(history) >= 2 else None
    return {
        "project": project,
        "snapshot": snap,
        "doc": doc,
        "rows": rows,
        "warnings": warnings,
        "chart": chart(history, tz),
        "phone_chart": chart(history, tz, width=360, height=220),
        "overrides": overrides,
        "campaigns": campaigns,
        "previous": previous,
        "report_path": f"/r/{sign_report(request.app[keys.SECRET], project.code, now + _REPORT_TTL)}",
    }


from datetime import timedelta  # noqa: E402

_REPORT_TTL = timedelta(days=7)


@page()
async def project_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project = request[PROJECT]
    ctx = await project_context(request, project)
    flash = {
        "override": "已保存人工调整（下次重新计算时生效）",
        "withdrawn": "已撤销人工调整",
        "recomputed": "已重新计算",
        "loaded": "已导入新的项目定义",
    }.get(request.query.get("done", ""), "")
    return render_page(
        request, viewer, "project.html", flash=viewer.t(flash) if flash else "", errors={}, **ctx
    )


def _parse_score(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


@page("admin")
async def override_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Set (``action=set``) or clear (``action=clear``) one indicator's override, with a reason."""
    project: Project = request[PROJECT]
    form = request[FORM]
    key = str(form.get("indicator", ""))[:64]
    action = str(form.get("action", "set"))
    reason = str(form.get("reason", ""))[:2000]
    now = request.app[keys.CLOCK]()
    errors: dict[str, str] = {}
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            if action == "clear":
                await withdraw_indicator_override(
                    session, project, key, reason=reason, by=viewer.actor, now=now
                )
                detail: dict[str, Any] = {"reason": reason}
            else:
                score = _parse_score(str(form.get("score", "")))
                if score is None:
                    raise _Invalid(
                        "score",
                        "请填写分数（数字，最多两位小数）",
                        "enter a score (a number, at most 2 decimals)",
                    )
                await override_indicator(
                    session, project, key, score=score, reason=reason, by=viewer.actor, now=now
                )
                detail = {"score": str(score), "reason": reason}
            await record(session, actor=viewer.actor, action=f"override.{action}", now=now,
                         project_id=project.id, object=f"indicator:{key}", detail=detail)  # fmt: skip
    except StoreError as exc:
        errors[f"{key}:{exc.where or 'score'}"] = exc.zh if viewer.lang != "en" else exc.en
        ctx = await project_context(request, project)
        return render_page(request, viewer, "project.html", status=400, flash="", errors=errors,
                           form_key=key, form=form, **ctx)  # fmt: skip
    raise web.HTTPSeeOther(
        f"/console/p/{project.code}?done={'withdrawn' if action == 'clear' else 'override'}#ind-{key}"
    )


@page("admin")
async def recompute_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Score the project now (the same hook as ``POST /api/projects/{code}/scores/recompute``)."""
    project: Project = request[PROJECT]
    hook = request.app[keys.RUN_NOW].get("recompute")
    if hook is None:
        raise web.HTTPServiceUnavailable(text="recompute is not wired into this app / 本实例未接入重新计算")
    now = request.app[keys.CLOCK]()
    result = await hook(project.code, now=now, trigger="console")
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await record(session, actor=viewer.actor, action="scores.recompute", now=now, project_id=project.id,
                     object=f"project:{project.code}", detail={"changed": bool(result.changed)})  # fmt: skip
    raise web.HTTPSeeOther(f"/console/p/{project.code}?done=recomputed")


class _Invalid(StoreError):
    status = 400

    def __init__(self, where: str, zh: str, en: str) -> None:
        super().__init__(zh, en, where=where)
