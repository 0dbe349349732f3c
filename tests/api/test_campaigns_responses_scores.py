"""Campaign lifecycle, responses/confirmations (lists, exports), discrepancies, scores, overrides."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.app import create_app
from config.settings import Settings
from scheduler.recompute import recompute
from store.answers import submit_confirmation
from store.db import SessionMaker, transaction
from store.models import Campaign, Disbursement, Link, ScoreOverride
from tests.api.conftest import CODE, Api, Tokens
from tests.bot.conftest import Launched
from tests.conftest import Clock


async def test_a_campaign_is_created_launched_inspected_and_closed(api: Api) -> None:
    status, body = await api.post(
        f"/api/projects/{CODE}/campaigns",
        json={
            "name": "满意度调查",
            "opens_at": "2026-03-01T09:00:00+08:00",
            "closes_at": "2026-03-20T18:00:00+08:00",
            "units": ["u001", "u002", "u003"],
            "policy": {"max_reminders": 2},
        },
    )
    assert status == 201, body
    cid = body["data"]["id"]
    assert body["data"]["status"] == "draft" and body["data"]["units"] == ["u001", "u002", "u003"]
    assert body["data"]["opens_at"] == "2026-03-01T01:00:00+00:00"
    status, body = await api.post(f"/api/campaigns/{cid}/launch")
    assert (
        status == 200 and body["data"]["links_created"] == 3 and body["data"]["campaign"]["status"] == "open"
    )
    status, body = await api.get(f"/api/campaigns/{cid}", token="coordinator")
    assert status == 200 and [x["unit"] for x in body["data"]["links"]] == ["u001", "u002", "u003"]
    assert body["data"]["progress"]["links"] == 3 and body["data"]["progress"]["answered"] == 0
    assert "token" not in str(body["data"]["links"]).lower()
    status, body = await api.post(f"/api/campaigns/{cid}/units/u002/revoke")
    assert status == 200 and body["data"]["revoked"] is True
    status, body = await api.post(f"/api/campaigns/{cid}/units/u002/reissue")
    assert status == 201 and body["data"]["revoked"] is False
    status, body = await api.get(f"/api/campaigns/{cid}?include_revoked=1")
    assert [x["revoked"] for x in body["data"]["links"] if x["unit"] == "u002"] == [True, False]
    status, body = await api.post(f"/api/campaigns/{cid}/close")
    assert status == 200 and body["data"]["status"] == "closed"
    status, body = await api.post(f"/api/campaigns/{cid}/launch")
    assert status == 409
    status, body = await api.get(f"/api/projects/{CODE}/campaigns")
    assert [c["id"] for c in body["data"]] == [cid]


async def test_bad_campaign_input_is_refused_and_nothing_is_stored(
    api: Api, sessionmaker: SessionMaker
) -> None:
    base = {"name": "x", "opens_at": "2026-03-01T09:00:00+08:00", "closes_at": "2026-03-20T18:00:00+08:00"}
    cases = [
        ({**base, "units": ["u001", "ghost"]}, "units"),
        ({**base, "closes_at": "2026-02-01T00:00:00+08:00"}, "closes_at"),
        ({**base, "opens_at": "2026-03-01T09:00:00"}, "opens_at"),  # no offset
        ({**base, "policy": {"max_reminders": 99}}, "policy.max_reminders"),
        ({**base, "surprise": 1}, "surprise"),
    ]
    for payload, where in cases:
        status, body = await api.post(f"/api/projects/{CODE}/campaigns", json=payload)
        assert status == 400, (payload, body)
        assert body["error"]["where"] == where, body
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 0
    assert (await api.post("/api/campaigns/999/launch"))[0] == 404
    assert (await api.post("/api/campaigns/abc/launch"))[0] == 404


async def _confirm_two(sessionmaker: SessionMaker, launched: Launched, clock: Clock) -> dict[str, int]:
    """u001 confirms its first payment with 1.00 元 less; u002 disputes its first payment."""
    async with transaction(sessionmaker) as session:
        out = {}
        for key in ("u001", "u002"):
            link = await session.get(Link, launched.links[key].id)
            d = (
                (
                    await session.execute(
                        select(Disbursement)
                        .where(Disbursement.unit_id == launched.unit_ids[key])
                        .order_by(Disbursement.paid_on)
                    )
                )
                .scalars()
                .first()
            )
            assert link is not None and d is not None and d.id is not None
            out[key] = d.amount_fen
            if key == "u001":
                await submit_confirmation(
                    session, link, d.id, status="confirmed", received_on=date(2023, 3, 1),
                    amount_fen=d.amount_fen - 100, submission_key=f"k-{key}", now=clock(),
                )  # fmt: skip
            else:
                await submit_confirmation(
                    session, link, d.id, status="disputed", dispute_kind="not_received",
                    reason="=HYPERLINK(\"x\")", submission_key=f"k-{key}", now=clock(),
                )  # fmt: skip
    return out


async def test_confirmations_discrepancies_and_their_exports_agree_with_the_api(
    api: Api, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    disbursed = await _confirm_two(sessionmaker, launched, clock)
    status, body = await api.get(f"/api/projects/{CODE}/confirmations", token="coordinator")
    assert status == 200
    rows = {r["unit"]: r for r in body["data"]}
    assert rows["u001"]["difference"] == "-1.00" and rows["u001"]["kind"] == "amount_differs"
    assert rows["u001"]["disbursed"] == f"{disbursed['u001'] / 100:.2f}"
    assert rows["u002"]["status"] == "disputed" and rows["u002"]["amount"] is None
    status, body = await api.get(f"/api/projects/{CODE}/discrepancies")
    assert sorted(r["unit"] for r in body["data"]) == ["u001", "u002"]

    resp = await api.client.get(
        f"/api/projects/{CODE}/confirmations/export", headers=api.tokens.as_coordinator
    )
    raw = await resp.read()
    assert resp.status == 200 and raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, data = table[0], table[1:]
    by_unit = {r[0]: dict(zip(header, r, strict=True)) for r in data}
    assert by_unit["u001"]["差额（元）difference"] == rows["u001"]["difference"]
    assert by_unit["u001"]["拨付金额（元）disbursed"] == rows["u001"]["disbursed"]
    assert by_unit["u001"]["确认金额（元）amount"] == rows["u001"]["amount"]
    assert by_unit["u002"]["原因 reason"].startswith("'=")  # no formula injection

    resp = await api.client.get(
        f"/api/projects/{CODE}/confirmations/export?format=xlsx", headers=api.tokens.as_admin
    )
    book = load_workbook(io.BytesIO(await resp.read()), read_only=True)
    sheet_rows = list(book.worksheets[0].iter_rows(values_only=True))
    xheader = list(sheet_rows[0])
    xrows = {r[0]: dict(zip(xheader, r, strict=True)) for r in sheet_rows[1:]}
    assert xrows["u001"]["确认金额（元）amount"] == rows["u001"]["amount"]
    assert xrows["u001"]["差额（元）difference"] == "-1.00"


async def test_responses_are_current_by_default_and_exports_hold_the_same_answers(api: Api) -> None:
    status, body = await api.get(f"/api/projects/{CODE}/responses", token="coordinator")
    assert status == 200 and len(body["data"]) == 16 and all(r["is_current"] for r in body["data"])
    status, hist = await api.get(f"/api/projects/{CODE}/responses?history=1")
    assert len(hist["data"]) >= 16
    resp = await api.client.get(f"/api/projects/{CODE}/responses/export", headers=api.tokens.as_admin)
    text = (await resp.read()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    api_sat = sorted(r["satisfaction"] for r in body["data"])
    assert sorted(r["满意度 satisfaction"] for r in rows) == api_sat
    resp = await api.client.get(
        f"/api/projects/{CODE}/responses/export?format=xlsx", headers=api.tokens.as_admin
    )
    import pandas as pd

    frame = pd.read_excel(io.BytesIO(await resp.read()), dtype=str)
    assert sorted(frame["满意度 satisfaction"]) == api_sat
    assert (await api.get(f"/api/projects/{CODE}/responses?campaign=12345"))[0] == 404
    assert (await api.get(f"/api/projects/{CODE}/responses/export?format=pdf"))[0] == 400


async def test_recompute_without_the_hook_is_a_clear_503(api: Api) -> None:
    status, body = await api.post(f"/api/projects/{CODE}/scores/recompute")
    assert status == 503 and body["error"]["code"] == "recompute_unavailable"
    status, body = await api.get(f"/api/projects/{CODE}/scores")
    assert status == 404 and body["error"]["code"] == "no_snapshot"


async def test_recompute_saves_a_snapshot_and_scores_and_history_show_it(
    aiohttp_client: Any,
    settings: Settings,
    sessionmaker: SessionMaker,
    clock: Clock,
    example_project: Any,
    tokens: Tokens,
) -> None:
    async def hook(code: str, *, now: Any, trigger: str = "api") -> Any:
        return await recompute(sessionmaker, code, now=now, trigger=trigger)

    app = create_app(
        settings,
        sessionmaker=sessionmaker,
        clock=clock,
        channels={},
        run_now={"recompute": hook},
        start_workers=False,
    )
    api = Api(await aiohttp_client(app), tokens)
    status, body = await api.post(f"/api/projects/{CODE}/scores/recompute")
    assert status == 200 and body["data"]["changed"] is True
    assert body["data"]["snapshot"]["total"] == "100.00" and body["data"]["snapshot"]["grade"] == "优"
    status, body = await api.get(f"/api/projects/{CODE}/scores", token="coordinator")
    assert status == 200 and body["data"]["total"] == "100.00" and body["data"]["table"]
    status, body = await api.post(f"/api/projects/{CODE}/scores/recompute")
    assert body["data"]["changed"] is False
    status, body = await api.get(f"/api/projects/{CODE}/scores/history")
    assert [(s["total"], s["grade"]) for s in body["data"]] == [("100.00", "优")]


async def _some_indicator(api: Api, sessionmaker: SessionMaker) -> str:
    from store.projects import get_definition, get_project

    async with transaction(sessionmaker) as session:
        defn = await get_definition(session, await get_project(session, CODE))
    return next(i.key for i in defn.indicators if i.weight >= 2)


async def test_an_override_needs_a_reason_and_a_score_within_the_weight_and_can_be_withdrawn(
    api: Api, sessionmaker: SessionMaker
) -> None:
    key = await _some_indicator(api, sessionmaker)
    path = f"/api/projects/{CODE}/overrides/{key}"
    async with transaction(sessionmaker) as session:
        before = await session.scalar(select(func.count()).select_from(ScoreOverride))
    for payload in ({"score": "1.5"}, {"score": "1.5", "reason": ""}, {"score": "1001", "reason": "x"},
                    {"score": "-1", "reason": "x"}, {"score": "1.555", "reason": "x"}, {"score": 1.5, "reason": "x"}):  # fmt: skip
        status, body = await api.post(path, json=payload)
        assert status == 400, (payload, body)
    # Well-formed but above this indicator's 分值 (the project's data): a conflict, not bad input.
    status, body = await api.post(path, json={"score": "999", "reason": "x"})
    assert status == 409 and body["error"]["where"] == "score", body
    assert (await api.post(f"/api/projects/{CODE}/overrides/nope", json={"score": "1", "reason": "x"}))[
        0
    ] == 404
    async with transaction(sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(ScoreOverride)) == before
    status, body = await api.post(path, json={"score": "1.50", "reason": "现场核查：运营中心未全部建成"})
    assert status == 201 and body["data"]["score"] == "1.50" and body["data"]["by"] == "api:管理员"
    status, body = await api.get(f"/api/projects/{CODE}/overrides", token="coordinator")
    assert key in [o["indicator"] for o in body["data"]]
    status, body = await api.delete(path, json={"reason": "复核后撤销"})
    assert status == 200 and body["data"]["active"] is False
    assert (await api.delete(path, json={"reason": "again"}))[0] == 404
    assert (await api.delete(path, json={}))[0] == 400


async def test_outbox_and_endpoints_are_listed_for_admins(api: Api, launched: Launched) -> None:
    status, body = await api.get("/api/outbox?status=pending&limit=5")
    assert status == 200 and body["data"]["stats"]["pending"] >= 121 and len(body["data"]["messages"]) == 5
    status, body = await api.get("/api/endpoints")
    assert status == 200 and len(body["data"]) >= 1
    assert (await api.get("/api/outbox", token="coordinator"))[0] == 403
    assert (await api.get("/api/outbox?status=bogus"))[0] == 400
