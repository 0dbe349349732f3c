"""Console: a campaign's responses (question labels, not keys) and confirmations (Chinese
states, differences in 元), on screen and as CSV/XLSX — the same tables the API exports
(``bot.api.responses.response_table`` / ``confirmation_table``)."""

from __future__ import annotations

import asyncio
import re
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import keys
from bot.api.responses import XLSX_TYPE, confirmation_table, response_table, to_csv, to_xlsx
from bot.console.auth import PROJECT, Viewer, page
from bot.console.campaigns import _campaign_of
from bot.console.render import render_page
from store.answers import list_confirmations, list_responses, question_labels
from store.models import Project

#: An export column header: Chinese, then its English key (``拨付金额（元）disbursed``).
_HEADER = re.compile(r"^(.*[^\x00-\x7f])\s*([A-Za-z_]+)$")

#: Rows shown on screen per table (the export always has every row).
SHOWN = 200


async def _tables(request: web.Request, project: Project, campaign_id: int) -> tuple[tuple, tuple]:
    tz = ZoneInfo(project.timezone)
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        labels = await question_labels(session, project.id or 0)
        responses = await list_responses(session, project.id or 0, campaign_id)
        confirmations = await list_confirmations(session, project.id or 0, campaign_id)
    return response_table(responses, tz, labels), confirmation_table(confirmations, tz)


@page()
async def responses_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    campaign = await _campaign_of(request, project)
    (rh, rb), (ch, cb) = await _tables(request, project, campaign.id or 0)

    def column(header: str) -> str:
        """An export header ``"中文 english_key"`` in the viewer's language; question labels as they are."""
        m = _HEADER.match(header)
        if m is None:
            return header
        return m.group(2).replace("_", " ") if viewer.lang == "en" else m.group(1)

    return render_page(request, viewer, "responses.html", project=project, campaign=campaign, column=column,
                       rh=rh, rb=rb[:SHOWN], rtotal=len(rb), ch=ch, cb=cb[:SHOWN], ctotal=len(cb))  # fmt: skip


@page()
async def responses_export(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    campaign = await _campaign_of(request, project)
    what, fmt = request.match_info["what"], request.match_info["fmt"]
    responses, confirmations = await _tables(request, project, campaign.id or 0)
    header, body = responses if what == "responses" else confirmations
    name = f"{project.code}-campaign{campaign.id}-{what}.{fmt}"
    if fmt == "xlsx":
        data, mime = await asyncio.to_thread(to_xlsx, header, body, what), XLSX_TYPE
    else:
        data, mime = to_csv(header, body), "text/csv; charset=utf-8"
    return web.Response(
        body=data, headers={"Content-Type": mime, "Content-Disposition": f'attachment; filename="{name}"'}
    )


def routes(r: web.UrlDispatcher) -> None:
    base = "/console/p/{code}/campaigns/{campaign_id:\\d+}"
    r.add_get(base + "/responses", responses_page)
    r.add_get(base + "/{what:responses|confirmations}.{fmt:csv|xlsx}", responses_export)
