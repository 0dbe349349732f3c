"""The unit page's states found on a walk through it: every payment error at once, the refused
form in view, and what a unit submitted still readable after the campaign closes."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from store.campaigns import close_campaign, revoke_link
from store.db import SessionMaker, transaction
from store.models import Disbursement
from tests.bot.conftest import Launched, page_form
from tests.conftest import Clock

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}


async def _disbursement(sm: SessionMaker, launched: Launched, unit: str) -> int:
    async with sm() as session:
        stmt = select(Disbursement.id).where(Disbursement.unit_id == launched.unit_ids[unit])
        found = (
            (await session.execute(stmt.order_by(Disbursement.paid_on, Disbursement.id))).scalars().first()
        )
    assert found is not None
    return found


def _field_errors(html: str, d: int) -> set[str]:
    return set(re.findall(rf'<p class="err" id="e-p{d}-(\w+)">', html))


async def test_the_payment_form_reports_every_error_at_once(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u040"]
    d = await _disbursement(sessionmaker, launched, "u040")
    fields = await page_form(app_client, token, f"pay/{d}")
    cases = [
        # no choice made, and every other field wrong too
        (
            {"received_on": "2023-W01", "amount": " 12 3 ", "voucher": "v" * 101, "reason": "长" * 501},
            {"status", "received_on", "amount", "voucher", "reason"},
        ),
        # "received": a syntax error, a missing date and an over-long voucher together
        (
            {"status": "confirmed", "received_on": "", "amount": "1.234", "voucher": "v" * 101},
            {"received_on", "amount", "voucher"},
        ),
        # "disputed": no kind, and a reason over the limit
        ({"status": "disputed", "reason": "长" * 501}, {"dispute_kind", "reason"}),
    ]
    for values, expected in cases:
        resp = await app_client.post(f"/l/{token}/pay/{d}", data={**fields, **values})
        html = await resp.text()
        assert resp.status == 422
        assert _field_errors(html, d) == expected, values
        assert f"有 {len(expected)} 处需要修改" in html


async def test_each_form_posts_to_a_url_that_lands_on_its_own_section(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u041"]
    d = await _disbursement(sessionmaker, launched, "u041")
    html = await (await app_client.get(f"/l/{token}")).text()
    assert f'action="/l/{token}/answers#q"' in html and '<section class="card" id="q">' in html
    assert f'action="/l/{token}/pay/{d}#pay-{d}"' in html and f'id="pay-{d}"' in html


async def test_after_closing_a_unit_that_answered_reads_what_it_submitted(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    answered, confirmed_only, silent = (
        launched.tokens["u042"],
        launched.tokens["u043"],
        launched.tokens["u044"],
    )
    answer_form = await page_form(app_client, answered)
    answers = {**GOOD, "q_suggestion": "<b>希望</b>简化流程"}
    resp = await app_client.post(
        f"/l/{answered}/answers", data={**answer_form, **answers}, allow_redirects=False
    )
    assert resp.status == 303
    d = await _disbursement(sessionmaker, launched, "u043")
    fields = await page_form(app_client, confirmed_only, f"pay/{d}")
    pay = {"status": "confirmed", "received_on": "2023-02-22", "amount": "1,000.00", "voucher": "收-9"}
    resp = await app_client.post(
        f"/l/{confirmed_only}/pay/{d}", data={**fields, **pay}, allow_redirects=False
    )
    assert resp.status == 303
    async with transaction(sessionmaker) as session:
        await close_campaign(session, launched.campaign_id, now=clock())

    resp = await app_client.get(f"/l/{answered}")
    html = await resp.text()
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "已截止" in html and "仅供查看" in html
    assert "&lt;b&gt;希望&lt;/b&gt;简化流程" in html and "非常满意" in html
    assert "<form" not in html and "csrf" not in html  # read-only: nothing to submit
    html = await (await app_client.get(f"/l/{confirmed_only}")).text()
    assert "1,000.00 元" in html and "收-9" in html and "已确认收到" in html
    assert "贵单位未在截止前提交问卷" in html and "<form" not in html

    # A unit that submitted nothing gets the one page for unusable links, as before.
    resp = await app_client.get(f"/l/{silent}")
    assert resp.status == 404 and "链接无效或已过期" in await resp.text()
    # Posting after the close stores nothing and gets that page too.
    again = {**answer_form, **GOOD, "submission_id": "0" * 32}
    resp = await app_client.post(f"/l/{answered}/answers", data=again, allow_redirects=False)
    assert resp.status == 404


async def test_a_revoked_link_shows_nothing_even_if_its_unit_answered(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    token = launched.tokens["u045"]
    fields = await page_form(app_client, token)
    resp = await app_client.post(f"/l/{token}/answers", data={**fields, **GOOD}, allow_redirects=False)
    assert resp.status == 303
    clock.advance(days=30)  # past closes_at: over without an explicit close
    assert (await app_client.get(f"/l/{token}")).status == 200
    async with transaction(sessionmaker) as session:
        await revoke_link(session, launched.links["u045"].id, now=clock())
    assert (await app_client.get(f"/l/{token}")).status == 404
