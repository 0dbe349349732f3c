"""Authentication, roles, and the project endpoints."""

from __future__ import annotations

from pathlib import Path

from aiohttp import FormData
from sqlalchemy import func, select

from store.db import SessionMaker, transaction
from store.models import ApiToken, ProjectVersion, Unit
from store.tokens import hash_token, revoke_token
from tests.api.conftest import CODE, Api
from tests.conftest import EXAMPLE_PROJECT, Clock


async def test_a_request_without_a_token_gets_401_with_a_bearer_challenge(api: Api) -> None:
    resp = await api.client.get("/api/projects")
    body = await resp.json()
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["ok"] is False and body["error"]["code"] == "unauthorized"
    assert "Authorization" in body["error"]["message_en"]


async def test_a_wrong_token_gets_401(api: Api) -> None:
    status, body = await api.get("/api/projects", token="jx_not-a-real-token")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, _ = await api.get("/api/projects", token=None, headers={"Authorization": "Basic abc"})
    assert status == 401


async def test_a_revoked_token_gets_401(api: Api, sessionmaker: SessionMaker, clock: Clock) -> None:
    assert (await api.get("/api/me"))[0] == 200
    async with transaction(sessionmaker) as session:
        await revoke_token(session, api.tokens.admin_id, now=clock())
    status, body = await api.get("/api/me")
    assert status == 401 and "revoked" in body["error"]["message_en"]


async def test_tokens_are_stored_only_as_sha256_and_last_use_is_recorded(
    api: Api, sessionmaker: SessionMaker
) -> None:
    await api.get("/api/me")
    async with transaction(sessionmaker) as session:
        rows = (await session.execute(select(ApiToken))).scalars().all()
    hashes = {r.token_hash for r in rows}
    assert hash_token(api.tokens.admin) in hashes and api.tokens.admin not in hashes
    admin = next(r for r in rows if r.id == api.tokens.admin_id)
    assert admin.last_used_at is not None


async def test_a_coordinator_can_read_but_every_write_is_forbidden(
    api: Api, sessionmaker: SessionMaker
) -> None:
    assert (await api.get(f"/api/projects/{CODE}", token="coordinator"))[0] == 200
    assert (await api.get(f"/api/projects/{CODE}/responses", token="coordinator"))[0] == 200
    writes = [
        ("POST", f"/api/projects/{CODE}/units", {"key": "x1", "name": "新单位"}),
        ("POST", f"/api/projects/{CODE}/campaigns", {"name": "x"}),
        ("POST", f"/api/projects/{CODE}/scores/recompute", None),
        ("POST", "/api/projects/validate", {}),
    ]
    for method, path, body in writes:
        status, out = await api.call(method, path, token="coordinator", json=body)
        assert status == 403, (path, out)
        assert out["error"]["code"] == "forbidden"
    # Units carry contact addresses: admin only.
    assert (await api.get(f"/api/projects/{CODE}/units", token="coordinator"))[0] == 403
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Unit).where(Unit.key == "x1")) == 0


