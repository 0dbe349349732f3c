"""The unit page's hand-written path (``store.linkpage`` + ``bot.pages.LinkPages``): the
questionnaire cache is keyed by version, the portable fallback behaves like the fast runners,
and a SQLite unit of work may not suspend."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.pages import LINK_PAGES
from config.loader import load_definition
from store.campaigns import hash_token
from store.db import SessionMaker, transaction
from store.linkpage import LinkPageStore, PageData, _drive
from store.models import Link, PaymentConfirmation, Project, Response
from store.projects import load_project
from tests.bot.conftest import Launched, launch_example_campaign, page_form
from tests.conftest import EXAMPLE_PROJECT, Clock

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}
OLD_TEXT = "您对项目申报指南的清晰程度是否满意？"
NEW_TEXT = "第二版：申报指南是否清楚？"


async def test_a_changed_questionnaire_renders_in_new_campaigns_and_old_ones_keep_theirs(
    app_client: TestClient,
    sessionmaker: SessionMaker,
    launched: Launched,
    example_project: Project,
    clock: Clock,
) -> None:
    old_url = launched.url("u001")
    assert OLD_TEXT in await (await app_client.get(old_url)).text()  # version 1, now cached
    defn = load_definition(EXAMPLE_PROJECT)
    assert defn.questionnaire is not None
    first, *rest = defn.questionnaire.questions
    changed = defn.questionnaire.model_copy(
        update={"questions": [first.model_copy(update={"text": NEW_TEXT}), *rest]}
    )
    async with transaction(sessionmaker) as session:
        await load_project(
            session, defn.model_copy(update={"questionnaire": changed}), now=clock(), by="test"
        )
    second = await launch_example_campaign(sessionmaker, example_project, clock(), unit_keys=["u001"])

    new_page = await (await app_client.get(second.url("u001"))).text()
    assert NEW_TEXT in new_page and OLD_TEXT not in new_page
    old_page = await (await app_client.get(old_url)).text()
    assert OLD_TEXT in old_page and NEW_TEXT not in old_page
    # Answers to the new campaign are validated against the new version.
    fields = await page_form(app_client, second.tokens["u001"])
    resp = await app_client.post(
        second.url("u001") + "/answers", data={**fields, **GOOD}, allow_redirects=False
    )
    assert resp.status == 303
    thanks = await (await app_client.get(resp.headers["Location"])).text()
    assert NEW_TEXT in thanks
    compiled = app_client.server.app[LINK_PAGES]._compiled
    assert {version for _, version in compiled} == {1, 2}


@pytest.fixture(params=[False, True], ids=["fast", "portable"])
def runner(request: pytest.FixtureRequest, app_client: TestClient, sessionmaker: SessionMaker) -> str:
    """The app's unit-page store, or the exec_driver_sql fallback on the same engine."""
    if request.param:
        engine = sessionmaker.kw["bind"]
        app_client.server.app[LINK_PAGES]._store = LinkPageStore(engine, engine, portable=True)
    return "portable" if request.param else "fast"


async def test_answers_versions_idempotency_and_timestamps_are_the_same_with_either_runner(
    runner: str, app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    token = launched.tokens["u030"]
    fields = await page_form(app_client, token)
    url = f"/l/{token}/answers"
    first = await app_client.post(url, data={**fields, **GOOD}, allow_redirects=False)
    again = await app_client.post(url, data={**fields, **GOOD}, allow_redirects=False)  # same form
    refused = await app_client.post(
        url, data={**fields, **GOOD, "q_overall": "特别", "submission_id": secrets.token_hex(16)}
    )
    changed = await app_client.post(
        url,
        data={**fields, **GOOD, "q_overall": "一般", "submission_id": secrets.token_hex(16)},
        allow_redirects=False,
    )
    assert [first.status, again.status, refused.status, changed.status] == [303, 303, 422, 303]
    assert 'id="e-q-overall">请从给出的选项中选择' in await refused.text()
    page = await (await app_client.get(f"/l/{token}")).text()
    assert 'value="一般" checked' in page and "提交修改" in page
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Response.version, Response.is_current, Response.satisfaction, Response.submitted_at)
                .where(Response.link_id == launched.links["u030"].id)
                .order_by(Response.version)
            )
        ).all()
        link = await session.get(Link, launched.links["u030"].id)
    assert [tuple(r) for r in rows] == [(1, False, "非常满意", clock()), (2, True, "一般", clock())]
    assert link is not None and link.opened_at == clock() and link.answered_at == clock()


