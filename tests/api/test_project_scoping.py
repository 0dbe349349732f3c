"""Tokens are scoped to projects: a token granted project A gets 404 for project B's resources on
every path the OpenAPI document lists, and B's data never appears in A's lists.

Project A is the Urumqi example, project B the 自评表 demo; B has a campaign, a schedule, a
disbursement and an override so every path parameter names a real B resource.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from config.loader import load_definition
from store.campaigns import create_campaign
from store.db import SessionMaker, transaction
from store.models import Disbursement, Project, Unit
from store.projects import load_project
from store.schedules import create_schedule
from store.tokens import create_token
from tests.conftest import REPO, Clock

A = "urumqi-ip-2023"
B = "zipingbiao-demo"


@pytest.fixture
async def two_projects(app_client: TestClient, sessionmaker: SessionMaker, clock: Clock) -> dict[str, Any]:
    now = clock()
    async with transaction(sessionmaker) as session:
        b = (await load_project(session, load_definition(REPO / "config/projects" / B), now=now)).project
        a = (await session.execute(select(Project).where(Project.code == A))).scalar_one()
        assert a.id is not None and b.id is not None
        campaign = await create_campaign(
            session, b.id, name="B 调查", opens_at=now, closes_at=now + timedelta(days=7), now=now
        )
        schedule = await create_schedule(
            session, kind="recompute", project=B, cron="7 9 * * *", by="test", now=now
        )
        unit = (await session.execute(select(Unit).where(Unit.project_id == b.id))).scalars().first()
        disb = (
            (await session.execute(select(Disbursement).where(Disbursement.project_id == b.id)))
            .scalars()
            .first()
        )
        _, admin_a = await create_token(session, name="A 管理员", role="admin", now=now, projects=[a.id])
        _, coord_a = await create_token(
            session, name="A 协调员", role="coordinator", now=now, projects=[a.id]
        )
        _, bare = await create_token(session, name="旧令牌", role="admin", now=now)
        _, everything = await create_token(session, name="全部", role="admin", now=now, all_projects=True)
    defn = load_definition(REPO / "config/projects" / B)
    return {
        "ids": {
            "code": B,
            "campaign_id": campaign.id,
            "schedule_id": schedule.id,
            "disbursement_id": disb.id if disb is not None else 1,
            "unit_key": unit.key if unit is not None else "u1",
            "indicator_key": defn.indicators[0].key,
        },
        "b_id": b.id,
        "admin_a": admin_a,
        "coord_a": coord_a,
        "bare": bare,
        "all": everything,
    }


def _fill(path: str, ids: dict[str, Any]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    return path


async def _call(client: TestClient, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    kw: dict[str, Any] = {}
    if method in ("POST", "PATCH") and body is not None:
        kw["json"] = body
    resp = await client.request(method, path, headers=headers, **kw)
    raw = await resp.read()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw


async def test_a_token_for_project_a_gets_404_for_project_b_on_every_path(
    app_client: TestClient, two_projects: dict[str, Any]
) -> None:
    doc = await (await app_client.get("/api/openapi.json")).json()
    ids = two_projects["ids"]
    checked = 0
    for template, item in doc["paths"].items():
        if "{" not in template:
            continue
        for method in item:
            if method.upper() not in ("GET", "POST", "PATCH", "DELETE", "PUT"):
                continue
            for token in (two_projects["admin_a"], two_projects["coord_a"], two_projects["bare"]):
                status, body = await _call(app_client, method.upper(), _fill(template, ids), token, body={})
                assert status == 404, (method, template, status, body)
                checked += 1
    # every parameterised path was walked, each with three tokens
    assert checked >= 3 * 30


async def test_lists_without_a_project_in_the_path_hold_only_granted_projects(
    app_client: TestClient, two_projects: dict[str, Any]
) -> None:
    for token in (two_projects["admin_a"], two_projects["coord_a"]):
        status, body = await _call(app_client, "GET", "/api/projects", token)
        assert status == 200 and [p["code"] for p in body["data"]] == [A]
        status, body = await _call(app_client, "GET", "/api/schedules", token)
        assert status == 200 and body["data"] == []
    status, body = await _call(app_client, "GET", "/api/projects", two_projects["bare"])
    assert status == 200 and body["data"] == []
    status, body = await _call(app_client, "GET", "/api/projects", two_projects["all"])
    assert sorted(p["code"] for p in body["data"]) == [A, B]
    status, body = await _call(app_client, "GET", "/api/schedules", two_projects["all"])
    assert [s["project"] for s in body["data"]] == [B]


async def test_a_scoped_token_cannot_create_a_schedule_or_load_a_definition_for_another_project(
    app_client: TestClient, two_projects: dict[str, Any]
) -> None:
    status, _ = await _call(
        app_client, "POST", "/api/schedules", two_projects["admin_a"],
        body={"kind": "recompute", "project": B, "cron": "7 9 * * *"},
    )  # fmt: skip
    assert status == 404
    toml = (REPO / "config/projects" / B / "project.toml").read_text(encoding="utf-8")
    resp = await app_client.post(
        "/api/projects/load",
        data=toml.encode(),
        headers={"Authorization": f"Bearer {two_projects['admin_a']}", "Content-Type": "application/toml"},
    )
    assert resp.status == 404, await resp.text()


async def test_the_same_paths_answer_for_a_token_granted_project_b(
    app_client: TestClient, two_projects: dict[str, Any]
) -> None:
    """The control: the 404s above come from the grant, not from a broken path."""
    ids = two_projects["ids"]
    for path in ("/api/projects/{code}", "/api/campaigns/{campaign_id}", "/api/schedules/{schedule_id}"):
        status, body = await _call(app_client, "GET", _fill(path, ids), two_projects["all"])
        assert status == 200, (path, body)


async def test_a_scoped_token_cannot_connect_a_chat_to_another_project(
    app_client: TestClient, two_projects: dict[str, Any]
) -> None:
    body = {"vendor": "telegram", "chat_id": "-100123", "project": B}
    status, _ = await _call(app_client, "POST", "/api/chats/connect", two_projects["admin_a"], body=body)
    assert status == 404
    status, _ = await _call(app_client, "POST", "/api/chats/disconnect", two_projects["admin_a"], body=body)
    assert status == 404
    status, _ = await _call(app_client, "POST", "/api/chats/connect", two_projects["all"], body=body)
    assert status == 200