async def test_the_openapi_document_is_public_and_describes_every_route(api: Api) -> None:
    resp = await api.client.get("/api/openapi.json")
    doc = await resp.json()
    assert resp.status == 200 and doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    routes = {
        (r.method, r.resource.canonical)
        for r in api.client.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    create = doc["paths"]["/api/projects/{code}/disbursements"]["post"]
    assert {"400", "401", "403", "404", "413"} <= set(create["responses"])


async def test_projects_list_and_detail_show_version_counts_and_money_in_yuan(api: Api) -> None:
    status, body = await api.get("/api/projects", token="coordinator")
    assert status == 200 and [p["code"] for p in body["data"]] == [CODE]
    status, body = await api.get(f"/api/projects/{CODE}", token="coordinator")
    p = body["data"]
    assert status == 200
    assert p["budget"] == "22448400.00" and p["money"]["budget"] == "22448400.00"
    assert p["counts"]["units"] == 121 and p["counts"]["responses"] == 16
    assert p["version"]["version"] == 1
    assert p["money"]["arrived"].endswith(".00") or len(p["money"]["arrived"].split(".")[1]) == 2
    assert (await api.get("/api/projects/no-such-project"))[0] == 404
    assert (await api.get("/api/projects/BAD%20CODE"))[0] == 404


def _example_form() -> FormData:
    form = FormData()
    for name in ("project.toml", "units.csv", "disbursements.csv"):
        field = "definition" if name == "project.toml" else name
        form.add_field(field, (EXAMPLE_PROJECT / name).read_bytes(), filename=name)
    return form


async def test_validating_the_example_by_multipart_reports_it_valid(api: Api) -> None:
    status, body = await api.post("/api/projects/validate", data=_example_form())
    assert status == 200, body
    assert body["data"]["valid"] is True
    assert body["data"]["summary"]["units"] == 121


async def test_validation_returns_every_problem_with_its_location(api: Api) -> None:
    toml = (EXAMPLE_PROJECT / "project.toml").read_text(encoding="utf-8")
    toml = toml.replace('amount = "22448400.00"', 'amount = "22448400.001"').replace(
        "year = 2023", "year = 1800"
    )
    status, body = await api.post(
        "/api/projects/validate", data=toml.encode(), headers={"Content-Type": "application/toml"}
    )
    assert status == 200
    problems = body["data"]["problems"]
    assert body["data"]["valid"] is False
    codes = {p["code"] for p in problems}
    assert "money_precision" in codes
    assert any("budget" in p["location"] for p in problems)
    assert any("year" in p["location"] for p in problems)
    # The CSV files were not sent: that is reported too, with its location.
    assert "file_not_found" in codes


async def test_validation_of_malformed_json_is_reported_not_crashed(api: Api) -> None:
    status, body = await api.post(
        "/api/projects/validate", data=b'{"project": ', headers={"Content-Type": "application/json"}
    )
    assert status == 200 and body["data"]["valid"] is False
    assert body["data"]["problems"][0]["code"] == "json_syntax"


async def test_loading_changed_content_makes_a_new_version_and_same_content_changes_nothing(
    api: Api, sessionmaker: SessionMaker, tmp_path: Path
) -> None:
    status, body = await api.post("/api/projects/load", data=_example_form())
    assert status == 200 and body["data"]["created_version"] is False and body["data"]["version"] == 1
    form = FormData()
    toml = (EXAMPLE_PROJECT / "project.toml").read_text(encoding="utf-8")
    form.add_field("definition", toml.replace('name = "知识产权运营服务体系建设项目"', 'name = "知识产权运营服务体系建设项目（修订）"').encode(), filename="project.toml")  # fmt: skip
    for name in ("units.csv", "disbursements.csv"):
        form.add_field(name, (EXAMPLE_PROJECT / name).read_bytes(), filename=name)
    status, body = await api.post("/api/projects/load", data=form)
    assert status == 201, body
    assert body["data"]["version"] == 2 and body["data"]["created_version"] is True
    status, body = await api.get(f"/api/projects/{CODE}")
    assert body["data"]["name"].endswith("（修订）") and body["data"]["version"]["loaded_by"].startswith(
        "api:"
    )


async def test_loading_an_invalid_definition_is_400_with_every_problem_and_stores_nothing(
    api: Api, sessionmaker: SessionMaker
) -> None:
    status, body = await api.post(
        "/api/projects/load",
        data=b"[project]\ncode = 'Bad Code'\n",
        headers={"Content-Type": "application/toml"},
    )
    assert status == 400 and body["error"]["code"] == "invalid_definition"
    assert len(body["error"]["details"]) >= 2
    assert all(d["location"] for d in body["error"]["details"])
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(ProjectVersion)) == 1


async def test_a_reload_keeps_an_api_channel_edit_and_a_dry_run_previews_it_without_storing(
    api: Api, sessionmaker: SessionMaker
) -> None:
    status, body = await api.patch(
        f"/api/projects/{CODE}/units/u003", json={"channel_kind": "console", "channel_address": ""}
    )
    assert status == 200, body
    units = (EXAMPLE_PROJECT / "units.csv").read_text(encoding="utf-8")
    changed = units.replace("乌鲁木齐米东恒通商标事务所（示例）", "乌鲁木齐米东恒通商标事务所")
    toml = (EXAMPLE_PROJECT / "project.toml").read_bytes()

    def form() -> FormData:
        f = FormData()
        f.add_field("definition", toml, filename="project.toml")
        f.add_field("units.csv", changed.encode("gbk"), filename="units.csv")  # as Excel saves it
        f.add_field("disbursements.csv", (EXAMPLE_PROJECT / "disbursements.csv").read_bytes(), filename="disbursements.csv")  # fmt: skip
        return f

    status, body = await api.post("/api/projects/load?dry_run=1", data=form())
    assert status == 200 and body["data"]["dry_run"] is True, body
    changes = {c["key"]: c for c in body["data"]["unit_changes"]}
    assert changes["u001"]["action"] == "update"
    assert changes["u001"]["fields"] == [
        {
            "field": "name",
            "stored": "乌鲁木齐米东恒通商标事务所（示例）",
            "file": "乌鲁木齐米东恒通商标事务所",
            "source": "file",
        }
    ]
    assert changes["u003"]["action"] == "keep"
    assert {f["field"]: f["source"] for f in changes["u003"]["fields"]} == {
        "channel_kind": "kept",
        "channel_address": "kept",
    }
    status, body = await api.get(f"/api/projects/{CODE}")
    assert body["data"]["version"]["version"] == 1  # nothing stored
    status, body = await api.post("/api/projects/load", data=form())
    assert status == 201 and body["data"]["version"] == 2, body
    status, body = await api.get(f"/api/projects/{CODE}/units")
    units_by_key = {u["key"]: u for u in body["data"]}
    assert units_by_key["u003"]["channel_kind"] == "console"  # the API edit survived the reload
    assert units_by_key["u001"]["name"] == "乌鲁木齐米东恒通商标事务所"
