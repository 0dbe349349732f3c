"""Personal links: launch, invitations in the outbox, revoke/reissue, expiry, and the guard."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from pydantic import ValidationError
from sqlalchemy import func, select

from bot import keys
from bot.app import create_app
from bot.links import THROTTLE, FailureThrottle, client_of, link_url
from config.settings import Settings
from store.campaigns import (
    close_campaign,
    create_campaign,
    hash_token,
    launch_campaign,
    link_status,
    make_link_token,
    reissue_link,
    revoke_link,
)
from store.db import SessionMaker, transaction
from store.errors import Invalid
from store.models import Link, OutboxMessage, Project, Unit
from tests.bot.conftest import TEST_SECRET, Launched, SleepRecorder, launch_example_campaign, page_form
from tests.conftest import Clock

SECRET = TEST_SECRET.encode()


async def _outbox(sm: SessionMaker, campaign_id: int) -> list[OutboxMessage]:
    async with sm() as session:
        stmt = (
            select(OutboxMessage).where(OutboxMessage.campaign_id == campaign_id).order_by(OutboxMessage.id)
        )
        return list((await session.execute(stmt)).scalars())


async def test_launch_creates_one_link_and_one_invitation_per_unit_without_the_raw_token(
    sessionmaker: SessionMaker, launched: Launched
) -> None:
    async with sessionmaker() as session:
        active = await session.scalar(
            select(func.count()).select_from(Unit).where(Unit.project_id == launched.project_id, Unit.active)
        )
    rows = await _outbox(sessionmaker, launched.campaign_id)
    assert len(launched.links) == active == 121
    assert len(rows) == 121
    assert {r.dedupe_key for r in rows} == {
        f"invite:{launched.campaign_id}:{uid}" for uid in (lk.unit_id for lk in launched.links.values())
    }
    assert {r.link_id for r in rows} == {lk.id for lk in launched.links.values()}
    everything = json.dumps([r.payload for r in rows], ensure_ascii=False)
    for token in launched.tokens.values():
        assert token not in everything
    for row in rows:
        assert row.payload["link"]["url"] == "{link_url}"
        assert row.payload["link_id"] == row.link_id
        assert row.kind == "invite" and row.status == "pending"
    # Only the hash is stored, and it is not the token itself.
    link = launched.links["u001"]
    assert link.token_hash == hash_token(launched.tokens["u001"]) != launched.tokens["u001"]


async def test_launching_twice_adds_no_links_and_no_messages(
    sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    async with transaction(sessionmaker) as session:
        result = await launch_campaign(session, launched.campaign_id, secret=SECRET, now=clock())
    assert (result.links_created, result.invitations_enqueued) == (0, 0)
    assert len(await _outbox(sessionmaker, launched.campaign_id)) == 121
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Link).where(Link.campaign_id == launched.campaign_id)
        )
    assert count == 121


async def test_a_campaign_for_chosen_units_invites_only_them(
    sessionmaker: SessionMaker, example_project: Project, clock: Clock
) -> None:
    launched = await launch_example_campaign(
        sessionmaker, example_project, clock(), unit_keys=["u002", "u005"]
    )
    assert sorted(launched.links) == ["u002", "u005"]
    rows = await _outbox(sessionmaker, launched.campaign_id)
    assert len(rows) == 2


async def test_reissue_revokes_the_old_link_keeps_history_and_sends_a_fresh_invitation(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    old = launched.links["u003"]
    async with transaction(sessionmaker) as session:
        new = await reissue_link(session, old.id, secret=SECRET, now=clock())  # type: ignore[arg-type]
        newer = await reissue_link(session, new.id, secret=SECRET, now=clock())  # type: ignore[arg-type]
    async with sessionmaker() as session:
        history = (
            (await session.execute(select(Link).where(Link.unit_id == old.unit_id).order_by(Link.id)))
            .scalars()
            .all()
        )
    assert [lk.id for lk in history] == [old.id, new.id, newer.id]
    assert [lk.revoked_at is not None for lk in history] == [True, True, False]
    keys = [
        r.dedupe_key
        for r in await _outbox(sessionmaker, launched.campaign_id)
        if r.link_id in {old.id, new.id, newer.id}
    ]
    base = f"invite:{launched.campaign_id}:{old.unit_id}"
    assert keys == [base, f"{base}:r1", f"{base}:r2"]

    assert (await app_client.get(launched.url("u003"))).status == 404
    assert (await app_client.get(f"/l/{make_link_token(SECRET, newer.token_salt)}")).status == 200


async def test_revoking_a_link_cancels_its_unsent_invitation(
    sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    link = launched.links["u004"]
    async with transaction(sessionmaker) as session:
        await revoke_link(session, link.id, now=clock())  # type: ignore[arg-type]
    row = next(r for r in await _outbox(sessionmaker, launched.campaign_id) if r.link_id == link.id)
    assert row.status == "cancelled"


async def test_link_url_is_rebuilt_from_secret_and_salt_and_is_unguessable_length(launched: Launched) -> None:
    link = launched.links["u001"]
    url = link_url("https://jx.example/", SECRET, link)
    token = url.rsplit("/", 1)[1]
    assert url == f"https://jx.example/l/{token}" and token == launched.tokens["u001"]
    assert len(token) == 32  # 192 bits of base64url
    assert make_link_token(b"another secret", link.token_salt) != token


async def test_first_open_is_recorded_and_later_opens_keep_it(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    first = clock()
    assert (await app_client.get(launched.url("u001"))).status == 200
    clock.advance(hours=2)
    assert (await app_client.get(launched.url("u001"))).status == 200
    async with sessionmaker() as session:
        link = await session.get(Link, launched.links["u001"].id)
    assert link is not None and link.opened_at == first


async def test_link_status_reports_each_unit_progress(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    fields = await page_form(app_client, launched.tokens["u002"])
    answers = {"q_guide": "一般", "q_review": "一般", "q_funds": "一般", "q_overall": "一般"}
    resp = await app_client.post(
        launched.url("u002") + "/answers", data={**fields, **answers}, allow_redirects=False
    )
    assert resp.status == 303
    async with sessionmaker() as session:
        statuses = {s.unit_key: s for s in await link_status(session, launched.campaign_id)}
    assert len(statuses) == 121
    assert statuses["u002"].opened_at == clock() and statuses["u002"].answered_at == clock()
    assert statuses["u001"].opened_at is None and statuses["u001"].answered_at is None
    assert statuses["u001"].sent_at is None and statuses["u001"].reminder_count == 0


# ------------------------------------------------------------------------------ unusable links


async def _unusable_cases(
    sessionmaker: SessionMaker, launched: Launched, example_project: Project, clock: Clock
) -> dict[str, str]:
    """One URL per reason a link cannot be used."""
    future = await launch_example_campaign(sessionmaker, example_project, clock(), unit_keys=["u010"])
    closed = await launch_example_campaign(sessionmaker, example_project, clock(), unit_keys=["u011"])
    async with transaction(sessionmaker) as session:
        await revoke_link(session, launched.links["u001"].id, now=clock())  # type: ignore[arg-type]
        await close_campaign(session, closed.campaign_id, now=clock())
        from store.models import Campaign

        c = await session.get(Campaign, future.campaign_id)
        assert c is not None
        c.opens_at = clock() + timedelta(days=2)
    unknown = make_link_token(SECRET, "not-a-stored-salt")
    return {
        "unknown": f"/l/{unknown}",
        "too short": f"/l/{unknown[:31]}",
        "too long": f"/l/{unknown}A",
        "bad charset": f"/l/{unknown[:31]}%24",
        "revoked": launched.url("u001"),
        "campaign closed": closed.url("u011"),
        "not yet open": future.url("u010"),
    }


async def test_unknown_malformed_revoked_closed_and_unopened_links_get_the_same_page(
    app_client: TestClient,
    sessionmaker: SessionMaker,
    launched: Launched,
    example_project: Project,
    clock: Clock,
) -> None:
    cases = await _unusable_cases(sessionmaker, launched, example_project, clock)
    bodies = {}
    for reason, url in cases.items():
        resp = await app_client.get(url)
        assert resp.status == 404, reason
        bodies[reason] = await resp.text()
    assert len(set(bodies.values())) == 1, "the page must not reveal why"
    assert "链接无效或已过期" in bodies["unknown"]
    english = await app_client.get(cases["revoked"], headers={"Accept-Language": "en-US,en;q=0.9"})
    assert english.status == 404 and "Link not valid" in await english.text()


async def test_links_expire_when_the_window_ends(
    app_client: TestClient, launched: Launched, clock: Clock
) -> None:
    assert (await app_client.get(launched.url("u005"))).status == 200
    clock.advance(days=15)
    resp = await app_client.get(launched.url("u005"))
    assert resp.status == 404 and "链接无效或已过期" in await resp.text()


async def test_posting_to_an_unusable_link_gets_the_same_page_and_stores_nothing(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    fields = await page_form(app_client, launched.tokens["u006"])
    async with transaction(sessionmaker) as session:
        await close_campaign(session, launched.campaign_id, now=clock())
    resp = await app_client.post(
        launched.url("u006") + "/answers",
        data={**fields, "q_guide": "一般", "q_review": "一般", "q_funds": "一般", "q_overall": "一般"},
    )
    assert resp.status == 404 and "链接无效或已过期" in await resp.text()
    async with sessionmaker() as session:
        from store.models import Response

        assert (
            await session.scalar(
                select(func.count()).select_from(Response).where(Response.campaign_id == launched.campaign_id)
            )
            == 0
        )


async def test_repeated_failures_from_one_client_are_slowed_then_refused(
    app_client: TestClient, launched: Launched, throttle_sleep: SleepRecorder
) -> None:
    throttle = app_client.server.app[THROTTLE]
    now = [1000.0]
    throttle.clock = lambda: now[0]
    bad = "/l/" + "A" * 32
    for _ in range(throttle.limit):
        assert (await app_client.get(bad)).status == 404
    delays = throttle_sleep.calls
    assert delays[0] < delays[1] < delays[2]  # increasing
    assert max(delays) == throttle.max_delay_s  # capped
    # Over the budget: bad tokens are refused until the window ends.
    refused = await app_client.get(bad)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    assert "请求过于频繁" in await refused.text()
    now[0] += throttle.window_s
    assert (await app_client.get(bad)).status == 404


async def test_a_valid_link_still_works_from_a_client_that_has_been_throttled(
    app_client: TestClient, launched: Launched
) -> None:
    """One office NAT: a neighbour's mistyped links must not lock out every unit behind it."""
    throttle = app_client.server.app[THROTTLE]
    bad = "/l/" + "B" * 32
    for _ in range(throttle.limit + 5):
        await app_client.get(bad)
    assert (await app_client.get(bad)).status == 429
    page = await app_client.get(launched.url("u001"))
    assert page.status == 200
    form = await page_form(app_client, launched.tokens["u001"])
    answers = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}
    posted = await app_client.post(
        f"/l/{launched.tokens['u001']}/answers", data={**form, **answers}, allow_redirects=False
    )
    assert posted.status == 303, await posted.text()


