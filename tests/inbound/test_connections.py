"""Connecting chats: the admin API (documented in OpenAPI), the store functions the console
calls, and the CLI; connection is the permission and disconnecting takes it away."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cli.main import main
from store.access import EVERYTHING
from store.chats import HINTS, connect_chat, disconnect_chat, list_chats, record_seen
from store.db import transaction
from store.errors import Invalid, NotFound
from store.models import Project
from store.tokens import create_token
from tests.conftest import EXAMPLE_PROJECT
from tests.fakes.inbound import telegram_update
from tests.inbound.conftest import CODE, ENV_VALUES, Bot

CHAT = "-1009876543210"


async def headers(bot: Bot, role: str = "admin", *, projects: list[str] | None = None) -> dict[str, str]:
    """A token of ``role``: an admin's for every project (``all_projects``) unless ``projects``
    names some; a coordinator's for every project loaded."""
    everything = projects is None and role == "admin"
    async with transaction(bot.sessionmaker) as session:
        query = select(Project.id)
        if projects is not None:
            query = query.where(Project.code.in_(projects))  # type: ignore[attr-defined]
        ids = [] if everything else list((await session.execute(query)).scalars())
        _, plain = await create_token(session, name=role, role=role, now=bot.clock(),
                                      all_projects=everything, projects=ids)  # fmt: skip
    return {"Authorization": f"Bearer {plain}"}


async def tg(bot: Bot, update_id: int, text: str) -> None:
    resp = await bot.client.post(
        "/bot/telegram",
        data=json.dumps(telegram_update(update_id, int(CHAT), text, title="评价工作群")),
        headers={
            "X-Telegram-Bot-Api-Secret-Token": ENV_VALUES["TG_SECRET"],
            "Content-Type": "application/json",
        },
    )
    assert resp.status == 200


async def test_an_admin_picks_a_seen_chat_connects_it_and_the_chat_then_gets_answers(bot: Bot) -> None:
    admin = await headers(bot)
    await tg(bot, 1, "/score@jixiao_bot")  # unconnected: recorded, answered with the connect line
    resp = await bot.client.get("/api/chats?connected=false", headers=admin)
    [chat] = (await resp.json())["data"]
    assert (chat["vendor"], chat["chat_id"], chat["title"], chat["connected"]) == (
        "telegram",
        CHAT,
        "评价工作群",
        False,
    )
    assert chat["first_text"] == "/score@jixiao_bot"
    resp = await bot.client.post(
        "/api/chats/connect", json={"vendor": "telegram", "chat_id": CHAT, "project": CODE}, headers=admin
    )
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert data["chat"]["projects"] == [CODE] and data["hint"] == HINTS["telegram"]
    await tg(bot, 2, "/help")
    await bot.deliver()
    assert CODE in bot.cloud.replies("telegram")[-1].json["text"]
    resp = await bot.client.post(
        "/api/chats/disconnect", json={"vendor": "telegram", "chat_id": CHAT}, headers=admin
    )
    assert (await resp.json())["data"] == {"removed": 1}
    await tg(bot, 3, "/score")
    await bot.deliver()
    assert "尚未连接" in bot.cloud.replies("telegram")[-1].json["text"]


async def test_the_wecom_hint_says_a_plain_group_robot_cannot_receive(bot: Bot) -> None:
    resp = await bot.client.post(
        "/api/chats/connect",
        json={"vendor": "wecom", "chat_id": "wrk1", "project": CODE},
        headers=await headers(bot),
    )
    hint = (await resp.json())["data"]["hint"]
    assert "普通群机器人" in hint and "不能接收" in hint and "cannot receive" in hint


async def test_a_coordinator_token_can_neither_list_nor_connect_chats(bot: Bot) -> None:
    coord = await headers(bot, "coordinator")
    assert (await bot.client.get("/api/chats", headers=coord)).status == 403
    body = {"vendor": "telegram", "chat_id": CHAT, "project": CODE}
    assert (await bot.client.post("/api/chats/connect", json=body, headers=coord)).status == 403
    assert (await bot.client.post("/api/chats/connect", json=body)).status == 401


async def test_bad_input_is_refused_with_the_field_named(bot: Bot) -> None:
    admin = await headers(bot)
    resp = await bot.client.post(
        "/api/chats/connect", json={"vendor": "icq", "chat_id": CHAT, "project": CODE}, headers=admin
    )
    assert resp.status == 400 and (await resp.json())["error"]["where"] == "vendor"
    resp = await bot.client.post(
        "/api/chats/connect", json={"vendor": "slack", "chat_id": "a\nb", "project": CODE}, headers=admin
    )
    assert resp.status == 400 and (await resp.json())["error"]["where"] == "chat_id"
    resp = await bot.client.post(
        "/api/chats/connect", json={"vendor": "slack", "chat_id": "C1", "project": "no-such"}, headers=admin
    )
    assert resp.status == 404


