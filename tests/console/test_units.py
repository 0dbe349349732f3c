"""Console units and payments: a CSV import is previewed as a dry run listing each bad row (file
from Excel on Chinese Windows: GBK), then confirmed; a unit is added with field errors shown;
the ledger shows each payment's state and the difference in 元; 10,000-unit search pages."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from store.db import SessionMaker
from store.models import AuditEntry, Unit
from tests.bot.conftest import Launched
from tests.conftest import Clock
from tests.console.conftest import A, Accounts, form_csrf, login


def _upload(token: str, data: bytes, name: str, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    for k, v in fields.items():
        form.add_field(k, v)
    form.add_field("file", data, filename=name, content_type="text/csv")
    return form


async def _count(sm: SessionMaker) -> int:
    async with sm() as session:
        return int((await session.execute(select(func.count()).select_from(Unit))).scalar_one())


async def test_an_import_with_a_bad_row_lists_it_and_stores_nothing_then_a_good_file_is_previewed_and_confirmed(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker
) -> None:
    assert (await login(app_client, "admin")).status == 303
    token = await form_csrf(app_client, f"/console/p/{A}/import")
    before = await _count(sessionmaker)
    bad = (
        "key,name,uscc,channel_kind\nn001,新单位甲,,console\nn002,,,console\nn003,新单位丙,,pigeon\n".encode(
            "gbk"
        )
    )
    resp = await app_client.post(f"/console/p/{A}/import", data=_upload(token, bad, "单位.csv", what="units"))
    html = await resp.text()
    assert resp.status == 400 and 'id="problems"' in html
    assert '<td class="num">3</td>' in html and '<td class="num">4</td>' in html
    assert '<td class="num">2</td>' not in html  # the good row is not listed
    assert await _count(sessionmaker) == before

    good = "key,name,uscc,channel_kind\nn001,新单位甲,,console\nn002,新单位乙,,console\n".encode("gbk")
    resp = await app_client.post(
        f"/console/p/{A}/import", data=_upload(token, good, "单位.csv", what="units")
    )
    html = await resp.text()
    assert resp.status == 200 and 'id="preview"' in html and "新增 2" in html and "GB18030" in html
    assert await _count(sessionmaker) == before  # a preview stores nothing
    import re

    payload = re.search(r'name="payload" value="([^"]+)"', html)
    assert payload
    form = aiohttp.FormData()
    for k, v in (
        ("csrf", token),
        ("what", "units"),
        ("payload", payload.group(1)),
        ("filename", "单位.csv"),
        ("confirm", "1"),
    ):
        form.add_field(k, v)
    resp = await app_client.post(f"/console/p/{A}/import", data=form, allow_redirects=False)
    assert resp.status == 303
    assert await _count(sessionmaker) == before + 2
    async with sessionmaker() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "import.units"))
        ).scalar_one()
    assert entry.detail["created"] == 2 and entry.actor == "console:admin"


async def test_a_unit_is_added_with_errors_next_to_the_fields_and_found_by_search(
    app_client: TestClient, accounts: Accounts
) -> None:
    assert (await login(app_client, "admin")).status == 303
    token = await form_csrf(app_client, f"/console/p/{A}/units/new")
    resp = await app_client.post(f"/console/p/{A}/units/new",
                                 data={"csrf": token, "key": "x1", "name": "", "uscc": "123", "channel_kind": "console"})  # fmt: skip
    html = await resp.text()
    assert resp.status == 400 and 'id="u-name-err"' in html and 'id="u-uscc-err"' in html
    resp = await app_client.post(f"/console/p/{A}/units/new", allow_redirects=False,
                                 data={"csrf": token, "key": "x1", "name": "新增测试单位", "channel_kind": "email",
                                       "channel_address": "x1@example.com", "active": "1"})  # fmt: skip
    assert resp.status == 303
    html = await (await app_client.get(f"/console/p/{A}/units?q=新增测试")).text()
    assert 'data-unit="x1"' in html and "email" in html


async def test_the_ledger_shows_states_and_differences_in_yuan(
    app_client: TestClient, accounts: Accounts, launched: Launched, sessionmaker: SessionMaker, clock: Clock
) -> None:
    from tests.api.test_campaigns_responses_scores import _confirm_two

    await _confirm_two(sessionmaker, launched, clock)  # u001: 1.00 元 less; u002: disputed
    assert (await login(app_client, "admin")).status == 303
    html = await (await app_client.get(f"/console/p/{A}/payments?state=amount_differs")).text()
    assert html.count('data-state="amount_differs"') == 1 and "u001" in html and "-1.00" in html
    html = await (await app_client.get(f"/console/p/{A}/payments?state=disputed")).text()
    assert html.count('data-state="disputed"') == 1 and "u002" in html and 'data-state="pending"' not in html
    html = await (await app_client.get(f"/console/p/{A}/payments?state=pending&q=u001")).text()
    assert 'data-state="amount_differs"' not in html