async def test_concurrent_guesses_are_all_counted_and_at_most_the_budget_get_a_404(
    app_client: TestClient, launched: Launched
) -> None:
    throttle = app_client.server.app[THROTTLE]
    guesses = [f"/l/{i:032d}" for i in range(300)]
    statuses = await asyncio.gather(*(_status(app_client, g) for g in guesses))
    assert throttle.failures("127.0.0.1") == 300
    assert statuses.count(404) == throttle.limit
    assert statuses.count(429) == 300 - throttle.limit


async def _status(client: TestClient, path: str) -> int:
    async with client.get(path) as resp:
        return resp.status


def _request(app: web.Application, remote: str, xff: str | None = None) -> web.Request:
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    return make_mocked_request("GET", "/l/x", headers=headers, app=app, transport=_Transport(remote))


class _Transport:
    """Just enough of a transport for ``request.remote`` (the TCP peer address)."""

    def __init__(self, remote: str) -> None:
        self.remote = remote

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.remote, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def _app_with_proxies(trusted: str) -> web.Application:
    app = web.Application()
    app[keys.SETTINGS] = Settings(trusted_proxies=trusted, load_example=False)
    return app


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    untrusted = _app_with_proxies("")
    assert client_of(_request(untrusted, "203.0.113.9", "198.51.100.1")) == "203.0.113.9"
    proxied = _app_with_proxies("10.0.0.0/8, 127.0.0.1")
    # A peer outside the trusted networks is the client, whatever it claims.
    assert client_of(_request(proxied, "203.0.113.9", "198.51.100.1")) == "203.0.113.9"
    # Through the proxy: the rightmost untrusted hop, not what the client prepended.
    assert client_of(_request(proxied, "10.1.2.3", "6.6.6.6, 198.51.100.1")) == "198.51.100.1"
    assert client_of(_request(proxied, "127.0.0.1", "198.51.100.1, 10.9.9.9")) == "198.51.100.1"
    # A trusted peer without the header is itself the client.
    assert client_of(_request(proxied, "10.1.2.3")) == "10.1.2.3"


