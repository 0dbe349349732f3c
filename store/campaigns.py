"""Campaigns and personal links: one round of asking the units, and each unit's link in it.

A campaign goes draft → open (``launch_campaign``) → closed (``close_campaign``). Launching
creates one :class:`~store.models.Link` per audience unit and, in the same transaction, one
invitation per link in the outbox. Launching again only fills in what is missing (a unit added
to the project since), so a retried launch or a double click never sends twice.

Tokens. A link's token is ``base64url(HMAC-SHA256(server secret, "link:" + token_salt))`` cut to
32 characters (192 bits). Only ``sha256(token)`` is stored, with the random salt, so neither the
database alone nor the secret alone can rebuild a token; the outbox payload carries ``link_id`` and
a ``{link_url}`` placeholder that the sender fills in at send time (``bot.links.link_url``).
The derivation lives here because ``launch_campaign`` needs it and the store may not import
``bot``; ``bot.links`` re-exports it.

All functions take the session first and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from config.timefmt import local_time
from store.errors import Conflict, Invalid, NotFound
from store.models import Campaign, Link, OutboxMessage, Project, Unit
from store.outbox import EndpointSpec, NewMessage, enqueue_many, ensure_endpoint, ensure_endpoints
from store.projects import current_questionnaire
from store.quiet import quiet_until

#: Length of a link token in characters (base64url alphabet): 32 × 6 = 192 bits.
TOKEN_LENGTH = 32
TOKEN_RE = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")
#: Placeholder in outbox payloads, replaced by the real URL at send time only.
LINK_URL_PLACEHOLDER = "{link_url}"

DEFAULT_POLICY: dict[str, Any] = {
    "min_days_between": 3,
    "max_reminders": 3,
    "quiet_hours": ["22:00", "08:00"],
}
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


# ----------------------------------------------------------------------------------- tokens


def make_link_token(secret: bytes, salt: str) -> str:
    """The token for ``salt``: base64url(HMAC-SHA256(secret, "link:" + salt))[:32]."""
    mac = hmac.new(secret, f"link:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")[:TOKEN_LENGTH]


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: the only form stored (``Link.token_hash``)."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_well_formed_token(token: str) -> bool:
    """True when ``token`` has the length and alphabet of a link token (no database needed)."""
    return bool(TOKEN_RE.match(token))


def _new_link_row(campaign_id: int, unit_id: int, secret: bytes, now: datetime) -> dict[str, Any]:
    """The column values of a new link: a fresh 128-bit random salt, and only the hash of the
    token derived from it (the token itself is never stored)."""
    salt = secrets.token_hex(16)
    return {
        "campaign_id": campaign_id,
        "unit_id": unit_id,
        "token_salt": salt,
        "token_hash": hash_token(make_link_token(secret, salt)),
        "created_at": now,
        "reminder_count": 0,
    }


def _new_link(campaign_id: int, unit_id: int, secret: bytes, now: datetime) -> Link:
    return Link(**_new_link_row(campaign_id, unit_id, secret, now))


# ----------------------------------------------------------------------------------- campaigns


def _check_aware(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid(f"{field} 必须带时区", f"{field} must be timezone-aware", where=field)


def normalise_policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    """The reminder policy with defaults filled in, validated.

    ``min_days_between`` (days, ≥ 0), ``max_reminders`` (count, 0–20), ``quiet_hours``
    ``[start, end]`` as ``"HH:MM"`` in the project timezone (may wrap midnight).
    """
    given = dict(policy or {})
    unknown = set(given) - set(DEFAULT_POLICY)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise Invalid(f"未知的提醒策略项：{names}", f"unknown policy keys: {names}", where="policy")
    out = {**DEFAULT_POLICY, **given}
    for key, hi in (("min_days_between", 365), ("max_reminders", 20)):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
            raise Invalid(
                f"{key} 应为 0–{hi} 的整数", f"{key} must be an integer 0–{hi}", where=f"policy.{key}"
            )
    quiet = out["quiet_hours"]
    if quiet is not None:
        if (
            not isinstance(quiet, list | tuple)
            or len(quiet) != 2
            or not all(isinstance(q, str) and _HHMM.match(q) for q in quiet)
        ):
            raise Invalid(
                'quiet_hours 应为 ["HH:MM", "HH:MM"]',
                'quiet_hours must be ["HH:MM", "HH:MM"]',
                where="policy.quiet_hours",
            )
        out["quiet_hours"] = list(quiet)
    return out


async def get_campaign(session: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"活动不存在：{campaign_id}", f"no such campaign: {campaign_id}", where="campaign")
    return campaign


async def list_campaigns(session: AsyncSession, project_id: int) -> list[Campaign]:
    stmt = select(Campaign).where(Campaign.project_id == project_id).order_by(Campaign.id)
    return list((await session.execute(stmt)).scalars())


async def create_campaign(
    session: AsyncSession,
    project_id: int,
    *,
    name: str,
    opens_at: datetime,
    closes_at: datetime,
    unit_ids: list[int] | None = None,
    policy: dict[str, Any] | None = None,
    ask_confirmations: bool = True,
    now: datetime,
) -> Campaign:
    """A draft campaign on the project's current questionnaire.

    ``unit_ids`` None means every active unit at launch time; a given list must name units of this
    project. The window ``[opens_at, closes_at)`` is tz-aware; links only work inside it.
    """
    project = await session.get(Project, project_id)
    if project is None:
        raise NotFound(f"项目不存在：{project_id}", f"no such project: {project_id}", where="project")
    name = name.strip()
    if not name or len(name) > 200:
        raise Invalid("活动名称应为 1–200 个字符", "name must be 1–200 characters", where="name")
    _check_aware(opens_at, "opens_at")
    _check_aware(closes_at, "closes_at")
    if closes_at <= opens_at:
        raise Invalid("结束时间须晚于开始时间", "closes_at must be after opens_at", where="closes_at")
    if unit_ids is not None:
        wanted = sorted(set(unit_ids))
        found = set(
            (
                await session.execute(
                    select(Unit.id).where(Unit.project_id == project_id, Unit.id.in_(wanted))
                )
            ).scalars()
        )
        missing = [u for u in wanted if u not in found]
        if missing:
            raise Invalid(
                f"这些单位不属于本项目：{missing}",
                f"units not in this project: {missing}",
                where="unit_ids",
            )
        unit_ids = wanted
    questionnaire = await current_questionnaire(session, project_id)
    campaign = Campaign(
        project_id=project_id,
        questionnaire_id=questionnaire.id if questionnaire else None,
        name=name,
        status="draft",
        opens_at=opens_at,
        closes_at=closes_at,
        ask_confirmations=ask_confirmations,
        policy=normalise_policy(policy),
        unit_ids=unit_ids,
        created_at=now,
    )
    session.add(campaign)
    await session.flush()
    return campaign


def _audience_select(campaign: Campaign) -> Any:
    """SELECT of the campaign's audience units (see :func:`audience`), for further filtering."""
    stmt = select(Unit).where(Unit.project_id == campaign.project_id)
    if campaign.unit_ids is None:
        return stmt.where(Unit.active.is_(True))
    return stmt.where(Unit.id.in_(campaign.unit_ids))


