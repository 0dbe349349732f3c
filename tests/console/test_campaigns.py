"""Console campaigns: closing needs its confirmation ticked (every link stops working at once),
and is audited."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from store.db import SessionMaker
from store.models import AuditEntry, Campaign
from tests.bot.conftest import Launched
from tests.console.conftest import A, Accounts, csrf_of, login


async def _status(sm: SessionMaker, campaign_id: int) -> str:
    async with sm() as session:
        return (await session.execute(select(Campaign.status).where(Campaign.id == campaign_id))).scalar_one()


async def test_closing_a_campaign_needs_the_confirmation_ticked(
    app_client: TestClient, accounts: Accounts, launched: Launched, sessionmaker: SessionMaker
) -> None:
    assert (await login(app_client, "admin")).status == 303
    page = f"/console/p/{A}/campaigns/{launched.campaign_id}"
    html = await (await app_client.get(page)).text()
    assert '<details id="close">' in html  # folded away from the export buttons
    resp = await app_client.post(f"{page}/close", data={"csrf": csrf_of(html)})
    html = await resp.text()
    assert resp.status == 200 and '<details id="close" open>' in html and 'id="close-err"' in html
    assert await _status(sessionmaker, launched.campaign_id) == "open"
    resp = await app_client.post(f"{page}/close", data={"csrf": csrf_of(html), "confirm_close": "1"},
                                 allow_redirects=False)  # fmt: skip
    assert resp.status == 303 and "done=closed" in resp.headers["Location"]
    assert await _status(sessionmaker, launched.campaign_id) == "closed"
    async with sessionmaker() as session:
        actions = [e.action for e in (await session.execute(select(AuditEntry))).scalars()]
    assert actions.count("campaign.close") == 1
