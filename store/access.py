"""Which projects a caller may see: grants of console accounts and API tokens.

One rule, used by the API, the console and the CLI: a principal (account or token) sees a project
when it has ``all_projects`` or a ``project_grant`` row for it. Anything else is reported as
*not found* (404), the same answer as for a project that does not exist, so a caller cannot learn
which other projects exist. A token created before scoping existed has no grant and sees nothing
until granted (``jixiao token grant``) — the safe reading of "no grant".

Functions take the session first and never commit (the caller owns the transaction).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.errors import Invalid, NotFound
from store.models import (
    Account,
    ApiToken,
    Campaign,
    ChannelEndpoint,
    Disbursement,
    OutboxMessage,
    Project,
    ProjectGrant,
    Schedule,
    Unit,
)


@dataclass(frozen=True)
class Grants:
    """The projects one caller may see: every project, or exactly ``project_ids``."""

    all_projects: bool
    project_ids: frozenset[int]

    def allows(self, project_id: int | None) -> bool:
        return project_id is not None and (self.all_projects or project_id in self.project_ids)

    def where(self, column: Any) -> Any:
        """A SQL condition restricting ``column`` (a project id column) to these grants."""
        if self.all_projects:
            return column.is_not(None)
        return column.in_(sorted(self.project_ids)) if self.project_ids else false()


EVERYTHING = Grants(True, frozenset())


def _not_found(code: str) -> NotFound:
    return NotFound(f"项目不存在：{code}", f"no such project: {code}", where="project")


async def grants_of_token(session: AsyncSession, token: ApiToken) -> Grants:
    if token.all_projects:
        return EVERYTHING
    rows = await session.execute(select(ProjectGrant.project_id).where(ProjectGrant.token_id == token.id))
    return Grants(False, frozenset(int(r) for r in rows.scalars()))


async def grants_of_account(session: AsyncSession, account: Account) -> Grants:
    if account.all_projects:
        return EVERYTHING
    rows = await session.execute(select(ProjectGrant.project_id).where(ProjectGrant.account_id == account.id))
    return Grants(False, frozenset(int(r) for r in rows.scalars()))


async def projects_by_codes(session: AsyncSession, codes: Iterable[str]) -> list[Project]:
    """The projects named by ``codes`` (each must exist: Invalid naming the first unknown)."""
    wanted = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    if not wanted:
        return []
    rows = {
        p.code: p for p in (await session.execute(select(Project).where(Project.code.in_(wanted)))).scalars()
    }  # type: ignore[attr-defined]
    for code in wanted:
        if code not in rows:
            raise Invalid(f"项目不存在：{code}", f"no such project: {code}", where="project")
    return [rows[c] for c in wanted]


async def set_grants(
    session: AsyncSession,
    *,
    account_id: int | None = None,
    token_id: int | None = None,
    project_ids: Iterable[int],
    now: datetime,
) -> None:
    """Replace the projects granted to one account or one token."""
    if (account_id is None) == (token_id is None):
        raise ValueError("exactly one of account_id and token_id")
    owner = (
        ProjectGrant.account_id == account_id if account_id is not None else ProjectGrant.token_id == token_id
    )
    existing = {g.project_id: g for g in (await session.execute(select(ProjectGrant).where(owner))).scalars()}
    wanted = set(project_ids)
    for pid, g in existing.items():
        if pid not in wanted:
            await session.delete(g)
    for pid in sorted(wanted - set(existing)):
        session.add(ProjectGrant(project_id=pid, account_id=account_id, token_id=token_id, created_at=now))
    await session.flush()


async def granted_codes(
    session: AsyncSession, *, account_id: int | None = None, token_id: int | None = None
) -> list[str]:
    """Codes of the projects granted to one account or token (for listings)."""
    owner = (
        ProjectGrant.account_id == account_id if account_id is not None else ProjectGrant.token_id == token_id
    )
    stmt = (
        select(Project.code)
        .join(ProjectGrant, ProjectGrant.project_id == Project.id)
        .where(owner)
        .order_by(Project.code)
    )
    return [str(c) for c in (await session.execute(stmt)).scalars()]


# ---------------------------------------------------------------------------- resolving resources


async def check_load_allowed(session: AsyncSession, grants: Grants, code: str) -> None:
    """Loading a definition: a new version of a granted project, or a new project only for a
    caller who sees every project (a scoped caller could not see what it created)."""
    project = (await session.execute(select(Project).where(Project.code == code))).scalar_one_or_none()
    if project is None:
        if not grants.all_projects:
            raise NotFound(
                f"不能新建项目 {code}：此令牌/账号只能访问授权的项目",
                f"cannot create project {code}: this token/account only sees its granted projects",
                where="project",
            )
        return
    if not grants.allows(project.id):
        raise _not_found(code)


async def visible_project(session: AsyncSession, grants: Grants, code: str) -> Project:
    """The project ``code`` if the caller may see it; NotFound otherwise (same as absent)."""
    project = (await session.execute(select(Project).where(Project.code == code))).scalar_one_or_none()
    if project is None or not grants.allows(project.id):
        raise _not_found(code)
    return project


async def check_campaign(session: AsyncSession, grants: Grants, campaign_id: int) -> int:
    """The campaign's project id if visible; NotFound otherwise."""
    pid = (
        await session.execute(select(Campaign.project_id).where(Campaign.id == campaign_id))
    ).scalar_one_or_none()
    if not grants.allows(pid):
        raise NotFound(f"活动不存在：{campaign_id}", f"no such campaign: {campaign_id}", where="campaign")
    assert pid is not None
    return int(pid)