async def audience(session: AsyncSession, campaign: Campaign) -> list[Unit]:
    """The units a campaign asks: its ``unit_ids``, or every active unit of the project."""
    return list((await session.execute(_audience_select(campaign).order_by(Unit.id))).scalars())


def invitation_payload(
    campaign: Campaign, unit: Unit, link: Link | int, *, tz: str, kind: str = "invite"
) -> dict[str, Any]:
    """The platform-neutral message for an invitation (or reminder), JSON-able. ``link`` is the
    link or its id (the bulk launch has ids only).

    Shape (mirrors ``bot.channels.message.Message``): ``title``, ``blocks`` (``{"type": "text",
    "text": …}``), ``link`` (``{"url": "{link_url}", "text": …}``), plus ``link_id`` and ``kind``.
    The URL is a placeholder on purpose: the raw token never rests in the database. The deadline is
    shown in the project's timezone ``tz`` with its name (``2026-12-15 18:00（北京时间）``).
    """
    closes = local_time(campaign.closes_at, tz)
    verb = "提醒" if kind == "remind" else "邀请"
    return {
        "kind": kind,
        "link_id": link if isinstance(link, int) else link.id,
        "campaign_id": campaign.id,
        "unit_id": unit.id,
        "title": f"【{verb}】{campaign.name}",
        "blocks": [
            {
                "type": "text",
                "text": (
                    f"{unit.name}：您好！请通过下方专属链接填写满意度问卷"
                    + ("并确认收到的项目资金" if campaign.ask_confirmations else "")
                    + f"，截止 {closes}。链接仅供贵单位使用，请勿转发。"
                ),
            }
        ],
        "link": {"url": LINK_URL_PLACEHOLDER, "text": "打开填写页面 / Open your page"},
    }


