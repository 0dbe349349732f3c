"""A submission id is one rendered form: sent again it must carry the same values (else 409),
and the versions one link can make are capped (``store.answers.MAX_VERSIONS``)."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from store.answers import MAX_VERSIONS, list_confirmations
from store.db import SessionMaker
from store.models import Disbursement, PaymentConfirmation, Response
from tests.bot.conftest import Launched, page_form

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}


async def _link_responses(sm: SessionMaker) -> int:
    async with sm() as session:
        stmt = select(func.count()).select_from(Response).where(Response.source == "link")
        return int(await session.scalar(stmt) or 0)


async def _post(client: TestClient, url: str, data: dict[str, Any]) -> tuple[int, str]:
    resp = await client.post(url, data=data, allow_redirects=False)
    return resp.status, await resp.text()


async def test_a_submission_id_sent_again_with_other_answers_gets_a_clear_409_and_changes_nothing(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u030"]
    url = f"/l/{token}/answers"
    fields = await page_form(app_client, token)
    assert (await _post(app_client, url, {**fields, **GOOD, "q_suggestion": "好"}))[0] == 303
    same = await _post(app_client, url, {**fields, **GOOD, "q_suggestion": " 好 "})  # same once cleaned
    assert same[0] == 303
    status, page = await _post(app_client, url, {**fields, **GOOD, "q_overall": "一般"})
    assert status == 409
    assert "已经提交过" in page and "重新打开您的专属链接" in page
    status, page = await _post(app_client, url, {**fields, **GOOD, "q_overall": "没有这个选项"})
    assert status == 409  # an invalid variant of a stored form is still "not the same form"
    assert await _link_responses(sessionmaker) == 1
    # A fresh page (a new submission id) changes the answers as before.
    fresh = await page_form(app_client, token)
    assert (await _post(app_client, url, {**fresh, **GOOD, "q_overall": "一般"}))[0] == 303
    assert await _link_responses(sessionmaker) == 2


async def test_a_payment_submission_id_sent_again_with_another_amount_gets_409(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u031"]
    async with sessionmaker() as session:
        stmt = select(Disbursement.id).where(Disbursement.unit_id == launched.unit_ids["u031"])
        d = (await session.execute(stmt)).scalars().first()
    url = f"/l/{token}/pay/{d}"
    fields = await page_form(app_client, token, f"pay/{d}")
    form = {**fields, "status": "confirmed", "received_on": "2023-02-22", "amount": "100.00"}
    assert (await _post(app_client, url, form))[0] == 303
    assert (await _post(app_client, url, {**form, "amount": "100"}))[0] == 303  # the same 10,000 fen
    status, page = await _post(app_client, url, {**form, "amount": "99.00"})
    assert status == 409 and "已经提交过" in page
    status, _ = await _post(app_client, url, {**fields, "status": "disputed", "dispute_kind": "not_received"})
    assert status == 409
    async with sessionmaker() as session:
        (record,) = await list_confirmations(session, launched.project_id, launched.campaign_id)
        count = await session.scalar(select(func.count()).select_from(PaymentConfirmation))
    assert count == 1 and record.confirmation.amount_fen == 10_000


async def test_versions_per_link_are_capped_with_a_message_and_nothing_more_is_stored(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u033"]
    url = f"/l/{token}/answers"
    fields = await page_form(app_client, token)
    levels = ["非常满意", "比较满意", "一般"]
    for i in range(MAX_VERSIONS):
        data = {**fields, **GOOD, "q_overall": levels[i % 3], "submission_id": secrets.token_hex(16)}
        assert (await _post(app_client, url, data))[0] == 303, i
    data = {**fields, **GOOD, "submission_id": secrets.token_hex(16)}
    status, page = await _post(app_client, url, data)
    assert status == 409 and f"已提交 {MAX_VERSIONS} 次" in page and "上限" in page
    async with sessionmaker() as session:
        stmt = select(Response.version, Response.is_current).where(
            Response.unit_id == launched.unit_ids["u033"]
        )
        rows = (await session.execute(stmt)).all()
    assert sorted(v for v, _ in rows) == list(range(1, MAX_VERSIONS + 1))
    assert [v for v, current in rows if current] == [MAX_VERSIONS]  # the last one stays current
