"""The coordinator's view: score, change, answer rate, who has not answered, payments, report."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from scheduler.recompute import recompute
from store.answers import LEDGER_STATE_ZH, count_payments, ledger_page, submit_confirmation
from store.db import SessionMaker, transaction
from store.facts import load_fact_inputs
from store.models import Disbursement, Link, Project
from store.units import update_disbursement
from tests.bot.conftest import Launched
from tests.conftest import Clock
from tests.console.conftest import A, Accounts, login


async def test_the_coordinator_sees_score_answer_rate_missing_units_and_unconfirmed_payments(
    app_client: TestClient, accounts: Accounts, launched: Launched, sessionmaker: SessionMaker, clock: Clock
) -> None:
    assert (await login(app_client, "coord")).status == 303
    clock.advance(minutes=1)
    await recompute(sessionmaker, A, now=clock(), trigger="test")
    resp = await app_client.get(f"/console/p/{A}/overview")
    html = await resp.text()
    assert resp.status == 200
    assert "100.00" in html and "优" in html
    assert "0/121" in html  # answered / invited in the running campaign
    assert "未答复的单位（121）" in html and "u001" in html
    assert "未确认（" in html
    assert "/r/urumqi-ip-2023." in html  # the full report, by its signed link
    assert "/l/" not in html  # never a unit's link


async def _first_payments(
    sessionmaker: SessionMaker, launched: Launched, keys: tuple[str, ...]
) -> dict[str, Any]:
    """The first (by paid date) disbursement of each unit in ``keys``."""
    async with sessionmaker() as session:
        out = {}
        for key in keys:
            stmt = (
                select(Disbursement)
                .where(Disbursement.unit_id == launched.unit_ids[key])
                .order_by(Disbursement.paid_on, Disbursement.id)
            )
            out[key] = (await session.execute(stmt)).scalars().first()
    return out


async def test_the_payment_states_add_up_on_the_overview_the_ledger_and_the_facts_and_follow_a_correction(
    app_client: TestClient, accounts: Accounts, launched: Launched, sessionmaker: SessionMaker, clock: Clock
) -> None:
    """Hand-computed: of the example's N payments, u001's first is confirmed as disbursed, u002's
    confirmed 1.00 元 less, u003's disputed, u004's confirmed then disputed (the current answer
    counts), every other payment pending. Then the ledger corrects u002's amount to what u002
    confirmed (no longer a discrepancy) and u001's to 5.00 元 less (now one)."""
    async with sessionmaker() as session:
        n = await session.scalar(
            select(func.count())
            .select_from(Disbursement)
            .where(Disbursement.project_id == launched.project_id)
        )
    assert n is not None and n > 4
    pays = await _first_payments(sessionmaker, launched, ("u001", "u002", "u003", "u004"))
    async with transaction(sessionmaker) as session:

        async def answer(key: str, sub: str, **kw: Any) -> None:
            link = await session.get(Link, launched.links[key].id)
            assert link is not None
            await submit_confirmation(session, link, pays[key].id, submission_key=sub, now=clock(), **kw)

        ok = {"status": "confirmed", "received_on": date(2023, 3, 1)}
        await answer("u001", "s1", amount_fen=pays["u001"].amount_fen, **ok)
        await answer("u002", "s2", amount_fen=pays["u002"].amount_fen - 100, **ok)
        await answer("u003", "s3", status="disputed", dispute_kind="not_received", reason="没收到")
        await answer("u004", "s4a", amount_fen=pays["u004"].amount_fen, **ok)
        await answer("u004", "s4b", status="disputed", dispute_kind="amount_differs", reason="少了")

    async def states() -> dict[str, int]:
        async with sessionmaker() as session:
            counted = {s: await count_payments(session, launched.project_id, s) for s in STATES}
            for s in STATES:  # each count is what its ledger view lists, page after page
                total, rows = await ledger_page(session, launched.project_id, state=s, limit=1000)
                assert total == counted[s] == len(rows), s
                assert {r.state for r in rows} <= ({s} if s != "all" else set(LEDGER_STATE_ZH)), s
            project = await session.get(Project, launched.project_id)
            assert project is not None
            facts = await load_fact_inputs(session, project)
        assert facts.disbursement_count == counted["all"]
        assert facts.unconfirmed_count == counted["pending"]
        assert facts.disputed_count == counted["disputed"]
        assert facts.discrepancy_count == counted["amount_differs"]
        assert facts.confirmed_count == counted["confirmed"] + counted["amount_differs"]
        return counted

    assert await states() == {"all": n, "pending": n - 4, "confirmed": 1, "amount_differs": 1, "disputed": 2}
    async with sessionmaker() as session:
        pid = launched.project_id
        newest = await ledger_page(session, pid, state="disputed", newest_first=True)
        assert [r.unit_key for r in newest[1]] == ["u004", "u003"] and newest[0] == 2
        assert [
            r.unit_key for r in (await ledger_page(session, pid, state="disputed", limit=1, offset=1))[1]
        ] == [max(("u003", "u004"), key=lambda k: (pays[k].paid_on, pays[k].key))]
        assert await ledger_page(session, pid, state="disputed", offset=5) == (2, [])  # past the end
        assert (await ledger_page(session, pid, state="pending", offset=n))[0] == n - 4
    assert (await login(app_client, "coord")).status == 303
    html = await (await app_client.get(f"/console/p/{A}/overview")).text()
    assert "有争议（2）" in html and "确认金额不一致（1）" in html and f"未确认（{n - 4}）" in html
    disputed = html.split('id="disputed"')[1].split("</ul>")[0]
    assert "u003" in disputed and "u004" in disputed
    differ = html.split('id="differ"')[1].split("</ul>")[0]
    assert "u002" in differ and "u001" not in differ and "（差额 -1.00 元）" in differ
    unconfirmed = html.split('id="unconfirmed"')[1].split("</ul>")[0]
    assert unconfirmed.count("<li>") == min(n - 4, 30) and "u001" not in unconfirmed

    async with transaction(sessionmaker) as session:
        await update_disbursement(session, launched.project_id, pays["u002"].id,
                                  {"amount_fen": pays["u002"].amount_fen - 100}, now=clock())  # fmt: skip
        await update_disbursement(session, launched.project_id, pays["u001"].id,
                                  {"amount_fen": pays["u001"].amount_fen - 500}, now=clock())  # fmt: skip
    assert await states() == {"all": n, "pending": n - 4, "confirmed": 1, "amount_differs": 1, "disputed": 2}
    html = await (await app_client.get(f"/console/p/{A}/overview")).text()
    differ = html.split('id="differ"')[1].split("</ul>")[0]
    assert "u001" in differ and "u002" not in differ and "（差额 5.00 元）" in differ
    async with sessionmaker() as session:
        _, rows = await ledger_page(session, launched.project_id, state="confirmed")
    assert [r.unit_key for r in rows] == ["u002"] and rows[0].difference_fen == 0


