"""Group chats that ask the bot: the chats seen (connected or not) and connecting/disconnecting
them to projects. Admin only: connecting a chat is what lets anyone in it read the project's
scores, so it is an admin decision (``store.chats``, shared with the console and the CLI)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from bot import keys
from bot.api.common import API, CODE_PATTERN, Body, Call, Line, Out, ok
from store.access import visible_project
from store.chats import HINTS, connect_chat, disconnect_chat, list_chats
from store.db import transaction

Vendor = Literal["telegram", "feishu", "dingtalk", "wecom", "slack"]


class ChatQuery(Body):
    connected: bool | None = None
    vendor: Vendor | None = None


class ChatOut(Out):
    vendor: str
    chat_id: str
    title: str
    first_seen_at: str | None
    last_seen_at: str | None
    first_text: str
    first_sender: str
    messages: int
    projects: list[str]
    connected: bool


class ConnectIn(Body):
    vendor: Vendor
    chat_id: Line(200, 1)  # type: ignore[valid-type]
    project: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)


class DisconnectIn(Body):
    vendor: Vendor
    chat_id: Line(200, 1)  # type: ignore[valid-type]
    project: str | None = Field(default=None, min_length=1, max_length=64, pattern=CODE_PATTERN)


class ConnectOut(Out):
    chat: ChatOut
    hint: str = Field(description="What this vendor's bot needs to receive commands (an app, an @-mention).")


class DisconnectOut(Out):
    removed: int


@API.op("GET", "/api/chats", role="admin", tag="chats", summary="群聊列表（已见/已连接）/ chats seen and connected",
        query=ChatQuery, data={"type": "array", "items": {"$ref": "#/components/schemas/ChatOut"}},
        errors=(400,))  # fmt: skip
async def list_chats_(request: web.Request, call: Call) -> web.Response:
    """Chats the bot heard from (with their first message, to pick from) and chats connected by
    id; ``connected=false`` lists the ones waiting to be connected. A token sees the chats
    connected to its projects (listing only those codes); chats connected to no project only
    with access to all projects (``store.chats.list_chats``)."""
    q: ChatQuery = call.query
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        rows = await list_chats(session, grants=call.grants, connected=q.connected, vendor=q.vendor)
    return ok([ChatOut(**c.as_dict()) for c in rows])


@API.op("POST", "/api/chats/connect", role="admin", tag="chats", summary="连接群聊到项目 / connect a chat",
        body=ConnectIn, data=ConnectOut, errors=(400, 404, 413, 415))  # fmt: skip
async def connect_chat_(request: web.Request, call: Call) -> web.Response:
    """Connect a chat to a project (idempotent). From then on anyone in the chat may ask the bot
    about the project; ``hint`` says what the vendor's bot needs (a plain WeCom group robot, a
    DingTalk or Feishu custom webhook robot cannot receive commands)."""
    b: ConnectIn = call.body
    by = call.token.name if call.token is not None else ""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await visible_project(session, call.grants, b.project)  # 404 for a project not granted
        chat = await connect_chat(
            session, b.vendor, b.chat_id, b.project, now=request.app[keys.CLOCK](), by=by, grants=call.grants
        )
    return ok(ConnectOut(chat=ChatOut(**chat.as_dict()), hint=HINTS[b.vendor]))


@API.op("POST", "/api/chats/disconnect", role="admin", tag="chats", summary="断开群聊 / disconnect a chat",
        body=DisconnectIn, data=DisconnectOut, errors=(400, 404, 413, 415))  # fmt: skip
async def disconnect_chat_(request: web.Request, call: Call) -> web.Response:
    """Disconnect a chat from one project, or from all of them without ``project``."""
    b: DisconnectIn = call.body
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        if b.project is not None:
            await visible_project(session, call.grants, b.project)
        # without a project: from all the projects this token may see
        removed = await disconnect_chat(session, b.vendor, b.chat_id, b.project, grants=call.grants)
    return ok(DisconnectOut(removed=removed))
