"""Campaigns: create, launch, close, status per link, revoke/reissue a unit's link.

The lifecycle and link rules live in ``store.campaigns``; this module maps HTTP to them.
Link tokens never appear in responses (only sha256 is stored; the sender rebuilds the URL).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, StringConstraints, field_validator
from sqlalchemy import select

from bot import keys
from bot.api.common import API, Body, Call, IsoDateTime, Key, Line, Out, iso, ok
from bot.errors import ApiError
from store.campaigns import (
    close_campaign,
    create_campaign,
    get_campaign,
    launch_campaign,
    link_status,
    list_campaigns,
    reissue_link,
    revoke_link,
)
from store.db import transaction
from store.models import Campaign, Link, Project, Unit
from store.projects import get_project
from store.units import get_unit

HHMM = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class PolicyIn(Body):
    """Reminder policy: days between reminders, how many at most, quiet hours in project time."""

    min_days_between: int = Field(default=3, ge=0, le=365)
    max_reminders: int = Field(default=3, ge=0, le=20)
    quiet_hours: list[HHMM] | None = Field(default=None, min_length=2, max_length=2)


def _sane(value: dt.datetime) -> dt.datetime:
    if not 2000 <= value.year <= 2100:
        raise ValueError("year must be between 2000 and 2100")
    return value.astimezone(dt.UTC)


class CampaignCreate(Body):
    name: Line(200, 1)  # type: ignore[valid-type]
    opens_at: IsoDateTime(2000, 2100)  # type: ignore[valid-type]
    closes_at: IsoDateTime(2000, 2100)  # type: ignore[valid-type]
    #: unit keys; omitted or null = every active unit at launch time
    units: list[Key] | None = Field(default=None, max_length=10000)
    policy: PolicyIn | None = None
    ask_confirmations: bool = True

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _window(cls, value: dt.datetime) -> dt.datetime:
        return _sane(value)


class CampaignOut(Out):
    id: int
    project: str
    name: str
    status: str
    opens_at: str
    closes_at: str
    ask_confirmations: bool
    policy: dict[str, Any]
    units: list[str] | None
    created_at: str
    launched_at: str | None
    closed_at: str | None


class LinkOut(Out):
    unit: str
    unit_name: str
    link_id: int
    revoked: bool
    sent_at: str | None
    opened_at: str | None
    answered_at: str | None
    confirmed_at: str | None
    reminder_count: int
    last_reminded_at: str | None


class ProgressOut(Out):
    links: int
    sent: int
    opened: int
    answered: int
    confirmed: int


class CampaignDetailOut(CampaignOut):
    progress: ProgressOut
    links: list[LinkOut]


class LaunchOut(Out):
    campaign: CampaignOut
    links_created: int
    invitations_enqueued: int


class LinkChangeOut(Out):
    unit: str
    link_id: int
    revoked: bool
    created_at: str


class DetailQuery(Body):
    include_revoked: bool = False


async def _campaign_out(session: Any, c: Campaign, code: str | None = None) -> CampaignOut:
    if code is None:
        code = (await session.execute(select(Project.code).where(Project.id == c.project_id))).scalar_one()
    keys_ = None
    if c.unit_ids is not None:
        ids = list(c.unit_ids)
        keys_ = list(
            (await session.execute(select(Unit.key).where(Unit.id.in_(ids)).order_by(Unit.key))).scalars()
        )
    assert c.id is not None
    return CampaignOut(
        id=c.id,
        project=code or "",
        name=c.name,
        status=c.status,
        opens_at=iso(c.opens_at) or "",
        closes_at=iso(c.closes_at) or "",
        ask_confirmations=c.ask_confirmations,
        policy=dict(c.policy or {}),
        units=keys_,
        created_at=iso(c.created_at) or "",
        launched_at=iso(c.launched_at),
        closed_at=iso(c.closed_at),
    )


@API.op("GET", "/api/projects/{code}/campaigns", role="reader", tag="campaigns", summary="活动列表 / list campaigns",
        data={"type": "array", "items": {"$ref": "#/components/schemas/CampaignOut"}}, errors=(404,))  # fmt: skip
async def list_campaigns_(request: web.Request, call: Call) -> web.Response:
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        assert project.id is not None
        out = [
            await _campaign_out(session, c, project.code) for c in await list_campaigns(session, project.id)
        ]
    return ok(out)


@API.op("POST", "/api/projects/{code}/campaigns", role="admin", tag="campaigns", summary="新建活动（草稿）/ create a campaign",
        body=CampaignCreate, data=CampaignOut, success=201, errors=(400, 404, 413, 415))  # fmt: skip
async def create_campaign_(request: web.Request, call: Call) -> web.Response:
    """A draft campaign on the current questionnaire; ``units`` (keys) limits the audience."""
    b: CampaignCreate = call.body
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        project = await get_project(session, call.path["code"])
        assert project.id is not None
        unit_ids = None
        if b.units is not None:
            unit_ids = []
            missing = []
            for key in b.units:
                unit = (
                    await session.execute(select(Unit).where(Unit.project_id == project.id, Unit.key == key))
                ).scalar_one_or_none()
                if unit is None:
                    missing.append(key)
                else:
                    unit_ids.append(unit.id)
            if missing:
                shown = ", ".join(missing[:20])
                raise ApiError(400, "unknown_unit", f"这些单位不存在：{shown}", f"unknown units: {shown}", where="units",
                               details=[{"field": "units", "unit": k} for k in missing[:100]])  # fmt: skip
        policy = b.policy.model_dump(exclude_unset=True) if b.policy is not None else None
        if policy is not None and policy.get("quiet_hours", "absent") is None:
            policy["quiet_hours"] = None
        campaign = await create_campaign(
            session,
            project.id,
            name=b.name,
            opens_at=b.opens_at,
            closes_at=b.closes_at,
            unit_ids=unit_ids,
            policy=policy,
            ask_confirmations=b.ask_confirmations,
            now=request.app[keys.CLOCK](),
        )
        out = await _campaign_out(session, campaign, project.code)
    return ok(out, status=201)


@API.op("GET", "/api/campaigns/{campaign_id}", role="reader", tag="campaigns", summary="活动状态（每个链接）/ campaign status",
        query=DetailQuery, data=CampaignDetailOut, errors=(404,))  # fmt: skip
async def get_campaign_(request: web.Request, call: Call) -> web.Response:
    """The campaign with each unit's link progress: sent, opened, answered, confirmed, reminders."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        campaign = await get_campaign(session, call.path["campaign_id"])
        base = await _campaign_out(session, campaign)
        statuses = await link_status(
            session, call.path["campaign_id"], include_revoked=call.query.include_revoked
        )
    links = [
        LinkOut(
            unit=s.unit_key,
            unit_name=s.unit_name,
            link_id=s.link_id,
            revoked=s.revoked,
            sent_at=iso(s.sent_at),
            opened_at=iso(s.opened_at),
            answered_at=iso(s.answered_at),
            confirmed_at=iso(s.confirmed_at),
            reminder_count=s.reminder_count,
            last_reminded_at=iso(s.last_reminded_at),
        )
        for s in statuses
    ]
    live = [s for s in statuses if not s.revoked]
    progress = ProgressOut(
        links=len(live),
        sent=sum(s.sent_at is not None for s in live),
        opened=sum(s.opened_at is not None for s in live),
        answered=sum(s.answered_at is not None for s in live),
        confirmed=sum(s.confirmed_at is not None for s in live),
    )
    return ok(CampaignDetailOut(**base.model_dump(), progress=progress, links=links))