STATES = ("all", "pending", "confirmed", "amount_differs", "disputed")


async def test_an_imported_amount_correction_moves_the_payment_state_on_every_view(
    launched: Launched, sessionmaker: SessionMaker, clock: Clock
) -> None:
    """u001 confirms its first payment 1.00 元 short (another amount); a ledger import with that
    payment's amount corrected to what u001 received makes it agree — ledger and facts alike."""
    from config.tables import read_table
    from store.units import import_disbursements

    pay = (await _first_payments(sessionmaker, launched, ("u001",)))["u001"]
    async with transaction(sessionmaker) as session:
        link = await session.get(Link, launched.links["u001"].id)
        assert link is not None
        await submit_confirmation(session, link, pay.id, status="confirmed", received_on=date(2023, 3, 1),
                                  amount_fen=pay.amount_fen - 100, submission_key="s1", now=clock())  # fmt: skip
    async with sessionmaker() as session:
        assert await count_payments(session, launched.project_id, "amount_differs") == 1
    fixed = f"{(pay.amount_fen - 100) // 100}.{(pay.amount_fen - 100) % 100:02d}"
    csv = f"key,unit,amount,date,batch,voucher\n{pay.key},u001,{fixed},{pay.paid_on},{pay.batch},{pay.voucher}\n"
    async with transaction(sessionmaker) as session:
        summary = await import_disbursements(
            session, launched.project_id, read_table(csv.encode()), now=clock()
        )
        assert summary.updated == 1
    async with sessionmaker() as session:
        assert await count_payments(session, launched.project_id, "amount_differs") == 0
        total, rows = await ledger_page(session, launched.project_id, state="confirmed")
        assert total == 1 and rows[0].unit_key == "u001" and rows[0].difference_fen == 0
        project = await session.get(Project, launched.project_id)
        assert project is not None
        assert (await load_fact_inputs(session, project)).discrepancy_count == 0