def _invitation(
    campaign: Campaign,
    unit: Unit,
    link_id: int,
    endpoint_id: int,
    *,
    tz: str,
    dedupe_key: str,
    not_before: datetime | None,
) -> NewMessage:
    return NewMessage(
        dedupe_key=dedupe_key,
        endpoint_id=endpoint_id,
        kind="invite",
        payload=invitation_payload(campaign, unit, link_id, tz=tz),
        not_before=not_before,
        not_after=campaign.closes_at,
        project_id=campaign.project_id,
        campaign_id=campaign.id,
        link_id=link_id,
    )


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


async def invitation_not_before(
    session: AsyncSession, campaign: Campaign, *, now: datetime, not_before: datetime | None = None
) -> datetime | None:
    """When an invitation written at ``now`` may first be sent: the later of ``not_before`` and
    the end of the campaign's quiet hours (policy ``quiet_hours``, project timezone) if ``now``
    is inside them; None means at once."""
    quiet = {**DEFAULT_POLICY, **(campaign.policy or {})}.get("quiet_hours")
    if not quiet:
        return not_before
    return _later(not_before, quiet_until(now, quiet, ZoneInfo(await project_timezone(session, campaign))))


async def project_timezone(session: AsyncSession, campaign: Campaign) -> str:
    """The IANA timezone of the campaign's project (what people read times in)."""
    tz = await session.scalar(select(Project.timezone).where(Project.id == campaign.project_id))
    return tz or "Asia/Shanghai"


async def _enqueue_invitation(
    session: AsyncSession, campaign: Campaign, unit: Unit, link: Link, *, dedupe_key: str, now: datetime
) -> bool:
    assert link.id is not None
    endpoint = await ensure_endpoint(
        session, unit.channel_kind, unit.channel_address, name=unit.name, config=dict(unit.channel_config)
    )
    assert endpoint.id is not None
    defer = await invitation_not_before(session, campaign, now=now)
    tz = await project_timezone(session, campaign)
    message = _invitation(
        campaign, unit, link.id, endpoint.id, tz=tz, dedupe_key=dedupe_key, not_before=defer
    )
    return bool(await enqueue_many(session, [message], now=now))


@dataclass(frozen=True)
class LaunchResult:
    campaign: Campaign
    links_created: int
    invitations_enqueued: int


#: Links per multi-row INSERT in ``launch_campaign`` (6 bound values a row: far below SQLite's
#: 32,766-variable limit).
LINK_CHUNK = 1000


