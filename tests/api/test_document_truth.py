"""The API does what its OpenAPI document says, in the places schemathesis first found it did
not: strict JSON types, true ``Allow`` headers on 405, unknown query parameters refused, and
ranges the document states enforced exactly (and nothing the document does not state)."""

from __future__ import annotations

from tests.api.conftest import CODE, Api


async def test_a_number_is_not_a_boolean(api: Api) -> None:
    status, body = await api.patch(f"/api/projects/{CODE}/units/u001", json={"active": 0})
    assert status == 400 and body["error"]["where"] == "active", body
    status, body = await api.patch(f"/api/projects/{CODE}/units/u001", json={"active": False})
    assert status == 200 and body["data"]["active"] is False


async def test_an_integral_float_is_an_integer_as_json_schema_says(api: Api) -> None:
    status, body = await api.get("/api/outbox?limit=5")
    assert status == 200
    body_in = {"kind": "recompute", "project": CODE, "cron": "7 9 * * 1", "grace_seconds": 600.0}
    status, body = await api.post("/api/schedules", json=body_in)
    assert status == 201 and body["data"]["grace_seconds"] == 600, body
    status, body = await api.post("/api/schedules", json={**body_in, "grace_seconds": 600.5})
    assert status == 400 and body["error"]["where"] == "grace_seconds", body


async def test_405_lists_only_the_methods_the_document_gives_that_path(api: Api) -> None:
    for method, path, allow in (
        ("OPTIONS", "/api/projects/load", "POST"),
        ("GET", "/api/projects/validate", "POST"),
        ("PATCH", f"/api/projects/{CODE}/units/import", "POST"),
        ("OPTIONS", f"/api/projects/{CODE}/disbursements/import", "POST"),
        ("PUT", f"/api/projects/{CODE}/units/u001", "PATCH"),
    ):
        resp = await api.client.request(method, path, headers=api.tokens.as_admin)
        assert resp.status == 405, (method, path)
        assert resp.headers["Allow"] == allow, (method, path, resp.headers["Allow"])
        assert (await resp.json())["error"]["code"] == "http_405"


async def test_an_unknown_query_parameter_is_refused_not_ignored(api: Api) -> None:
    status, body = await api.get("/api/endpoints?disabeld=true")
    assert status == 400 and body["error"]["where"] == "query.disabeld", body
    status, body = await api.get(f"/api/schedules?projcet={CODE}", token="coordinator")
    assert status == 400, body


async def test_dates_outside_the_documented_years_are_refused_with_the_range(api: Api) -> None:
    bad = {"name": "活动", "opens_at": "1999-12-31T09:00:00+08:00", "closes_at": "2026-03-15T18:00:00+08:00"}
    status, body = await api.post(f"/api/projects/{CODE}/campaigns", json=bad)
    assert status == 400 and body["error"]["where"] == "opens_at" and "2000–2100" in body["error"]["message"]
    status, body = await api.post(
        f"/api/projects/{CODE}/disbursements",
        json={"unit": "u001", "amount": "1.00", "paid_on": "2023-02-30"},
    )
    assert status == 400 and body["error"]["where"] == "paid_on", body


async def test_the_document_publishes_the_constraints_it_enforces(api: Api) -> None:
    doc = await (await api.client.get("/api/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    cron = schemas["CampaignSchedule"]["properties"]["cron"]
    assert cron["maxLength"] == 100 and len(cron["pattern"]) > 1000  # the exact cron grammar
    assert "Asia/Shanghai" in schemas["ProjectSchedule"]["properties"]["timezone"]["anyOf"][0]["enum"]
    assert schemas["UnitPatch"]["properties"]["active"]["type"] == "boolean"  # not nullable
    assert "pattern" in schemas["DisbursementCreate"]["properties"]["paid_on"]
