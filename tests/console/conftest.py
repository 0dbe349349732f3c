"""Fixtures for the console tests: the real app (``tests/bot/conftest.py``'s ``app_client`` with
the example project), a second project, and accounts with known passwords."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from config.loader import load_definition
from config.settings import Settings
from store.access import set_grants
from store.accounts import create_account, hash_password
from store.db import SessionMaker, transaction
from store.models import Project
from store.projects import load_project
from tests.bot.conftest import (  # noqa: F401  (fixtures re-exported for this package)
    example_project,
    launched,
    settings,
    throttle_sleep,
)
from tests.conftest import REPO, Clock

A = "urumqi-ip-2023"
B = "zipingbiao-demo"
PASSWORD = "correct horse battery"


@dataclass
class Accounts:
    admin: str = "admin"
    coordinator: str = "coord"
    other_admin: str = "b-admin"


@pytest.fixture
async def app_client(
    aiohttp_client: Any,
    settings: Settings,  # noqa: F811
    sessionmaker: SessionMaker,
    clock: Clock,
    example_project: Project,  # noqa: F811
) -> TestClient:
    """The real app with "recompute now" wired to the scheduler's recompute (as ``jixiao serve``
    does) and the channel adapters pointed at nothing (tests that send pass their own)."""
    from bot.app import create_app
    from scheduler.recompute import recompute

    async def recompute_now(code: str, *, now: Any, trigger: str = "api") -> Any:
        return await recompute(sessionmaker, code, now=now, trigger=trigger)

    app = create_app(settings, sessionmaker=sessionmaker, clock=clock, channels={}, start_workers=False,
                     run_now={"recompute": recompute_now})  # fmt: skip
    return await aiohttp_client(app)


@pytest.fixture
async def accounts(app_client: TestClient, sessionmaker: SessionMaker, clock: Clock) -> Accounts:
    """``admin`` sees every project; ``coord`` (coordinator) and ``b-admin`` (admin) see one each."""
    hashed = hash_password(PASSWORD)
    now = clock()
    async with transaction(sessionmaker) as session:
        b = (await load_project(session, load_definition(REPO / "config/projects" / B), now=now)).project
        a = (await session.execute(select(Project).where(Project.code == A))).scalar_one()
        await create_account(
            session, name="admin", role="admin", password_hash=hashed, all_projects=True, now=now
        )
        coord = await create_account(session, name="coord", role="coordinator", password_hash=hashed, now=now)
        other = await create_account(session, name="b-admin", role="admin", password_hash=hashed, now=now)
        await set_grants(session, account_id=coord.id, project_ids=[a.id], now=now)
        await set_grants(session, account_id=other.id, project_ids=[b.id], now=now)
    from scheduler.recompute import recompute

    await recompute(sessionmaker, A, now=now, trigger="test")
    return Accounts()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


async def login(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    page = await client.get("/console/login")
    token = csrf_of(await page.text())
    return await client.post(
        "/console/login", data={"csrf": token, "name": name, "password": password, "next": "/console/"},
        allow_redirects=False,
    )  # fmt: skip


async def form_csrf(client: TestClient, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return csrf_of(await resp.text())