async def launch_campaign(
    session: AsyncSession,
    campaign_id: int,
    *,
    secret: bytes,
    public_url: str = "",
    now: datetime,
    not_before: datetime | None = None,
) -> LaunchResult:
    """Open the campaign: a link and an invitation for each audience unit without a live link.

    Idempotent: units that already have a (non-revoked) link are skipped, and invitations are
    deduplicated by ``invite:{campaign}:{unit}``. A closed campaign cannot be launched.
    Invitations are not sent before ``not_before`` nor inside the campaign's quiet hours (they
    wait for the next allowed minute, see :func:`invitation_not_before`).
    ``public_url`` is not stored in the payload; the sender builds the URL from its settings.

    Set-based, so 10,000 units cost a handful of statements: one SELECT of the units still
    without a live link (none: return at once — the remind job calls this on every run), one
    multi-row INSERT … RETURNING per 1,000 links, ``ensure_endpoints`` and ``enqueue_many``.
    The campaign row is locked first (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises
    writers) so two concurrent launches cannot both give a unit a link.
    """
    del public_url  # the URL is built at send time (the token must not be persisted)
    campaign = (
        await session.execute(
            select(Campaign)
            .where(Campaign.id == campaign_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if campaign is None:
        raise NotFound(f"活动不存在：{campaign_id}", f"no such campaign: {campaign_id}", where="campaign")
    if campaign.status == "closed":
        raise Conflict("活动已结束，不能再发起", "campaign is closed", where="campaign")
    if now >= campaign.closes_at:
        raise Conflict("活动已过截止时间", "campaign window is over", where="closes_at")
    assert campaign.id is not None
    # NOT IN (uncorrelated) rather than NOT EXISTS: PostgreSQL hashes the subquery once, while a
    # correlated anti-join on a freshly filled, not yet analysed link table was planned as a
    # nested loop (1.2 s at 10,000 links, on every remind run).
    live = select(Link.unit_id).where(Link.campaign_id == campaign.id, Link.revoked_at.is_(None))
    units = list(
        (
            await session.execute(_audience_select(campaign).where(Unit.id.not_in(live)).order_by(Unit.id))
        ).scalars()
    )
    enqueued = 0
    if units:
        table = Link.__table__  # type: ignore[attr-defined]
        insert_links = insert(table).returning(table.c.id, table.c.unit_id)
        link_ids: dict[int, int] = {}
        for start in range(0, len(units), LINK_CHUNK):
            rows = [_new_link_row(campaign.id, u.id, secret, now) for u in units[start : start + LINK_CHUNK]]  # type: ignore[arg-type]
            # A list of parameter sets with RETURNING: one multi-row INSERT (insertmanyvalues).
            result = await session.execute(
                insert_links, rows, execution_options={"insertmanyvalues_page_size": LINK_CHUNK}
            )
            link_ids.update((unit_id, link_id) for link_id, unit_id in result.all())
        endpoints = await ensure_endpoints(
            session,
            {
                (u.channel_kind, u.channel_address): EndpointSpec(name=u.name, config=dict(u.channel_config))
                for u in units
            },
        )
        defer = await invitation_not_before(session, campaign, now=now, not_before=not_before)
        tz = await project_timezone(session, campaign)
        invitations = [
            _invitation(
                campaign,
                unit,
                link_ids[unit.id],  # type: ignore[index]
                endpoints[(unit.channel_kind, unit.channel_address)].id,  # type: ignore[arg-type]
                tz=tz,
                dedupe_key=f"invite:{campaign.id}:{unit.id}",
                not_before=defer,
            )
            for unit in units
        ]
        enqueued = len(await enqueue_many(session, invitations, now=now))
    if campaign.status == "draft":
        campaign.status = "open"
        campaign.launched_at = now
    await session.flush()
    return LaunchResult(campaign, len(units), enqueued)


async def close_campaign(session: AsyncSession, campaign_id: int, *, now: datetime) -> Campaign:
    """Close the campaign: its links stop working and unsent invitations/reminders are cancelled."""
    campaign = await get_campaign(session, campaign_id)
    if campaign.status != "closed":
        campaign.status = "closed"
        campaign.closed_at = now
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.campaign_id == campaign_id, OutboxMessage.status == "pending")
            .values(status="cancelled", last_error="campaign closed")
        )
        await session.flush()
    return campaign


async def get_link(session: AsyncSession, link_id: int) -> Link:
    link = await session.get(Link, link_id)
    if link is None:
        raise NotFound(f"链接不存在：{link_id}", f"no such link: {link_id}", where="link")
    return link


async def find_link_by_token(session: AsyncSession, token: str, *, for_update: bool = False) -> Link | None:
    """The link whose token hashes to ``sha256(token)``, or None (malformed tokens never query).

    ``for_update`` locks the row (PostgreSQL) so submissions through one link run one at a time;
    SQLite's ``BEGIN IMMEDIATE`` already serialises every write transaction.
    """
    if not is_well_formed_token(token):
        return None
    stmt = select(Link).where(Link.token_hash == hash_token(token))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def link_is_usable(link: Link, campaign: Campaign, *, now: datetime) -> bool:
    """A link works while not revoked and its campaign is open and inside its window."""
    return (
        link.revoked_at is None
        and campaign.status == "open"
        and campaign.opens_at <= now < campaign.closes_at
    )


async def revoke_link(session: AsyncSession, link_id: int, *, now: datetime) -> Link:
    """Stop a link working (kept for history); its unsent messages are cancelled."""
    link = await get_link(session, link_id)
    if link.revoked_at is None:
        link.revoked_at = now
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.link_id == link_id, OutboxMessage.status == "pending")
            .values(status="cancelled", last_error="link revoked")
        )
        await session.flush()
    return link