async def test_payments_are_confirmed_the_same_with_either_runner(
    runner: str, app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    token = launched.tokens["u002"]
    page = await (await app_client.get(f"/l/{token}")).text()
    pay_id = int(page.split(f"/l/{token}/pay/", 1)[1].split("#", 1)[0])
    fields = await page_form(app_client, token, f"pay/{pay_id}")
    url = f"/l/{token}/pay/{pay_id}"
    bad = await app_client.post(url, data={**fields, "status": "confirmed", "amount": "1"})
    assert bad.status == 422 and "请填写到账日期" in await bad.text()
    ok = await app_client.post(
        url,
        data={**fields, "status": "confirmed", "received_on": "2023-02-21", "amount": "1000.5"},
        allow_redirects=False,
    )
    assert ok.status == 303
    thanks = await (await app_client.get(ok.headers["Location"])).text()
    assert "已提交，谢谢" in thanks and "1,000.50 元" in thanks and "与拨付金额不一致" in thanks
    async with sessionmaker() as session:
        (row,) = (await session.execute(select(PaymentConfirmation))).scalars().all()
        link = await session.get(Link, launched.links["u002"].id)
    assert (row.amount_fen, row.version, row.is_current, row.submitted_at) == (100_050, 1, True, clock())
    assert link is not None and link.confirmed_at == clock()  # u002 has one disbursement


async def test_concurrent_submissions_through_one_link_stay_gap_free_with_either_runner(
    runner: str, app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u031"]
    fields = await page_form(app_client, token)

    async def submit() -> int:
        data = {**fields, **GOOD, "submission_id": secrets.token_hex(16)}
        resp = await app_client.post(f"/l/{token}/answers", data=data, allow_redirects=False)
        return resp.status

    assert await asyncio.gather(*(submit() for _ in range(20))) == [303] * 20
    async with sessionmaker() as session:
        versions = (
            await session.execute(
                select(Response.version).where(Response.link_id == launched.links["u031"].id)
            )
        ).scalars()
        current = await session.scalar(
            select(func.count())
            .select_from(Response)
            .where(Response.link_id == launched.links["u031"].id, Response.is_current.is_(True))
        )
    assert sorted(versions) == list(range(1, 21)) and current == 1


async def test_the_page_read_returns_the_bare_link_when_it_is_not_usable(
    sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    engine = sessionmaker.kw["bind"]
    store = LinkPageStore(engine)
    token = launched.tokens["u001"]
    page = await store.read_page(hash_token(token), now=clock())
    assert isinstance(page, PageData) and page.questionnaire is not None and page.payments
    closed = await store.read_page(hash_token(token), now=page.link.closes_at)
    assert closed is not None and not isinstance(closed, PageData) and closed.link_id == page.link.link_id
    assert await store.read_page(hash_token("x" * 32), now=clock()) is None


def test_a_sqlite_unit_of_work_that_suspends_is_refused() -> None:
    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspended"):
        _drive(suspends())


async def test_connections_beyond_the_pool_size_are_returned_and_closed_cleanly(
    sessionmaker: SessionMaker, launched: Launched, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # A pool of 1 (+ overflow): returning an overflow connection closes it, which the async
    # drivers must do inside a greenlet. Done outside one, the pool logged MissingGreenlet and
    # lost the connection's slot; at 64 concurrent users it stalled.
    from store.db import create_engine

    url = sessionmaker.kw["bind"].url.render_as_string(hide_password=False)
    engine = create_engine(url, pool_size=1, max_overflow=8)
    try:
        store = LinkPageStore(engine)
        hashes = [hash_token(launched.tokens[f"u{n:03d}"]) for n in range(1, 17)]
        with caplog.at_level(logging.WARNING, logger="sqlalchemy.pool"):
            for _ in range(3):
                pages = await asyncio.gather(*(store.read_page(h, now=clock()) for h in hashes))
                assert all(isinstance(p, PageData) for p in pages)
        assert [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.pool")] == []
        assert engine.pool.checkedout() == 0
    finally:
        await engine.dispose()


async def _opened_at(sessionmaker: SessionMaker, link_id: int) -> object:
    async with sessionmaker() as session:
        return await session.scalar(select(Link.opened_at).where(Link.id == link_id))


async def test_opening_a_page_reads_what_read_page_reads_and_marks_only_a_shown_page(
    sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    # PostgreSQL reads the page and records the first open in ONE statement (its own SQL for
    # "usable"); SQLite reads, then marks. Either way: the same page as read_page, and opened_at
    # set once, only when a page is shown (not before the campaign opens, not on a revoked link,
    # not on a closed campaign's read-only page).
    engine = sessionmaker.kw["bind"]
    store = LinkPageStore(engine)
    now = clock()
    answers = {k[2:]: v for k, v in GOOD.items()}

    def hashed(unit: str) -> str:
        return hash_token(launched.tokens[unit])

    fresh = await store.read_page(hashed("u001"), now=now)
    assert isinstance(fresh, PageData) and fresh.link.opened_at is None and fresh.payments
    assert await store.open_page(hashed("u001"), now=now) == fresh
    assert await _opened_at(sessionmaker, fresh.link.link_id) == now
    later = await store.open_page(hashed("u001"), now=now + timedelta(minutes=5))
    assert isinstance(later, PageData) and later.link.opened_at == now
    assert await _opened_at(sessionmaker, fresh.link.link_id) == now  # set once

    # Answers and a confirmation stored: the one-statement page carries them as read_page does.
    u002 = await store.read_page(hashed("u002"), now=now)
    assert isinstance(u002, PageData)
    outcome = await store.submit_answers(
        hashed("u002"), now=now, key_for=lambda link: f"{link}:answers:t1", answers_for=lambda q: answers
    )
    assert outcome.created
    pay = u002.payments[0]
    confirmed = await store.submit_confirmation(
        hashed("u002"), pay.id, now=now, key_for=lambda link: f"{link}:pay:t1", status="confirmed",
        received_on=pay.paid_on, amount_fen=pay.amount_fen + 1, voucher="凭证1", dispute_kind=None, reason="",
    )  # fmt: skip
    assert confirmed.created
    expected = await store.read_page(hashed("u002"), now=now)
    assert isinstance(expected, PageData) and expected.answers == answers
    assert (
        expected.payments[0].status == "confirmed"
        and expected.payments[0].confirmed_fen == pay.amount_fen + 1
    )
    assert await store.open_page(hashed("u002"), now=now) == expected

    # The campaign is over: u002 submitted, so its page is shown read-only; nothing is marked.
    closes = u002.link.closes_at
    closed = await store.open_page(hashed("u002"), now=closes)
    assert (
        isinstance(closed, PageData)
        and closed.closed
        and closed == await store.read_page(hashed("u002"), now=closes)
    )
    u003 = await store.open_page(hashed("u003"), now=closes)  # nothing submitted: the bare link
    assert u003 is not None and not isinstance(u003, PageData)
    assert await _opened_at(sessionmaker, u003.link_id) is None

    # Not open yet, and revoked: the bare link, not marked.
    early = await store.open_page(hashed("u004"), now=u002.link.opens_at - timedelta(seconds=1))
    assert early is not None and not isinstance(early, PageData)
    async with transaction(sessionmaker) as session:
        link = await session.get(Link, launched.links["u005"].id)
        assert link is not None
        link.revoked_at = now
    revoked = await store.open_page(hashed("u005"), now=now)
    assert revoked is not None and not isinstance(revoked, PageData) and revoked.revoked_at == now
    assert [await _opened_at(sessionmaker, launched.links[u].id) for u in ("u004", "u005")] == [None, None]
    assert await store.open_page(hash_token("x" * 32), now=now) is None


async def test_warming_opens_the_whole_pool_on_postgresql_and_changes_nothing(
    db_url: str, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    from store.db import create_engine

    engine = create_engine(db_url, pool_size=3)
    try:
        store = LinkPageStore(engine)
        await store.warm()
        pool = engine.sync_engine.pool
        postgres = engine.dialect.name == "postgresql"
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
        assert pool.checkedin() == (3 if postgres else 0)  # type: ignore[attr-defined]
        page = await store.open_page(hash_token(launched.tokens["u001"]), now=clock())
        assert isinstance(page, PageData) and page.link.opened_at is None
    finally:
        await engine.dispose()
    async with sessionmaker() as session:
        opened = await session.scalar(
            select(func.count()).select_from(Link).where(Link.opened_at.is_not(None))
        )
    assert opened == 1  # only the page really opened above