def test_trusted_proxies_must_be_addresses_or_cidrs() -> None:
    with pytest.raises(ValidationError, match="JIXIAO_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8,proxy.local", load_example=False)


async def test_units_behind_one_proxy_are_throttled_by_their_own_address(
    aiohttp_client: Any, settings: Settings, sessionmaker: SessionMaker, clock: Clock, launched: Launched
) -> None:
    proxied = settings.model_copy(update={"trusted_proxies": "127.0.0.1/32"})
    app = create_app(proxied, sessionmaker=sessionmaker, clock=clock, channels={}, start_workers=False)
    throttle = app[THROTTLE]
    throttle.sleep = SleepRecorder()
    app_client = await aiohttp_client(app)
    bad = "/l/" + "C" * 32
    for _ in range(throttle.limit + 1):
        await app_client.get(bad, headers={"X-Forwarded-For": "198.51.100.7"})
    assert (await app_client.get(bad, headers={"X-Forwarded-For": "198.51.100.7"})).status == 429
    assert (await app_client.get(bad, headers={"X-Forwarded-For": "198.51.100.8"})).status == 404
    assert throttle.failures("198.51.100.7") == throttle.limit + 2
    assert throttle.failures("127.0.0.1") == 0


async def test_the_throttle_forgets_the_oldest_clients_beyond_its_capacity() -> None:
    calls: list[float] = []

    async def sleep(s: float) -> None:
        calls.append(s)

    throttle = FailureThrottle(sleep=sleep, max_clients=3)
    for client in ("a", "b", "c", "d"):
        await throttle.failed(client)
    assert throttle.failures("a") == 0 and throttle.failures("d") == 1


async def test_create_campaign_rejects_a_bad_window_and_policy(
    sessionmaker: SessionMaker, example_project: Project, clock: Clock
) -> None:
    async with sessionmaker() as session:
        with pytest.raises(Invalid, match="closes_at"):
            await create_campaign(
                session,
                example_project.id,
                name="x",
                opens_at=clock(),  # type: ignore[arg-type]
                closes_at=clock(),
                now=clock(),
            )
        with pytest.raises(Invalid, match="quiet_hours"):
            await create_campaign(
                session,
                example_project.id,
                name="x",
                opens_at=clock(),  # type: ignore[arg-type]
                closes_at=clock() + timedelta(days=1),
                policy={"quiet_hours": ["25:00", "x"]},
                now=clock(),
            )
        with pytest.raises(Invalid, match="unit"):
            await create_campaign(
                session,
                example_project.id,
                name="x",
                opens_at=clock(),  # type: ignore[arg-type]
                closes_at=clock() + timedelta(days=1),
                unit_ids=[999999],
                now=clock(),
            )
