"""Shared fixtures for the bot tests: the real app on a real database with the example project.

- ``settings``: test settings (fixed secret, ``public_url`` of the test server's host);
- ``example_project``: the Urumqi example project loaded into ``sessionmaker`` (121 units);
- ``app_client``: an ``aiohttp`` test client on ``bot.app.create_app(settings, sessionmaker=…,
  clock=…, channels={}, start_workers=False)`` — no delivery worker, no vendor adapters; the
  failure throttle's sleep is replaced by a recorder so tests never wait;
- ``launched``: a campaign launched on the example project, with each unit's raw token
  (rebuilt from the secret and the stored salt, as the sender would).

Everything runs on SQLite, and also on PostgreSQL when ``JIXIAO_TEST_PG_URL`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import create_app
from config.loader import load_definition
from config.settings import Settings
from store.campaigns import create_campaign, launch_campaign, make_link_token
from store.db import SessionMaker, transaction
from store.models import Link, Project, Unit
from store.projects import load_project
from tests.conftest import EXAMPLE_PROJECT, Clock

TEST_SECRET = "test-secret-do-not-use-0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        public_url="http://127.0.0.1",
        load_example=False,
    )


@pytest.fixture
async def example_project(sessionmaker: SessionMaker, clock: Clock) -> Project:
    """The bundled example project, loaded once into this test's database."""
    defn = load_definition(EXAMPLE_PROJECT)
    async with transaction(sessionmaker) as session:
        result = await load_project(session, defn, now=clock(), by="test")
    return result.project


class SleepRecorder:
    """Stands in for ``asyncio.sleep`` in the link failure throttle: records, never waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def throttle_sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
async def app_client(
    aiohttp_client: Any,
    settings: Settings,
    sessionmaker: SessionMaker,
    clock: Clock,
    example_project: Project,
    throttle_sleep: SleepRecorder,
) -> TestClient:
    """A client on the real app (127.0.0.1 test server) with the example project loaded."""
    app = create_app(settings, sessionmaker=sessionmaker, clock=clock, channels={}, start_workers=False)
    try:
        from bot.links import THROTTLE

        app[THROTTLE].sleep = throttle_sleep
    except (ImportError, KeyError):  # links feature not present
        pass
    return await aiohttp_client(app)


@dataclass
class Launched:
    """A launched campaign: its id, and per unit key the link row and its raw token."""

    campaign_id: int
    project_id: int
    links: dict[str, Link] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    unit_ids: dict[str, int] = field(default_factory=dict)

    def url(self, unit_key: str) -> str:
        return f"/l/{self.tokens[unit_key]}"


async def launch_example_campaign(
    sessionmaker: SessionMaker,
    project: Project,
    now: datetime,
    *,
    secret: str = TEST_SECRET,
    unit_keys: list[str] | None = None,
    days: int = 14,
    **kw: Any,
) -> Launched:
    """Create and launch a campaign open from ``now - 1h`` for ``days`` days."""
    async with transaction(sessionmaker) as session:
        units = (await session.execute(select(Unit).where(Unit.project_id == project.id))).scalars().all()
        by_key = {u.key: u.id for u in units}
        unit_ids = [by_key[k] for k in unit_keys] if unit_keys is not None else None
        assert project.id is not None
        campaign = await create_campaign(
            session,
            project.id,
            name="2023年度满意度调查",
            opens_at=now - timedelta(hours=1),
            closes_at=now + timedelta(days=days),
            unit_ids=unit_ids,  # type: ignore[arg-type]
            now=now,
            **kw,
        )
        assert campaign.id is not None
        await launch_campaign(
            session, campaign.id, secret=secret.encode(), public_url="http://127.0.0.1", now=now
        )
        links = (await session.execute(select(Link).where(Link.campaign_id == campaign.id))).scalars().all()
    keys = {v: k for k, v in by_key.items()}
    out = Launched(campaign.id, project.id, unit_ids=dict(by_key))  # type: ignore[arg-type]
    for link in links:
        key = keys[link.unit_id]
        out.links[key] = link
        out.tokens[key] = make_link_token(secret.encode(), link.token_salt)
    return out


@pytest.fixture
async def launched(sessionmaker: SessionMaker, example_project: Project, clock: Clock) -> Launched:
    return await launch_example_campaign(sessionmaker, example_project, clock())


def hidden_fields(html: str, action: str) -> dict[str, str]:
    """The hidden inputs (csrf, submission_id) of the form posting to ``action`` on a page."""
    import re

    # The action may end with a fragment (the form's section): '…/answers#q'.
    start = re.search(f'action="{re.escape(action)}(#[^"]*)?"', html).start()  # type: ignore[union-attr]
    end = html.index("</form>", start)
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html[start:end]))


async def page_form(client: TestClient, token: str, form: str = "answers") -> dict[str, str]:
    """GET the unit page and return the hidden fields of one of its forms
    (``answers`` or ``pay/<disbursement id>``)."""
    resp = await client.get(f"/l/{token}")
    assert resp.status == 200, await resp.text()
    return hidden_fields(await resp.text(), f"/l/{token}/{form}")
