"""The coordinator's view (phone first): score and grade, what changed since the previous score,
the running campaign's answer rate and who has not answered, unconfirmed and disputed payments,
and the link to the full report. Read-only; the same store reads as the API and the summaries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web

from bot import keys
from bot.console.auth import PROJECT, Viewer, page
from bot.console.projects import project_context
from bot.console.render import render_page
from scoring.report import pct
from store.answers import ledger_page, unconfirmed_disbursements
from store.campaigns import campaign_funnel, running_campaign, unit_progress_page
from store.models import Project

SHOWN = 30


def changes(current: dict[str, Any] | None, previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Indicators whose score differs between two snapshot tables: name, before, after."""
    if not current or not previous:
        return []
    before = {r["key"]: r.get("score") for r in previous.get("indicators", [])}
    out = []
    for r in current.get("indicators", []):
        old, new = before.get(r["key"]), r.get("score")
        if old != new:
            out.append(
                {
                    "name": r["name"],
                    "before": old if old is not None else "—",
                    "after": new if new is not None else "—",
                }
            )
    return out


@page()
async def overview(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    ctx = await project_context(request, project)
    assert project.id is not None
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        campaign = await running_campaign(session, project.id)
        funnel = await campaign_funnel(session, campaign.id) if campaign is not None and campaign.id else None
        missing_total, missing = (
            await unit_progress_page(session, campaign.id, state="not_answered", limit=SHOWN)
            if campaign is not None and campaign.id
            else (0, [])
        )
        # index-only counts; each list reads at most SHOWN rows (none when its count is 0)
        unconfirmed_total, unconfirmed = await unconfirmed_disbursements(session, project.id, limit=SHOWN)
        # newest answers first: what is new to the coordinator, and their index's own order
        disputed_total, disputed = await ledger_page(
            session, project.id, state="disputed", limit=SHOWN, newest_first=True
        )
        differ_total, differ = await ledger_page(
            session, project.id, state="amount_differs", limit=SHOWN, newest_first=True
        )
    snap, prev = ctx["snapshot"], ctx["previous"]
    delta = None
    if snap is not None and prev is not None:
        delta = Decimal(str(snap.total)) - Decimal(str(prev.total))
    return render_page(
        request, viewer, "overview.html", **ctx, campaign=campaign, funnel=funnel,
        rate=pct(funnel.answer_rate) if funnel is not None and funnel.answer_rate is not None else "—",
        missing=missing, missing_total=missing_total, unconfirmed=unconfirmed, unconfirmed_total=unconfirmed_total,
        disputed=disputed, disputed_total=disputed_total, differ=differ, differ_total=differ_total, delta=delta, changed=changes(snap.table if snap else None, prev.table if prev else None),
    )  # fmt: skip


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/p/{code}/overview", overview)
