"""Schedule jobs: plain async functions taking their dependencies and ``now``.

They only read and write the database and *enqueue* messages (``store.outbox.enqueue`` with a
dedupe key), so a job that runs twice, late or concurrently with itself never sends twice; the
outbox worker does the sending. Write transactions are short and chunked (SQLite has one writer).

- :func:`remind` — invite units not yet invited, remind the ones who have not answered or not
  confirmed, per the campaign's policy (min gap, max count, quiet hours in the project timezone).
- :func:`recompute_job` — ``scheduler.recompute.recompute`` (a snapshot only when something changed).
- :func:`summarise` — the latest snapshot to coordinator chats (``scheduler.summary``).
- :func:`launch` / :func:`close` — ``store.campaigns.launch_campaign`` / ``close_campaign``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, false, literal, or_, select, update

from bot.summary import gather_summary, report_token_url
from config.timefmt import local_time
from store.campaigns import (
    DEFAULT_POLICY,
    LINK_URL_PLACEHOLDER,
    close_campaign,
    get_campaign,
    launch_campaign,
)
from store.db import SessionMaker, transaction
from store.models import (
    Campaign,
    Disbursement,
    Link,
    PaymentConfirmation,
    Project,
    Response,
    Unit,
)
from store.outbox import EndpointSpec, NewMessage, enqueue, enqueue_many, ensure_endpoint, ensure_endpoints
from store.quiet import quiet_until
from store.scores import latest_snapshot

log = logging.getLogger("jixiao.scheduler.jobs")

#: Links processed per write transaction by :func:`remind` (keeps SQLite's writer lock short).
REMIND_CHUNK = 500


# ------------------------------------------------------------------------------------ launch/close


async def launch(
    sm: SessionMaker, campaign_id: int, *, now: datetime, secret: bytes, public_url: str
) -> dict[str, Any]:
    async with transaction(sm) as session:
        result = await launch_campaign(session, campaign_id, secret=secret, public_url=public_url, now=now)
    return {"links_created": result.links_created, "invitations": result.invitations_enqueued}


async def close(sm: SessionMaker, campaign_id: int, *, now: datetime) -> dict[str, Any]:
    async with transaction(sm) as session:
        campaign = await close_campaign(session, campaign_id, now=now)
    return {"status": campaign.status}


async def recompute_job(sm: SessionMaker, project_code: str, *, now: datetime) -> dict[str, Any]:
    from scheduler.recompute import recompute

    result = await recompute(sm, project_code, now=now, trigger="schedule")
    return {
        "snapshot_id": result.snapshot.id,
        "changed": result.changed,
        "total": str(result.snapshot.total),
        "grade": result.snapshot.grade,
    }


# ------------------------------------------------------------------------------------ remind


def reminder_payload(
    campaign: Campaign, unit: Unit, link_id: int, n: int, *, questionnaire: bool, confirm: bool, tz: str
) -> dict[str, Any]:
    """A reminder in the outbox payload shape. The URL is the ``{link_url}`` placeholder: the
    sender builds it from the link at send time, so no token rests in the database."""
    todo = []
    if questionnaire:
        todo.append("填写满意度问卷")
    if confirm:
        todo.append("确认收到的项目资金")
    closes = local_time(campaign.closes_at, tz)  # the project's timezone, with its name
    return {
        "kind": "remind",
        "link_id": link_id,
        "campaign_id": campaign.id,
        "unit_id": unit.id,
        "reminder": n,
        "title": f"【提醒】{campaign.name}",
        "blocks": [
            {
                "type": "text",
                "text": f"{unit.name}：您好！贵单位尚未{'并'.join(todo)}，请于 {closes} 前通过下方专属链接完成。"
                "链接仅供贵单位使用，请勿转发。",
            }
        ],
        "link": {"url": LINK_URL_PLACEHOLDER, "text": "打开填写页面 / Open your page"},
    }


async def remind(
    sm: SessionMaker, campaign_id: int, *, now: datetime, secret: bytes, public_url: str
) -> dict[str, Any]:
    """Invite units not yet invited, then remind those who still owe an answer or a confirmation.

    Policy (``Campaign.policy``): ``min_days_between`` days since the invitation or the last
    reminder, at most ``max_reminders`` reminders, and ``quiet_hours`` in the project timezone
    (a message due inside them gets ``not_before`` = the next allowed minute). Nothing is sent to
    a closed campaign or after ``closes_at``. The questionnaire part stops once the unit answered;
    the confirmation part once every disbursement of the unit has a current confirmation.

    Due links are selected once (SQL), then handled ``REMIND_CHUNK`` at a time, one transaction
    each: one set-based conditional UPDATE of ``Link.reminder_count`` per seen count
    (:func:`_claim_reminders`), ``ensure_endpoints`` and one ``enqueue_many`` for the reminders
    (dedupe ``remind:{campaign}:{unit}:{n}``) — so a run over 10,000 links is a few dozen
    statements, and concurrent runs cannot double-count or double-send. Returns counts.
    """
    async with transaction(sm) as session:
        campaign = await get_campaign(session, campaign_id)
        if campaign.status != "open" or campaign.closed_at is not None or now >= campaign.closes_at:
            return {"skipped": "campaign not open", "invited": 0, "reminded": 0}
        if now < campaign.opens_at:
            return {"skipped": "campaign not yet open", "invited": 0, "reminded": 0}
        project = await session.get(Project, campaign.project_id)
        assert project is not None
        tz = ZoneInfo(project.timezone)
        tz_name = project.timezone  # a plain str: the project row expires when this transaction ends
        policy = {**DEFAULT_POLICY, **(campaign.policy or {})}
        defer = quiet_until(now, policy.get("quiet_hours"), tz)
        # Invites units added since the launch (one SELECT when there are none); its invitations
        # wait out the quiet hours like the reminders below.
        launched = await launch_campaign(
            session, campaign_id, secret=secret, public_url=public_url, now=now, not_before=defer
        )
    gap = timedelta(days=int(policy.get("min_days_between") or 0))
    max_n = int(policy.get("max_reminders") or 0)
    result = {
        "invited": launched.invitations_enqueued,
        "reminded": 0,
        "deferred": 0,
        "at_max": 0,
        "too_soon": 0,
    }
    if max_n == 0:
        return result
    # Units that still owe something: no current response for this campaign / no confirmation on
    # some disbursement. Computed in SQL so 10,000 links cost a couple of queries.
    # Uncorrelated IN / NOT IN subqueries, evaluated once per run: correlated EXISTS per link was
    # planned on SQLite through ix_response_current (project, is_current), i.e. a scan of every
    # current response for each link — 10,000 links × 6,000 responses took 7 s.
    answered = select(Response.unit_id).where(
        Response.project_id == campaign.project_id,
        Response.is_current.is_(True),
        Response.campaign_id == campaign_id,
    )
    unconfirmed = select(Disbursement.unit_id).where(
        Disbursement.project_id == campaign.project_id,
        ~exists().where(
            PaymentConfirmation.disbursement_id == Disbursement.id, PaymentConfirmation.is_current.is_(True)
        ),
    )
    owes_q = (
        and_(Link.answered_at.is_(None), Link.unit_id.not_in(answered))
        if campaign.questionnaire_id is not None
        else None
    )
    owes_c = Link.unit_id.in_(unconfirmed) if campaign.ask_confirmations else None
    if owes_q is None and owes_c is None:
        return result
    q_expr = owes_q if owes_q is not None else literal(False)
    c_expr = owes_c if owes_c is not None else literal(False)
    stmt = (
        select(
            Link.id, Link.reminder_count, Link.last_reminded_at, Link.sent_at, Link.created_at, q_expr, c_expr
        )
        .join(Unit, Unit.id == Link.unit_id)
        .where(
            Link.campaign_id == campaign_id,
            Link.revoked_at.is_(None),
            Unit.active.is_(True),
            or_(owes_q if owes_q is not None else false(), owes_c if owes_c is not None else false()),
        )
        .order_by(Link.id)
    )
    async with sm() as session, session.begin():
        candidates = (await session.execute(stmt)).all()
    due: list[tuple[int, int, bool, bool]] = []
    for link_id, count, last, sent, created, owes_question, owes_confirm in candidates:
        if count >= max_n:
            result["at_max"] += 1
            continue
        since = last or sent or created
        if since is not None and now - since < gap:
            result["too_soon"] += 1
            continue
        due.append((link_id, count, bool(owes_question), bool(owes_confirm)))
    for start in range(0, len(due), REMIND_CHUNK):
        chunk = due[start : start + REMIND_CHUNK]
        async with transaction(sm) as session:
            # Lock the campaign row (PostgreSQL; a no-op on SQLite, whose BEGIN IMMEDIATE already
            # serialises writers): concurrent runs then take their chunks one at a time, so their
            # link-row locks never interleave (no deadlock), and a close committed meanwhile is seen.
            campaign = (
                await session.execute(
                    select(Campaign)
                    .where(Campaign.id == campaign_id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
            if campaign.status != "open":  # closed while we were working: stop
                break
            claimed = await _claim_reminders(session, chunk, now=now)
            if not claimed:
                continue
            units = {
                link_id: unit
                for link_id, unit in (
                    await session.execute(
                        select(Link.id, Unit)
                        .join(Unit, Unit.id == Link.unit_id)
                        .where(Link.id.in_(list(claimed)))
                    )
                ).all()
            }
            endpoints = await ensure_endpoints(
                session,
                {
                    (u.channel_kind, u.channel_address): EndpointSpec(
                        name=u.name, config=dict(u.channel_config)
                    )
                    for u in units.values()
                },
            )
            messages = []
            for link_id, count, owes_question, owes_confirm in chunk:
                if link_id not in claimed:
                    continue  # another run reminded this unit meanwhile
                n, unit = claimed[link_id], units[link_id]
                assert n == count + 1
                endpoint_id = endpoints[(unit.channel_kind, unit.channel_address)].id
                assert endpoint_id is not None
                messages.append(
                    NewMessage(
                        dedupe_key=f"remind:{campaign_id}:{unit.id}:{n}",
                        endpoint_id=endpoint_id,
                        kind="remind",
                        payload=reminder_payload(
                            campaign,
                            unit,
                            link_id,
                            n,
                            questionnaire=owes_question,
                            confirm=owes_confirm,
                            tz=tz_name,
                        ),
                        not_before=defer,
                        not_after=campaign.closes_at,
                        project_id=campaign.project_id,
                        campaign_id=campaign_id,
                        link_id=link_id,
                    )
                )
            await enqueue_many(session, messages, now=now)
            result["reminded"] += len(messages)
            if defer is not None:
                result["deferred"] += len(messages)
    return result


async def _claim_reminders(
    session: Any, chunk: list[tuple[int, int, bool, bool]], *, now: datetime
) -> dict[int, int]:
    """Bump ``reminder_count`` of the chunk's links from the count each was seen with; returns
    ``{link_id: new count}`` for the links this call bumped.

    One conditional ``UPDATE … WHERE id IN (…) AND reminder_count = :n RETURNING id`` per distinct
    seen count (at most ``max_reminders`` of them): a link another run reminded since we read it
    no longer matches and is left out, so concurrent runs cannot double-count (PostgreSQL
    re-checks the WHERE after waiting for the other writer's row lock; SQLite has one writer).
    """
    by_count: dict[int, list[int]] = {}
    for link_id, count, _, _ in chunk:
        by_count.setdefault(count, []).append(link_id)
    table = Link.__table__  # type: ignore[attr-defined]
    claimed: dict[int, int] = {}
    for count, ids in sorted(by_count.items()):
        bumped = await session.execute(
            update(table)
            .where(table.c.id.in_(sorted(ids)), table.c.reminder_count == count)
            .values(reminder_count=count + 1, last_reminded_at=now)
            .returning(table.c.id)
        )
        claimed.update((link_id, count + 1) for link_id in bumped.scalars())
    return claimed


# ------------------------------------------------------------------------------------ summarise


async def summarise(
    sm: SessionMaker,
    project_code: str,
    *,
    schedule_id: int,
    fire_time: datetime,
    endpoints: list[dict[str, Any]],
    now: datetime,
    report_url_base: str,
    secret: bytes,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Post the latest snapshot to each coordinator endpoint through the outbox.

    Dedupe key ``summary:{schedule}:{fire_iso}:e{endpoint_id}`` (one row per endpoint; the worker
    splits long messages into ``#p{i}`` parts), so a retried or doubled fire posts once. If the
    project has no snapshot yet, one is computed first. The result records the snapshot id so the
    next summary can show what changed since this one.
    """
    from scheduler.summary import build_summary, message_to_payload

    params = params or {}
    async with sm() as session, session.begin():
        from store.projects import get_project

        project = await get_project(session, project_code)
        snap = await latest_snapshot(session, project.id)  # type: ignore[arg-type]
    if snap is None:
        from scheduler.recompute import recompute

        snap = (await recompute(sm, project_code, now=now, trigger="summary")).snapshot
    url = report_token_url(
        report_url_base, secret, project_code, now=now, days=int(params.get("report_days", 14))
    )
    data, snap = await gather_summary(
        sm,
        project_code,
        schedule_id=schedule_id,
        fire_time=fire_time,
        now=now,
        report_url=url,
        first_n=int(params.get("first_n", 10)),
        deviation_threshold=Decimal(str(params.get("deviation_threshold", "0.10"))),
        snapshot=snap,
    )
    message = build_summary(data)
    payload = message_to_payload(message, kind="summary", snapshot_id=snap.id)
    tz = ZoneInfo(project.timezone)
    defer = quiet_until(now, params.get("quiet_hours"), tz)
    fire_iso = fire_time.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    enqueued = 0
    async with transaction(sm) as session:
        for ep in endpoints:
            row = await ensure_endpoint(
                session,
                ep["kind"],
                ep.get("address", ""),
                name=ep.get("name", ""),
                config=ep.get("config") or None,
            )
            assert row.id is not None
            if await enqueue(
                session,
                dedupe_key=f"summary:{schedule_id}:{fire_iso}:e{row.id}",
                endpoint_id=row.id,
                kind="summary",
                payload=payload,
                now=now,
                not_before=defer,
                project_id=project.id,
            ):
                enqueued += 1
    return {
        "snapshot_id": snap.id,
        "total": str(snap.total),
        "grade": snap.grade,
        "endpoints": len(endpoints),
        "enqueued": enqueued,
    }
