"""Console: endpoints and messages (admins).

- Every endpoint the admin's projects use, with its state: ok, throttled until (project
  timezone), disabled and why; **re-enable** (``store.outbox.enable_endpoint``, the same call the
  worker's admin path uses) and **test-send** (one short message sent at once through the same
  adapter and endpoint settings the worker uses, result shown on the page).
- The outbox: pending, retrying and failed messages, with **retry** for failed/dead ones.

Endpoint addresses that are themselves credentials (webhook URLs with keys) are shown redacted
(``config.secrets.redact_address``, as in the API).
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import select

from bot import keys
from bot.console.auth import FORM, Viewer, page
from bot.console.render import render_page
from config.secrets import redact_address
from store.access import check_endpoint
from store.audit import record
from store.db import transaction
from store.models import ChannelEndpoint, Project
from store.outbox import enable_endpoint, list_endpoints, list_outbox, outbox_stats, retry_message

PAGE = 100


def state_of(ep: object, now: datetime) -> str:
    if getattr(ep, "disabled_at", None) is not None:
        return "disabled"
    until = getattr(ep, "paused_until", None)
    if until is not None and until > now:
        return "throttled"
    return "ok"


@page("admin")
async def endpoints_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    now = request.app[keys.CLOCK]()
    only = request.query.get("state", "")
    try:
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        offset = 0
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        rows = await list_endpoints(
            session,
            grants=viewer.grants,
            disabled=True if only == "disabled" else None,
            limit=PAGE + 1,
            offset=offset,
        )
    more = len(rows) > PAGE
    shown = [(e, state_of(e, now), redact_address(e.address)) for e in rows[:PAGE]]
    result = request.query.get("test", "")
    return render_page(request, viewer, "endpoints.html", rows=shown, more=more, offset=offset, page_size=PAGE,
                       only=only, result=result, result_ok=request.query.get("ok") == "1",
                       done=request.query.get("done", ""))  # fmt: skip


@page("admin")
async def endpoint_enable(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    endpoint_id = int(request.match_info["endpoint_id"])
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        ep = await check_endpoint(session, viewer.grants, endpoint_id)
        reason = ep.disabled_reason
        await enable_endpoint(session, endpoint_id)
        await record(session, actor=viewer.actor, action="endpoint.enable", now=now,
                     object=f"endpoint:{endpoint_id}", detail={"was": reason[:200]})  # fmt: skip
    raise web.HTTPSeeOther(f"/console/endpoints?done=enabled#ep-{endpoint_id}")


@page("admin")
async def endpoint_test(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Send one test message now; the page shows the vendor's classified answer."""
    from urllib.parse import quote

    from bot.channels.message import Message, Text
    from bot.outbox import endpoint_from_row

    endpoint_id = int(request.match_info["endpoint_id"])
    now = request.app[keys.CLOCK]()
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        ep = await check_endpoint(session, viewer.grants, endpoint_id)
    adapter = request.app[keys.CHANNELS].get(ep.kind)
    ok = False
    if adapter is None:
        text = viewer.t("没有 {kind} 渠道的发送器", kind=ep.kind)
    else:
        # the message is in the sending admin's language: they read it in the coordinators' chat
        message = Message(
            title=viewer.t("【测试】绩效系统消息测试"),
            blocks=(Text(viewer.t("这是一条测试消息，由 {name} 在控制台发送。", name=viewer.account.name)),),
        )
        endpoint = endpoint_from_row(ep)
        outcomes = []
        for part in adapter.render(message, dedupe_key=f"test:{endpoint_id}:{int(now.timestamp())}"):
            result = await adapter.send(request.app[keys.HTTP], endpoint, part)
            outcomes.append(result)
            if result.outcome != "ok":
                break
        last = outcomes[-1] if outcomes else None
        ok = bool(outcomes) and all(r.outcome == "ok" for r in outcomes)
        text = (
            viewer.t("发送成功")
            if ok
            else (
                f"{viewer.t('发送失败')}: {last.outcome if last else '?'} {last.vendor_code or '' if last else ''} "
                f"{(last.vendor_msg or '')[:200] if last else ''}"
            )
        )
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await record(session, actor=viewer.actor, action="endpoint.test", now=now, object=f"endpoint:{endpoint_id}",
                     detail={"result": text[:200]})  # fmt: skip
    raise web.HTTPSeeOther(
        f"/console/endpoints?test={quote(f'#{endpoint_id} ' + text, safe='')}&ok={int(ok)}#ep-{endpoint_id}"
    )


@page("admin")
async def outbox_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    status = request.query.get("status", "failed")
    if status not in ("pending", "sending", "failed", "dead", "sent", "cancelled"):
        status = "failed"
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        stats = await outbox_stats(session, grants=viewer.grants)
        rows = await list_outbox(session, status=status, limit=PAGE, grants=viewer.grants)
        # which chat or address, and which project, each message is for (a person reads names, not ids)
        ep_ids = sorted({m.endpoint_id for m in rows})
        endpoints = {
            e.id: e
            for e in (
                await session.execute(select(ChannelEndpoint).where(ChannelEndpoint.id.in_(ep_ids)))
            ).scalars()  # type: ignore[union-attr]
        }
        codes = dict((await session.execute(select(Project.id, Project.code))).all())
    return render_page(request, viewer, "outbox.html", stats=stats, rows=rows, shown=status,
                       endpoints={k: (e, redact_address(e.address)) for k, e in endpoints.items()}, codes=codes,
                       done=request.query.get("done", ""))  # fmt: skip


@page("admin")
async def outbox_retry(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    message_id = int(request.match_info["message_id"])
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await retry_message(session, message_id, grants=viewer.grants, now=now)
        await record(
            session, actor=viewer.actor, action="outbox.retry", now=now, object=f"message:{message_id}"
        )
    status = str(request[FORM].get("status", "failed"))
    raise web.HTTPSeeOther(f"/console/outbox?status={status if status.isalpha() else 'failed'}&done=retry")


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/endpoints", endpoints_page)
    r.add_post("/console/endpoints/{endpoint_id:\\d{1,10}}/enable", endpoint_enable)
    r.add_post("/console/endpoints/{endpoint_id:\\d{1,10}}/test", endpoint_test)
    r.add_get("/console/outbox", outbox_page)
    r.add_post("/console/outbox/{message_id:\\d{1,12}}/retry", outbox_retry)
