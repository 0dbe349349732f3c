"""Console accounts and access: login with argon2id passwords, server-side sessions, CSRF on every
form, login throttling per account and client, project grants (404 for others) and roles."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from store.db import SessionMaker
from store.models import AuditEntry, ConsoleSession
from tests.conftest import Clock
from tests.console.conftest import PASSWORD, A, Accounts, B, csrf_of, form_csrf, login


async def test_an_admin_logs_in_sees_the_projects_and_logs_out(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker
) -> None:
    resp = await app_client.get("/console/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    resp = await login(app_client, "admin")
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    cookie = resp.cookies["jx_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/console"
    page = await app_client.get("/console/")
    html = await page.text()
    assert page.status == 200 and A in html and B in html
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    async with sessionmaker() as session:
        [row] = (await session.execute(select(ConsoleSession))).scalars().all()
    assert cookie.value not in row.token_hash  # only the hash is stored
    token = csrf_of(html)
    resp = await app_client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 303
    app_client.session.cookie_jar.update_cookies({"jx_console": cookie.value})  # replay the old cookie
    assert (await app_client.get("/console/", allow_redirects=False)).status == 303


async def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    app_client: TestClient, accounts: Accounts
) -> None:
    resp = await login(app_client, "admin", "wrong password!")
    assert resp.status == 401 and "用户名或密码错误" in await resp.text()
    resp = await login(app_client, "nobody", "wrong password!")
    assert resp.status == 401 and "用户名或密码错误" in await resp.text()


async def test_every_form_needs_its_csrf_token(app_client: TestClient, accounts: Accounts) -> None:
    await app_client.get("/console/login")
    resp = await app_client.post("/console/login", data={"name": "admin", "password": PASSWORD})
    assert resp.status == 403
    assert (await login(app_client, "admin")).status == 303
    for path in (f"/console/p/{A}/overrides", f"/console/p/{A}/campaigns", "/console/logout"):
        resp = await app_client.post(path, data={"csrf": "forged"}, allow_redirects=False)
        assert resp.status == 403, path


async def test_login_is_throttled_per_account_and_client_without_locking_out_other_accounts(
    app_client: TestClient, accounts: Accounts
) -> None:
    for _ in range(5):
        assert (await login(app_client, "coord", "guess guess guess")).status == 401
    # the right password no longer helps for this account from this client…
    assert (await login(app_client, "coord")).status == 429
    # …but another account from the same client still logs in
    assert (await login(app_client, "admin")).status == 303


async def test_an_idle_session_expires(app_client: TestClient, accounts: Accounts, clock: Clock) -> None:
    assert (await login(app_client, "admin")).status == 303
    assert (await app_client.get("/console/", allow_redirects=False)).status == 200
    clock.advance(hours=2, minutes=1)
    assert (await app_client.get("/console/", allow_redirects=False)).status == 303


async def test_a_coordinator_sees_only_its_project_and_no_admin_page(
    app_client: TestClient, accounts: Accounts
) -> None:
    assert (await login(app_client, "coord")).status == 303
    html = await (await app_client.get("/console/")).text()
    assert A in html and B not in html
    assert (await app_client.get(f"/console/p/{B}")).status == 404
    assert (await app_client.get(f"/console/p/{B}/campaigns")).status == 404
    assert (await app_client.get(f"/console/p/{A}")).status == 200
    for path in ("/console/endpoints", "/console/outbox", "/console/audit"):
        assert (await app_client.get(path)).status == 403, path
    token = await form_csrf(app_client, f"/console/p/{A}")
    resp = await app_client.post(
        f"/console/p/{A}/overrides", data={"csrf": token, "indicator": "x", "score": "1", "reason": "r"}
    )
    assert resp.status == 403


async def test_an_override_set_in_the_console_is_audited_with_who_and_when(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker, clock: Clock
) -> None:
    assert (await login(app_client, "admin")).status == 303
    token = await form_csrf(app_client, f"/console/p/{A}")
    from config.loader import load_definition
    from tests.conftest import EXAMPLE_PROJECT

    key = next(i.key for i in load_definition(EXAMPLE_PROJECT).indicators if i.weight >= 2)
    resp = await app_client.post(f"/console/p/{A}/overrides",
                                 data={"csrf": token, "indicator": key, "score": "999", "reason": "x"})  # fmt: skip
    assert resp.status == 400 and "分值" in await resp.text()
    resp = await app_client.post(f"/console/p/{A}/overrides", allow_redirects=False,
                                 data={"csrf": token, "indicator": key, "score": "1.5", "reason": "现场核查"})  # fmt: skip
    assert resp.status == 303
    async with sessionmaker() as session:
        entries = (
            (await session.execute(select(AuditEntry).where(AuditEntry.action == "override.set")))
            .scalars()
            .all()
        )
    assert [(e.actor, e.object, e.detail["score"]) for e in entries] == [
        ("console:admin", f"indicator:{key}", "1.5")
    ]
    assert entries[0].at == clock()
    html = await (await app_client.get("/console/audit")).text()
    assert "override.set" in html and "console:admin" in html