async def reissue_link(session: AsyncSession, link_id: int, *, secret: bytes, now: datetime) -> Link:
    """Revoke ``link_id`` (if still live) and give its unit a new link with a fresh invitation.

    The invitation's dedupe key is ``invite:{campaign}:{unit}:r{n}`` where n counts reissues for
    that unit, so each reissue sends exactly once. Only for an open campaign.
    """
    old = await get_link(session, link_id)
    campaign = await get_campaign(session, old.campaign_id)
    if campaign.status != "open" or now >= campaign.closes_at:
        raise Conflict("活动未开放，不能补发链接", "campaign is not open", where="campaign")
    live = (
        await session.execute(
            select(Link).where(
                Link.campaign_id == old.campaign_id,
                Link.unit_id == old.unit_id,
                Link.revoked_at.is_(None),
                Link.id != old.id,
            )
        )
    ).scalar_one_or_none()
    if live is not None:
        raise Conflict(
            f"该单位已有新链接（{live.id}）", f"unit already has a newer live link ({live.id})", where="link"
        )
    await revoke_link(session, link_id, now=now)
    count = await session.scalar(
        select(func.count())
        .select_from(Link)
        .where(Link.campaign_id == old.campaign_id, Link.unit_id == old.unit_id)
    )
    new = _new_link(old.campaign_id, old.unit_id, secret, now)
    # Carry the unit's progress so reminders do not nag a unit that already answered.
    new.opened_at, new.answered_at, new.confirmed_at = None, old.answered_at, old.confirmed_at
    # And its reminder count: reminder dedupe keys are per unit (remind:{campaign}:{unit}:{n}), so
    # a count restarting at 0 would only hit keys already used and the new link would never be
    # reminded until it passed the old count; max_reminders is per unit too. The gap restarts
    # from the fresh invitation (last_reminded_at stays empty).
    new.reminder_count = old.reminder_count
    session.add(new)
    await session.flush()
    unit = await session.get(Unit, old.unit_id)
    assert unit is not None
    await _enqueue_invitation(
        session,
        campaign,
        unit,
        new,
        dedupe_key=f"invite:{campaign.id}:{unit.id}:r{int(count or 1)}",
        now=now,
    )
    return new


@dataclass(frozen=True)
class LinkStatus:
    """One unit's progress in a campaign (all datetimes tz-aware UTC, None when not yet)."""

    unit_id: int
    unit_key: str
    unit_name: str
    link_id: int
    revoked: bool
    sent_at: datetime | None
    opened_at: datetime | None
    answered_at: datetime | None
    confirmed_at: datetime | None
    reminder_count: int
    last_reminded_at: datetime | None