async def test_the_chat_endpoints_are_in_the_openapi_document(bot: Bot) -> None:
    doc = await (await bot.client.get("/api/openapi.json")).json()
    for path in ("/api/chats", "/api/chats/connect", "/api/chats/disconnect"):
        assert path in doc["paths"]
    assert "ChatOut" in doc["components"]["schemas"]


async def test_store_functions_connect_idempotently_and_list_seen_chats(bot: Bot) -> None:
    async with transaction(bot.sessionmaker) as session:
        await record_seen(
            session, "slack", "C9", now=bot.clock(), title="t\x07itle", text="hi\nthere", sender="u"
        )
        await connect_chat(session, "slack", "C9", CODE, now=bot.clock())
        await connect_chat(session, "slack", "C9", CODE, now=bot.clock())
        [chat] = await list_chats(session, grants=EVERYTHING, vendor="slack")
        assert chat.projects == (CODE,) and chat.title == "t itle" and chat.first_text == "hi there"
        assert await disconnect_chat(session, "slack", "C9") == 1
        with pytest.raises(NotFound):
            await disconnect_chat(session, "slack", "C9")
        with pytest.raises(Invalid):
            await connect_chat(session, "msn", "C9", CODE, now=bot.clock())


async def test_who_sees_which_chat_and_what_a_scoped_admin_may_disconnect(bot: Bot) -> None:
    """Chats connected to a granted project are listed with only the granted codes; a chat of
    another project is invisible; a chat connected to no project only to all-projects admins."""
    from config.loader import load_definition
    from store.projects import load_project
    from tests.conftest import REPO

    other = "zipingbiao-demo"
    async with transaction(bot.sessionmaker) as session:
        await load_project(session, load_definition(REPO / "config/projects" / other), now=bot.clock())
        for chat_id, title in (("C-both", "两个项目的群"), ("C-other", "别的项目的群"), ("C-new", "新群")):
            await record_seen(session, "slack", chat_id, now=bot.clock(), title=title, text="/help")
        for chat_id, code in (("C-both", CODE), ("C-both", other), ("C-other", other)):
            await connect_chat(session, "slack", chat_id, code, now=bot.clock())
    everything = await headers(bot)
    scoped = await headers(bot, projects=[CODE])

    async def listed(h: dict[str, str], query: str = "") -> dict[str, list[str]]:
        resp = await bot.client.get(f"/api/chats{query}", headers=h)
        assert resp.status == 200
        return {c["chat_id"]: c["projects"] for c in (await resp.json())["data"]}

    assert await listed(everything) == {"C-both": [CODE, other], "C-other": [other], "C-new": []}
    assert await listed(scoped) == {"C-both": [CODE]}
    assert await listed(scoped, "?connected=false") == {}
    assert await listed(everything, "?connected=false") == {"C-new": []}
    # the scoped admin connects the new chat by its id: now it sees it, with its own project only
    resp = await bot.client.post(
        "/api/chats/connect", json={"vendor": "slack", "chat_id": "C-other", "project": CODE}, headers=scoped
    )
    assert (await resp.json())["data"]["chat"]["projects"] == [CODE]
    # "disconnect from all" removes only the scoped admin's connections
    for chat_id in ("C-both", "C-other"):
        resp = await bot.client.post(
            "/api/chats/disconnect", json={"vendor": "slack", "chat_id": chat_id}, headers=scoped
        )
        assert (await resp.json())["data"] == {"removed": 1}
    assert await listed(everything) == {"C-both": [other], "C-other": [other], "C-new": []}
    resp = await bot.client.post(
        "/api/chats/disconnect", json={"vendor": "slack", "chat_id": "C-other"}, headers=scoped
    )
    assert resp.status == 404  # nothing of its own left to disconnect


def run(argv: list[str], db_url: str, tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--database-url", db_url, "--data-dir", str(tmp_path), *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_the_cli_lists_connects_and_disconnects(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert run(["project", "load", str(EXAMPLE_PROJECT)], db, tmp_path)[0] == 0
    code, out, err = run(["bot", "connect", "dingtalk", "cid42==", CODE], db, tmp_path)
    assert code == 0 and "cid42==" in out and "钉钉" in out
    code, out, _ = run(["bot", "chats", "--json"], db, tmp_path)
    data: Any = json.loads(out)
    assert data[0]["chat_id"] == "cid42==" and data[0]["projects"] == [CODE]
    assert run(["bot", "disconnect", "dingtalk", "cid42=="], db, tmp_path)[0] == 0
    code, _, err = run(["bot", "disconnect", "dingtalk", "cid42=="], db, tmp_path)
    assert code == 1 and "未连接" in err
