"""Console: group chats. The page lists what ``store.chats.list_chats`` lets the viewer see (the
API's rule), connecting and disconnecting are audited, and a scoped admin can neither see another
project's chat nor connect a chat to a project it is not granted."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from store.chats import connect_chat, record_seen
from store.db import SessionMaker, transaction
from store.models import AuditEntry, ChatConnection
from tests.conftest import Clock
from tests.console.conftest import A, Accounts, B, csrf_of, login


async def _seen(sm: SessionMaker, clock: Clock) -> None:
    async with transaction(sm) as session:
        await record_seen(
            session, "telegram", "-1001", now=clock(), title="评价工作群", text="/score", sender="王"
        )
        await record_seen(session, "slack", "C-B", now=clock(), title="B project room", text="/help")
        await connect_chat(session, "slack", "C-B", B, now=clock(), by="test")


async def _connections(sm: SessionMaker) -> set[tuple[str, str, int]]:
    async with sm() as session:
        rows = await session.execute(
            select(ChatConnection.vendor, ChatConnection.chat_id, ChatConnection.project_id)
        )
        return {tuple(r) for r in rows.all()}  # type: ignore[misc]


async def test_an_admin_connects_a_seen_chat_and_disconnects_it_with_audit_entries(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker, clock: Clock
) -> None:
    await _seen(sessionmaker, clock)
    assert (await login(app_client, "admin")).status == 303
    html = await (await app_client.get("/console/chats")).text()
    assert 'data-chat="telegram:-1001"' in html and "评价工作群" in html and "/score" in html
    assert 'data-chat="slack:C-B"' in html
    resp = await app_client.post("/console/chats/connect", allow_redirects=False,
                                 data={"csrf": csrf_of(html), "vendor": "telegram", "chat_id": "-1001", "project": A})  # fmt: skip
    assert resp.status == 303
    html = await (await app_client.get(resp.headers["Location"])).text()
    assert "已连接" in html and "Telegram" in html  # the vendor's hint after connecting
    row = html[html.index('data-chat="telegram:-1001"') :]
    assert A in row[: row.index("</tr>")]
    resp = await app_client.post("/console/chats/disconnect", allow_redirects=False,
                                 data={"csrf": csrf_of(html), "vendor": "telegram", "chat_id": "-1001", "project": A})  # fmt: skip
    assert resp.status == 303
    async with sessionmaker() as session:
        entries = [(e.action, e.object) for e in (await session.execute(select(AuditEntry))).scalars()]
    assert ("chat.connect", "chat:telegram:-1001") in entries
    assert ("chat.disconnect", "chat:telegram:-1001") in entries
    assert not any(c[:2] == ("telegram", "-1001") for c in await _connections(sessionmaker))


async def test_a_bad_chat_id_is_shown_at_its_field(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker
) -> None:
    assert (await login(app_client, "admin")).status == 303
    html = await (await app_client.get("/console/chats")).text()
    resp = await app_client.post("/console/chats/connect",
                                 data={"csrf": csrf_of(html), "vendor": "slack", "chat_id": "", "project": A})  # fmt: skip
    html = await resp.text()
    assert resp.status == 400 and 'id="c-chat-err"' in html and 'aria-invalid="true"' in html
    assert await _connections(sessionmaker) == set()


async def test_a_scoped_admin_sees_only_its_projects_chats_and_cannot_connect_to_another_project(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker, clock: Clock
) -> None:
    await _seen(sessionmaker, clock)
    before = await _connections(sessionmaker)
    assert (await login(app_client, "b-admin")).status == 303
    html = await (await app_client.get("/console/chats")).text()
    assert 'data-chat="slack:C-B"' in html  # its own project's chat
    assert "评价工作群" not in html  # not connected to anything: only all-projects admins see it
    assert f'<option value="{A}"' not in html
    resp = await app_client.post("/console/chats/connect",
                                 data={"csrf": csrf_of(html), "vendor": "telegram", "chat_id": "-1001", "project": A})  # fmt: skip
    assert resp.status == 404
    assert await _connections(sessionmaker) == before
    # by id, to its own project: allowed, and then the chat is listed for it
    resp = await app_client.post("/console/chats/connect", allow_redirects=False,
                                 data={"csrf": csrf_of(html), "vendor": "telegram", "chat_id": "-1001", "project": B})  # fmt: skip
    assert resp.status == 303
    html = await (await app_client.get("/console/chats")).text()
    assert "评价工作群" in html


async def test_a_coordinator_cannot_open_the_chats_page(app_client: TestClient, accounts: Accounts) -> None:
    assert (await login(app_client, "coord")).status == 303
    assert (await app_client.get("/console/chats")).status == 403