@API.op("POST", "/api/campaigns/{campaign_id}/launch", role="admin", tag="campaigns", summary="发起活动 / launch",
        data=LaunchOut, errors=(404, 409))  # fmt: skip
async def launch_campaign_(request: web.Request, call: Call) -> web.Response:
    """Create each unit's link and queue its invitation (idempotent: a second launch only fills in
    units added since)."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        result = await launch_campaign(
            session,
            call.path["campaign_id"],
            secret=request.app[keys.SECRET],
            now=request.app[keys.CLOCK](),
        )
        out = LaunchOut(
            campaign=await _campaign_out(session, result.campaign),
            links_created=result.links_created,
            invitations_enqueued=result.invitations_enqueued,
        )
    return ok(out)


@API.op("POST", "/api/campaigns/{campaign_id}/close", role="admin", tag="campaigns", summary="结束活动 / close",
        data=CampaignOut, errors=(404, 409))  # fmt: skip
async def close_campaign_(request: web.Request, call: Call) -> web.Response:
    """Links stop working; unsent invitations and reminders are cancelled (idempotent)."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        campaign = await close_campaign(session, call.path["campaign_id"], now=request.app[keys.CLOCK]())
        out = await _campaign_out(session, campaign)
    return ok(out)


async def _unit_links(session: Any, campaign_id: int, unit_key: str) -> list[Link]:
    campaign = await get_campaign(session, campaign_id)
    unit = await get_unit(session, campaign.project_id, unit_key)
    stmt = select(Link).where(Link.campaign_id == campaign_id, Link.unit_id == unit.id).order_by(Link.id)
    links = list((await session.execute(stmt)).scalars())
    if not links:
        raise ApiError(404, "not_found", f"单位 {unit_key} 在此活动中没有链接（活动是否已发起？）",
                       f"unit {unit_key} has no link in this campaign (was it launched?)", where="unit_key")  # fmt: skip
    return links


def _link_change(unit_key: str, link: Link) -> LinkChangeOut:
    assert link.id is not None
    return LinkChangeOut(
        unit=unit_key,
        link_id=link.id,
        revoked=link.revoked_at is not None,
        created_at=iso(link.created_at) or "",
    )


@API.op("POST", "/api/campaigns/{campaign_id}/units/{unit_key}/revoke", role="admin", tag="campaigns",
        summary="吊销单位链接 / revoke a unit's link", data=LinkChangeOut, errors=(404, 409))  # fmt: skip
async def revoke_link_(request: web.Request, call: Call) -> web.Response:
    """The unit's live link stops working (kept for history); its unsent messages are cancelled."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        links = await _unit_links(session, call.path["campaign_id"], call.path["unit_key"])
        live = [link for link in links if link.revoked_at is None]
        target = live[-1] if live else links[-1]
        link = await revoke_link(session, target.id, now=request.app[keys.CLOCK]())  # type: ignore[arg-type]
    return ok(_link_change(call.path["unit_key"], link))


@API.op("POST", "/api/campaigns/{campaign_id}/units/{unit_key}/reissue", role="admin", tag="campaigns",
        summary="补发单位链接 / reissue a unit's link", data=LinkChangeOut, success=201, errors=(404, 409))  # fmt: skip
async def reissue_link_(request: web.Request, call: Call) -> web.Response:
    """Revoke the unit's current link and send it a new one (open campaigns only)."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        links = await _unit_links(session, call.path["campaign_id"], call.path["unit_key"])
        new = await reissue_link(
            session,
            links[-1].id,
            secret=request.app[keys.SECRET],
            now=request.app[keys.CLOCK](),  # type: ignore[arg-type]
        )
    return ok(_link_change(call.path["unit_key"], new), status=201)