async def link_status(
    session: AsyncSession, campaign_id: int, *, include_revoked: bool = False
) -> list[LinkStatus]:
    """Per unit: the live link's sent/opened/answered/confirmed times and reminder count.

    ``sent_at`` is the link's own field or, if the sender has not set it, the first ``sent``
    outbox message for the link.
    """
    sent = (
        select(OutboxMessage.link_id, func.min(OutboxMessage.sent_at).label("sent"))
        .where(OutboxMessage.campaign_id == campaign_id, OutboxMessage.status == "sent")
        .group_by(OutboxMessage.link_id)
        .subquery()
    )
    stmt = (
        select(Link, Unit.key, Unit.name, sent.c.sent)
        .join(Unit, Unit.id == Link.unit_id)
        .outerjoin(sent, sent.c.link_id == Link.id)
        .where(Link.campaign_id == campaign_id)
        .order_by(Unit.key, Link.id)
    )
    if not include_revoked:
        stmt = stmt.where(Link.revoked_at.is_(None))
    out = []
    for link, key, name, sent_at in (await session.execute(stmt)).all():
        out.append(
            LinkStatus(
                unit_id=link.unit_id,
                unit_key=key,
                unit_name=name,
                link_id=link.id,
                revoked=link.revoked_at is not None,
                sent_at=link.sent_at or sent_at,
                opened_at=link.opened_at,
                answered_at=link.answered_at,
                confirmed_at=link.confirmed_at,
                reminder_count=link.reminder_count,
                last_reminded_at=link.last_reminded_at,
            )
        )
    return out


# ----------------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Funnel:
    """How far a campaign got: live links (invited) → sent → opened → answered → confirmed."""

    invited: int
    sent: int
    opened: int
    answered: int
    confirmed: int

    @property
    def answer_rate(self) -> Decimal | None:
        """answered / invited, or None before any invitation."""
        return None if self.invited == 0 else Decimal(self.answered) / Decimal(self.invited)


async def campaign_funnel(session: AsyncSession, campaign_id: int) -> Funnel:
    """The funnel over the campaign's live (not revoked) links: one aggregate over the links
    (indexed by campaign) plus one over the sent outbox rows of links whose own ``sent_at`` is
    not set yet — "sent" reads like :func:`link_status` (the link's field, else a sent message)."""
    live = (Link.campaign_id == campaign_id, Link.revoked_at.is_(None))  # type: ignore[union-attr]
    row = (
        await session.execute(
            select(
                func.count(),
                func.count(Link.sent_at),
                func.count(Link.opened_at),
                func.count(Link.answered_at),
                func.count(Link.confirmed_at),
            ).where(*live)
        )
    ).one()
    sent_by_outbox = await session.scalar(
        select(func.count(func.distinct(OutboxMessage.link_id)))
        .join(Link, Link.id == OutboxMessage.link_id)
        .where(
            OutboxMessage.status == "sent",
            OutboxMessage.campaign_id == campaign_id,
            Link.sent_at.is_(None),
            *live,
        )  # type: ignore[union-attr]
    )
    invited, sent, opened, answered, confirmed = (int(v or 0) for v in row)
    return Funnel(invited, sent + int(sent_by_outbox or 0), opened, answered, confirmed)


@dataclass(frozen=True)
class UnitProgress:
    """One row of the campaign's unit table (console): the live link's lifecycle, reminders,
    and the newest outbox message's delivery state for that link."""

    unit_key: str
    unit_name: str
    channel_kind: str
    link_id: int
    created_at: datetime
    sent_at: datetime | None
    opened_at: datetime | None
    answered_at: datetime | None
    confirmed_at: datetime | None
    reminder_count: int
    last_status: str | None
    last_error: str


PROGRESS_FILTERS = ("all", "not_answered", "answered", "not_sent", "failed")