async def check_schedule(session: AsyncSession, grants: Grants, schedule_id: int) -> int:
    pid = (
        await session.execute(select(Schedule.project_id).where(Schedule.id == schedule_id))
    ).scalar_one_or_none()
    if not grants.allows(pid):
        raise NotFound(f"计划不存在：{schedule_id}", f"no such schedule: {schedule_id}", where="schedule")
    assert pid is not None
    return int(pid)


async def check_disbursement(session: AsyncSession, grants: Grants, disbursement_id: int) -> int:
    pid = (
        await session.execute(select(Disbursement.project_id).where(Disbursement.id == disbursement_id))
    ).scalar_one_or_none()
    if not grants.allows(pid):
        raise NotFound(
            f"拨付记录不存在：{disbursement_id}",
            f"no such disbursement: {disbursement_id}",
            where="disbursement",
        )
    assert pid is not None
    return int(pid)


def endpoint_visible_clause(grants: Grants) -> Any:
    """SQL condition on ``ChannelEndpoint``: the endpoint is a unit's channel in a granted
    project, or carried a message of a granted project (coordinator group robots), or was added
    for a granted project."""
    if grants.all_projects:
        return ChannelEndpoint.id.is_not(None)  # type: ignore[union-attr]
    unit_match = exists().where(
        and_(
            Unit.channel_kind == ChannelEndpoint.kind,
            Unit.channel_address == ChannelEndpoint.address,
            grants.where(Unit.project_id),
        )
    )
    message_match = exists().where(
        and_(OutboxMessage.endpoint_id == ChannelEndpoint.id, grants.where(OutboxMessage.project_id))
    )
    # an endpoint an admin of a granted project added (store.outbox.add_coordinator_endpoint)
    return or_(unit_match, message_match, grants.where(ChannelEndpoint.project_id))


async def check_endpoint(session: AsyncSession, grants: Grants, endpoint_id: int) -> ChannelEndpoint:
    row = (
        await session.execute(
            select(ChannelEndpoint).where(ChannelEndpoint.id == endpoint_id, endpoint_visible_clause(grants))
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"渠道端点不存在：{endpoint_id}", f"no such channel endpoint: {endpoint_id}", where="endpoint"
        )
    return row
