"""Fixtures for the admin API tests: the real app (``tests/bot/conftest.py``'s ``app_client``
with the example project loaded) plus admin and coordinator bearer tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from store.db import SessionMaker, transaction
from store.models import Project
from store.tokens import create_token
from tests.bot.conftest import (  # noqa: F401  (fixtures re-exported for this package)
    app_client,
    example_project,
    launched,
    settings,
    throttle_sleep,
)
from tests.conftest import Clock

CODE = "urumqi-ip-2023"


@dataclass
class Tokens:
    admin: str
    coordinator: str
    admin_id: int

    @property
    def as_admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    @property
    def as_coordinator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.coordinator}"}


@pytest.fixture
async def tokens(sessionmaker: SessionMaker, clock: Clock) -> Tokens:
    async with transaction(sessionmaker) as session:
        admin, admin_plain = await create_token(
            session, name="管理员", role="admin", now=clock(), all_projects=True
        )
        project_ids = list((await session.execute(select(Project.id))).scalars())
        _, coord_plain = await create_token(
            session, name="协调员", role="coordinator", now=clock(), projects=project_ids
        )
    assert admin.id is not None
    return Tokens(admin_plain, coord_plain, admin.id)


@pytest.fixture
async def api(app_client: TestClient, tokens: Tokens) -> Api:  # noqa: F811
    return Api(app_client, tokens)


class Api:
    """A test client that sends the admin token unless told otherwise."""

    def __init__(self, client: TestClient, tokens: Tokens) -> None:
        self.client, self.tokens = client, tokens

    async def call(
        self, method: str, path: str, *, token: str | None = "admin", **kw: Any
    ) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if token == "admin":
            headers.update(self.tokens.as_admin)
        elif token == "coordinator":
            headers.update(self.tokens.as_coordinator)
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        resp = await self.client.request(method, path, headers=headers, **kw)
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, **kw)