async def unit_progress_page(
    session: AsyncSession,
    campaign_id: int,
    *,
    search: str = "",
    state: str = "all",
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[UnitProgress]]:
    """``(total matching, one page)`` of live links in launch order (the audience's order; a
    reissued link moves to the end); ``search`` matches the unit key or name (substring),
    ``state`` is one of :data:`PROGRESS_FILTERS`. Paging walks ``ix_link_campaign_id`` in id
    order (no sort: sorting 10,000 joined rows by unit key cost ~50 ms a page), and the newest
    message per link is one indexed lookup per row of the page, so any page stays fast at 10,000
    units."""
    conds: list[Any] = [Link.campaign_id == campaign_id, Link.revoked_at.is_(None)]  # type: ignore[union-attr]
    if search:
        like = f"%{search.replace('%', '').replace('_', '')}%"
        conds.append(or_(Unit.key.like(like), Unit.name.like(like)))  # type: ignore[attr-defined]
    if state == "not_answered":
        conds.append(Link.answered_at.is_(None))  # type: ignore[union-attr]
    elif state == "answered":
        conds.append(Link.answered_at.is_not(None))  # type: ignore[union-attr]
    elif state == "not_sent":
        conds.append(Link.sent_at.is_(None))  # type: ignore[union-attr]
    elif state == "failed":
        conds.append(
            select(OutboxMessage.id)
            .where(OutboxMessage.link_id == Link.id, OutboxMessage.status.in_(("failed", "dead")))  # type: ignore[attr-defined]
            .exists()
        )
    counted = select(func.count()).select_from(Link)
    if search:  # only a search needs the unit's columns to count
        counted = counted.join(Unit, Unit.id == Link.unit_id)
    total = int((await session.execute(counted.where(*conds))).scalar_one())
    base = select(Link.id).join(Unit, Unit.id == Link.unit_id).where(*conds)
    inner = aliased(OutboxMessage)
    newest = (
        select(inner.id)
        .where(inner.link_id == Link.id)
        .order_by(inner.id.desc())  # type: ignore[union-attr]
        .limit(1)
        .correlate(Link)
        .scalar_subquery()
    )
    stmt = (
        select(Link, Unit.key, Unit.name, Unit.channel_kind, OutboxMessage.status, OutboxMessage.last_error)
        .join(Unit, Unit.id == Link.unit_id)
        .outerjoin(OutboxMessage, OutboxMessage.id == newest)
        .where(Link.id.in_(base.order_by(Link.id).limit(limit).offset(offset)))  # type: ignore[union-attr]
        .order_by(Link.id)
    )
    rows = []
    for link, key, name, kind, status, error in (await session.execute(stmt)).all():
        rows.append(
            UnitProgress(
                unit_key=key,
                unit_name=name,
                channel_kind=kind,
                link_id=link.id,
                created_at=link.created_at,
                sent_at=link.sent_at,
                opened_at=link.opened_at,
                answered_at=link.answered_at,
                confirmed_at=link.confirmed_at,
                reminder_count=link.reminder_count,
                last_status=status,
                last_error=error or "",
            )
        )
    return total, rows


async def live_links(session: AsyncSession, campaign_id: int) -> list[tuple[Link, Unit]]:
    """Every live link of the campaign with its unit, by unit key (for the links export)."""
    stmt = (
        select(Link, Unit)
        .join(Unit, Unit.id == Link.unit_id)
        .where(Link.campaign_id == campaign_id, Link.revoked_at.is_(None))  # type: ignore[union-attr]
        .order_by(Unit.key)
    )
    return [(link, unit) for link, unit in (await session.execute(stmt)).all()]


async def running_campaign(session: AsyncSession, project_id: int) -> Campaign | None:
    """The newest open campaign of the project, if any."""
    stmt = (
        select(Campaign)
        .where(Campaign.project_id == project_id, Campaign.status == "open")
        .order_by(Campaign.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def resend_invitation(session: AsyncSession, link_id: int, *, now: datetime) -> bool:
    """Queue the invitation for a live link again (admin's "re-send"), with a fresh dedupe key
    ``invite:{campaign}:{unit}:s{n}`` so each request sends once. Only for an open campaign."""
    link = await get_link(session, link_id)
    campaign = await get_campaign(session, link.campaign_id)
    if campaign.status != "open" or now >= campaign.closes_at:
        raise Conflict("活动未开放，不能重新发送", "campaign is not open", where="campaign")
    if link.revoked_at is not None:
        raise Conflict("链接已吊销，请补发新链接", "the link is revoked; reissue it", where="link")
    unit = await session.get(Unit, link.unit_id)
    assert unit is not None
    sends = await session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.link_id == link_id)
    )
    return await _enqueue_invitation(
        session,
        campaign,
        unit,
        link,
        dedupe_key=f"invite:{campaign.id}:{unit.id}:l{link_id}s{int(sends or 0)}",
        now=now,
    )
