"""Console pages for campaigns: list and create, launch (with the missing-secret check first) and
close, the funnel and the per-unit table, per unit copy link / QR code / re-send / revoke /
reissue, the links export (CSV/XLSX) and the responses (with question labels, exportable).

Links are never stored: every URL shown or exported is derived again from the server secret and
the link's salt (``bot.links.link_url``), only for admins. Coordinators see progress, never a link.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import keys
from bot.console.auth import FORM, PROJECT, Viewer, page
from bot.console.render import local, render_page, tz_label
from bot.links import link_url
from store.audit import record
from store.campaigns import (
    PROGRESS_FILTERS,
    campaign_funnel,
    close_campaign,
    create_campaign,
    get_campaign,
    launch_campaign,
    list_campaigns,
    live_links,
    reissue_link,
    resend_invitation,
    revoke_link,
    unit_progress_page,
)
from store.db import transaction
from store.delivery_check import missing_secrets
from store.errors import NotFound, StoreError
from store.models import Campaign, Link, Project, Unit
from store.units import get_unit

PAGE_SIZE = 50
STATUS_ZH = {"draft": "草稿", "open": "进行中", "closed": "已结束"}
DELIVERY_ZH = {
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已送达",
    "failed": "发送失败",
    "dead": "已放弃",
    "cancelled": "已取消",
}


def _public_url(request: web.Request) -> str:
    return request.app[keys.SETTINGS].public_url


async def _campaign_of(request: web.Request, project: Project) -> Campaign:
    raw = request.match_info.get("campaign_id", "")
    if not raw.isdigit() or len(raw) > 10:
        raise NotFound(f"活动不存在：{raw[:20]}", f"no such campaign: {raw[:20]}", where="campaign")
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        campaign = await get_campaign(session, int(raw))
    if campaign.project_id != project.id:
        raise NotFound(f"活动不存在：{raw}", f"no such campaign: {raw}", where="campaign")
    return campaign


@page()
async def campaigns_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    assert project.id is not None
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        rows = [
            (c, await campaign_funnel(session, c.id or 0)) for c in await list_campaigns(session, project.id)
        ]
    tz = ZoneInfo(project.timezone)
    now = request.app[keys.CLOCK]().astimezone(tz)
    defaults = {
        "name": viewer.t("{year}年度满意度调查", year=project.year),
        "opens": now.strftime("%Y-%m-%dT%H:%M"),
        "closes": (now + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M"),
    }
    return render_page(request, viewer, "campaigns.html", project=project, rows=rows, status_zh=STATUS_ZH,
                       form=defaults, errors={})  # fmt: skip


def _local_datetime(text: str, tz: ZoneInfo, field: str) -> datetime:
    """``YYYY-MM-DDTHH:MM`` from a datetime-local input, read in the project's timezone."""
    try:
        value = datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M")
    except ValueError:
        raise StoreError("请填写日期和时间，例如 2026-03-01T09:00", "enter a date and time, e.g. 2026-03-01T09:00",
                         where=field) from None  # fmt: skip
    return value.replace(tzinfo=tz)


