"""The coordinator's view: score, change, answer rate, who has not answered, payments, report."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from scheduler.recompute import recompute
from store.db import SessionMaker
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
