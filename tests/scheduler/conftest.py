"""Fixtures for the scheduler tests: the example project on a real database (SQLite, and
PostgreSQL when ``JIXIAO_TEST_PG_URL`` is set), a campaign on it, and helpers to answer through
a unit's real link (``store.answers.submit_response``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from config.loader import load_definition
from config.settings import Settings
from store.campaigns import create_campaign, launch_campaign
from store.db import SessionMaker, transaction
from store.models import Campaign, Link, OutboxMessage, Project, Response, Unit
from store.projects import load_project
from tests.conftest import EXAMPLE_PROJECT, Clock

TEST_SECRET = b"scheduler-test-secret-0123456789abcdef"
CODE = "urumqi-ip-2023"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        secret_key=TEST_SECRET.decode(),  # type: ignore[arg-type]
        public_url="https://jx.example.cn",
        load_example=False,
    )


@pytest.fixture
async def project(sessionmaker: SessionMaker, clock: Clock) -> Project:
    async with transaction(sessionmaker) as session:
        result = await load_project(session, load_definition(EXAMPLE_PROJECT), now=clock(), by="test")
    return result.project


async def make_campaign(
    sm: SessionMaker,
    project: Project,
    clock: Clock,
    *,
    policy: dict[str, Any] | None = None,
    unit_ids: list[int] | None = None,
    days: int = 30,
    launch: bool = True,
) -> Campaign:
    """A campaign on the example project, launched (links + invitations) unless ``launch=False``."""
    async with transaction(sm) as session:
        campaign = await create_campaign(
            session,
            project.id,  # type: ignore[arg-type]
            name="2023年度满意度调查",
            opens_at=clock() - timedelta(hours=1),
            closes_at=clock() + timedelta(days=days),
            unit_ids=unit_ids,
            policy=policy,
            now=clock(),
        )
        if launch:
            await launch_campaign(session, campaign.id, secret=TEST_SECRET, now=clock())  # type: ignore[arg-type]
    return campaign


async def unit_ids(sm: SessionMaker, project: Project, n: int, *, without_response: bool = True) -> list[int]:
    """The first ``n`` units (by key) that have no imported response yet."""
    async with sm() as session:
        answered = select(Response.unit_id).where(Response.project_id == project.id)
        stmt = select(Unit.id).where(Unit.project_id == project.id).order_by(Unit.key)
        if without_response:
            stmt = stmt.where(Unit.id.not_in(answered))
        return list((await session.execute(stmt.limit(n))).scalars())


async def answer(
    sm: SessionMaker, campaign_id: int, unit_id: int, *, now: datetime, overall: str = "非常不满意"
) -> None:
    """Answer the questionnaire through the unit's live link, as the unit page would."""
    from store.answers import submit_response

    async with transaction(sm) as session:
        link = (
            await session.execute(
                select(Link).where(
                    Link.campaign_id == campaign_id, Link.unit_id == unit_id, Link.revoked_at.is_(None)
                )
            )
        ).scalar_one()
        await submit_response(
            session,
            link,
            answers={"guide": "一般", "review": "一般", "funds": "一般", "overall": overall},
            submission_key=uuid.uuid4().hex,
            now=now,
        )


async def outbox(
    sm: SessionMaker, *, kind: str | None = None, prefix: str | None = None
) -> list[OutboxMessage]:
    async with sm() as session:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            stmt = stmt.where(OutboxMessage.kind == kind)
        if prefix:
            stmt = stmt.where(OutboxMessage.dedupe_key.like(f"{prefix}%"))
        return list((await session.execute(stmt)).scalars())


async def count(sm: SessionMaker, model: Any, *where: Any) -> int:
    async with sm() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