@page("admin")
async def campaign_create(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    form = request[FORM]
    tz = ZoneInfo(project.timezone)
    now = request.app[keys.CLOCK]()
    errors: dict[str, str] = {}
    name = str(form.get("name", "")).strip()
    try:
        if not name:
            raise StoreError("请填写活动名称", "enter a campaign name", where="name")
        opens = _local_datetime(str(form.get("opens", "")), tz, "opens")
        closes = _local_datetime(str(form.get("closes", "")), tz, "closes")
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            assert project.id is not None
            campaign = await create_campaign(
                session, project.id, name=name, opens_at=opens, closes_at=closes,
                ask_confirmations=form.get("ask_confirmations") == "1", now=now,
            )  # fmt: skip
            await record(session, actor=viewer.actor, action="campaign.create", now=now, project_id=project.id,
                         object=f"campaign:{campaign.id}", detail={"name": name})  # fmt: skip
    except StoreError as exc:
        errors[exc.where or "name"] = exc.en if viewer.lang == "en" else exc.zh
        async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
            rows = [
                (c, await campaign_funnel(session, c.id or 0))
                for c in await list_campaigns(session, project.id or 0)
            ]
        return render_page(request, viewer, "campaigns.html", status=400, project=project, rows=rows,
                           status_zh=STATUS_ZH, form=form, errors=errors)  # fmt: skip
    raise web.HTTPSeeOther(f"/console/p/{project.code}/campaigns/{campaign.id}")


@page()
async def campaign_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    campaign = await _campaign_of(request, project)
    assert campaign.id is not None
    search = request.query.get("q", "").strip()[:100]
    state = request.query.get("state", "all")
    if state not in PROGRESS_FILTERS:
        state = "all"
    try:
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        offset = 0
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        funnel = await campaign_funnel(session, campaign.id)
        total, rows = await unit_progress_page(
            session, campaign.id, search=search, state=state, limit=PAGE_SIZE, offset=offset
        )
        missing = await missing_secrets(session, campaign) if campaign.status == "draft" else []
    flash = {
        "launched": "已发起：每个单位的链接已生成，邀请已排队发送",
        "closed": "活动已结束，链接已失效",
        "resent": "已重新发送",
        "revoked": "链接已吊销",
        "reissued": "已吊销旧链接并发送新链接",
    }.get(request.query.get("done", ""), "")

    def page_link(new_offset: int) -> str:
        return "?" + urlencode({"q": search, "state": state, "offset": new_offset})

    return render_page(
        request, viewer, "campaign.html", project=project, campaign=campaign, funnel=funnel, rows=rows,
        total=total, offset=offset, page_size=PAGE_SIZE, search=search, state=state, filters=PROGRESS_FILTERS,
        status_zh=STATUS_ZH, delivery_zh=DELIVERY_ZH, missing=missing, flash=viewer.t(flash) if flash else "",
        close_refused=request.query.get("close") == "confirm",
        prev_link=page_link(max(offset - PAGE_SIZE, 0)) if offset > 0 else "",
        next_link=page_link(offset + PAGE_SIZE) if offset + PAGE_SIZE < total else "",
    )  # fmt: skip


@page("admin")
async def campaign_launch(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Launch; refused (with the list) while units' endpoints lack their secret variables,
    unless the admin confirms sending to the others anyway."""
    project: Project = request[PROJECT]
    campaign = await _campaign_of(request, project)
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        missing = await missing_secrets(session, campaign)
        if missing and request[FORM].get("confirm_missing") != "1":
            raise web.HTTPSeeOther(f"/console/p/{project.code}/campaigns/{campaign.id}?missing=1#launch")
        result = await launch_campaign(session, campaign.id or 0, secret=request.app[keys.SECRET], now=now)
        await record(session, actor=viewer.actor, action="campaign.launch", now=now, project_id=project.id,
                     object=f"campaign:{campaign.id}",
                     detail={"links": result.links_created, "invitations": result.invitations_enqueued,
                             "units_missing_secrets": len(missing)})  # fmt: skip
    raise web.HTTPSeeOther(f"/console/p/{project.code}/campaigns/{campaign.id}?done=launched")


@page("admin")
async def campaign_close(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Close, only with the confirmation ticked (every link stops working at once)."""
    project: Project = request[PROJECT]
    campaign = await _campaign_of(request, project)
    if request[FORM].get("confirm_close") != "1":
        raise web.HTTPSeeOther(f"/console/p/{project.code}/campaigns/{campaign.id}?close=confirm#close")
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await close_campaign(session, campaign.id or 0, now=now)
        await record(session, actor=viewer.actor, action="campaign.close", now=now, project_id=project.id,
                     object=f"campaign:{campaign.id}")  # fmt: skip
    raise web.HTTPSeeOther(f"/console/p/{project.code}/campaigns/{campaign.id}?done=closed")


async def _unit_link(session: Any, campaign: Campaign, unit_key: str) -> tuple[Unit, Link]:
    from sqlalchemy import select

    unit = await get_unit(session, campaign.project_id, unit_key)
    link = (
        (
            await session.execute(
                select(Link)
                .where(Link.campaign_id == campaign.id, Link.unit_id == unit.id, Link.revoked_at.is_(None))  # type: ignore[union-attr]
                .order_by(Link.id.desc())  # type: ignore[union-attr]
            )
        )
        .scalars()
        .first()
    )
    if link is None:
        raise NotFound(f"单位 {unit_key} 在此活动中没有有效链接", f"unit {unit_key} has no live link in this campaign",
                       where="unit")  # fmt: skip
    return unit, link


@page("admin")
async def unit_link_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """One unit's link: the URL (copy), its QR code (SVG), re-send, revoke, reissue."""
    import segno

    project: Project = request[PROJECT]
    campaign = await _campaign_of(request, project)
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        unit, link = await _unit_link(session, campaign, request.match_info["unit_key"])
    url = link_url(_public_url(request), request.app[keys.SECRET], link)
    buf = io.BytesIO()
    # No title from unit data inside the SVG: it is inserted unescaped into the page.
    segno.make(url, error="m").save(buf, kind="svg", scale=4, border=2, xmldecl=False, svgns=True)
    return render_page(request, viewer, "unit_link.html", project=project, campaign=campaign, unit=unit, link=link,
                       url=url, qr_svg=buf.getvalue().decode())  # fmt: skip


@page("admin")
async def unit_link_action(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    campaign = await _campaign_of(request, project)
    action = request.match_info["action"]
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        unit, link = await _unit_link(session, campaign, request.match_info["unit_key"])
        assert link.id is not None
        if action == "resend":
            await resend_invitation(session, link.id, now=now)
        elif action == "revoke":
            await revoke_link(session, link.id, now=now)
        else:
            await reissue_link(session, link.id, secret=request.app[keys.SECRET], now=now)
        await record(session, actor=viewer.actor, action=f"link.{action}", now=now, project_id=project.id,
                     object=f"campaign:{campaign.id}/unit:{unit.key}")  # fmt: skip
    done = {"resend": "resent", "revoke": "revoked", "reissue": "reissued"}[action]
    raise web.HTTPSeeOther(f"/console/p/{project.code}/campaigns/{campaign.id}?done={done}")


LINK_COLUMNS = ["单位编码 unit", "单位名称 name", "渠道 channel", "链接 link", "截止 closes"]


@page("admin")
async def export_links(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Every live link as CSV (UTF-8 with BOM, for Excel) or XLSX — derived again, nothing stored."""
    project: Project = request[PROJECT]
    campaign = await _campaign_of(request, project)
    fmt = request.match_info["fmt"]
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        pairs = await live_links(session, campaign.id or 0)
    public, secret = _public_url(request), request.app[keys.SECRET]
    closes = f"{local(campaign.closes_at, project.timezone)}（{tz_label(project.timezone)}）"
    rows = [[u.key, u.name, u.channel_kind, link_url(public, secret, link), closes] for link, u in pairs]
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await record(session, actor=viewer.actor, action="links.export", now=now, project_id=project.id,
                     object=f"campaign:{campaign.id}", detail={"links": len(rows), "format": fmt})  # fmt: skip
    name = f"{project.code}-campaign{campaign.id}-links.{fmt}"
    if fmt == "csv":
        return _download(csv_bytes(LINK_COLUMNS, rows), name, "text/csv; charset=utf-8")
    data = await asyncio.to_thread(xlsx_bytes, LINK_COLUMNS, rows, "links")
    return _download(data, name, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    """CSV in UTF-8 with a BOM (Excel on Chinese Windows opens it correctly); formula-looking
    cells are prefixed with ' so a spreadsheet never evaluates them."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow([_cell(v) for v in r])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _cell(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") and not v.startswith("http"):
        return "'" + v
    return v


def xlsx_bytes(header: list[str], rows: list[list[Any]], title: str) -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title)
    ws.append(header)
    for r in rows:
        ws.append([_cell(v) for v in r])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _download(data: bytes, filename: str, mime: str) -> web.Response:
    return web.Response(
        body=data,
        headers={
            "Content-Type": mime,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def routes(r: web.UrlDispatcher) -> None:
    base = "/console/p/{code}/campaigns"
    r.add_get(base, campaigns_page)
    r.add_post(base, campaign_create)
    r.add_get(base + "/{campaign_id:\\d+}", campaign_page)
    r.add_post(base + "/{campaign_id:\\d+}/launch", campaign_launch)
    r.add_post(base + "/{campaign_id:\\d+}/close", campaign_close)
    r.add_get(base + "/{campaign_id:\\d+}/links.{fmt:csv|xlsx}", export_links)
    r.add_get(base + "/{campaign_id:\\d+}/units/{unit_key}", unit_link_page)
    r.add_post(base + "/{campaign_id:\\d+}/units/{unit_key}/{action:resend|revoke|reissue}", unit_link_action)
    from bot.console import responses

    responses.routes(r)
