"""Group chats that talk to the bot: which are connected to which projects, which were seen but
not connected yet, and which inbound events were already answered.

One path for every caller: the API (``bot.api.chats``), the console and the CLI
(``jixiao bot chats|connect|disconnect``) all call these functions. They take the session first
and never commit (the caller owns the transaction).

- A chat is ``(vendor, chat_id)``; ``chat_id`` is the vendor's own group id (Telegram's negative
  chat id, Feishu ``oc_…``, DingTalk ``cid…``, WeCom ``chatid``, Slack ``C…``).
- Connecting is the permission: anyone in a connected chat may ask about its projects.
- Who sees which chat (:func:`list_chats`, the one rule for the API, the console and the CLI):
  a chat connected to projects is visible to a caller granted at least one of them, and lists
  only those projects' codes; a chat connected to no project (seen, waiting to be connected) is
  visible only to callers with access to *all* projects — in a finance office, the central
  admin who triages new groups. Its title and first message may name another department's
  project, and nothing yet says whose it is. An admin scoped to some projects connects a chat by
  the id the bot posts in the chat (``connect_chat`` needs no sighting).
- ``claim_event`` inserts the unique ``(vendor, event_id)`` row: True for the first delivery of
  an event, False for a replay or a vendor's re-push, which is therefore answered once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from config.chat_vendors import HINTS, VENDORS
from store.access import EVERYTHING, Grants
from store.errors import Invalid, NotFound
from store.models import ChatConnection, InboundEvent, Project, SeenChat

__all__ = [
    "HINTS",
    "VENDORS",
    "ChatInfo",
    "check_chat",
    "claim_event",
    "clean_line",
    "connect_chat",
    "connected_projects",
    "disconnect_chat",
    "event_seen",
    "find_chat",
    "last_summary_snapshot_id",
    "list_chats",
    "record_seen",
    "set_event_outcome",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def clean_line(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters: control characters become spaces (a chat title or
    a first message is shown in lists and the console, never interpreted)."""
    return _CONTROL.sub(" ", text or "").strip()[:limit]


def check_chat(vendor: str, chat_id: str) -> tuple[str, str]:
    """``(vendor, chat_id)`` validated: a known vendor and a non-empty one-line id ≤ 200 chars."""
    if vendor not in VENDORS:
        raise Invalid(
            f"未知平台：{vendor!r}（可选 {'、'.join(VENDORS)}）",
            f"unknown vendor {vendor!r} (one of {', '.join(VENDORS)})",
            where="vendor",
        )
    if not chat_id or len(chat_id) > 200 or _CONTROL.search(chat_id) or chat_id != chat_id.strip():
        raise Invalid(
            "群聊 ID 须为 1–200 个字符的单行文本",
            "chat_id must be one line of 1–200 characters",
            where="chat_id",
        )
    return vendor, chat_id


# ----------------------------------------------------------------------------------- seen chats


async def record_seen(
    session: AsyncSession,
    vendor: str,
    chat_id: str,
    *,
    now: datetime,
    title: str = "",
    text: str = "",
    sender: str = "",
) -> None:
    """Remember a chat the bot heard from: the first message and sender are kept, the title,
    last time and count are updated."""
    table = SeenChat.__table__  # type: ignore[attr-defined]
    title = clean_line(title, 200)
    stmt = _insert(session, table).values(
        vendor=vendor,
        chat_id=chat_id,
        title=title,
        first_seen_at=now,
        last_seen_at=now,
        first_text=clean_line(text, 200),
        first_sender=clean_line(sender, 100),
        messages=1,
    )
    values: dict[str, Any] = {"last_seen_at": now, "messages": table.c.messages + 1}
    if title:
        values["title"] = title
    await session.execute(stmt.on_conflict_do_update(index_elements=["vendor", "chat_id"], set_=values))


@dataclass(frozen=True)
class ChatInfo:
    """A chat as admins see it: what was seen of it and the projects it is connected to."""

    vendor: str
    chat_id: str
    title: str
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    first_text: str
    first_sender: str
    messages: int
    projects: tuple[str, ...]  # project codes, sorted

    def as_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "chat_id": self.chat_id,
            "title": self.title,
            "first_seen_at": None if self.first_seen_at is None else self.first_seen_at.isoformat(),
            "last_seen_at": None if self.last_seen_at is None else self.last_seen_at.isoformat(),
            "first_text": self.first_text,
            "first_sender": self.first_sender,
            "messages": self.messages,
            "projects": list(self.projects),
            "connected": bool(self.projects),
        }


async def list_chats(
    session: AsyncSession,
    *,
    grants: Grants,
    connected: bool | None = None,
    vendor: str | None = None,
) -> list[ChatInfo]:
    """The chats ``grants`` may see (module docstring: connected to a granted project, or — for
    all-projects callers only — connected to none), newest activity first. ``connected``
    True/False filters; a chat connected by id before it ever wrote is listed too (without seen
    data). ``projects`` of each chat holds only granted codes."""
    conns: dict[tuple[str, str], list[str]] = {}
    anywhere: set[tuple[str, str]] = set()  # connected to some project, granted or not
    rows = await session.execute(
        select(ChatConnection.vendor, ChatConnection.chat_id, Project.id, Project.code).join(
            Project, Project.id == ChatConnection.project_id
        )
    )
    for v, c, pid, code in rows.all():
        anywhere.add((v, c))
        if grants.allows(pid):
            conns.setdefault((v, c), []).append(code)
    seen = {(s.vendor, s.chat_id): s for s in (await session.execute(select(SeenChat))).scalars()}
    out: list[ChatInfo] = []
    for key in set(seen) | anywhere:
        if vendor is not None and key[0] != vendor:
            continue
        projects = tuple(sorted(conns.get(key, ())))
        if not projects and (key in anywhere or not grants.all_projects):
            continue  # another project's chat, or an unconnected one for a scoped caller
        if connected is not None and bool(projects) != connected:
            continue
        s = seen.get(key)
        out.append(
            ChatInfo(
                key[0],
                key[1],
                s.title if s else "",
                s.first_seen_at if s else None,
                s.last_seen_at if s else None,
                s.first_text if s else "",
                s.first_sender if s else "",
                s.messages if s else 0,
                projects,
            )
        )
    out.sort(
        key=lambda c: (
            c.last_seen_at is None,
            -(c.last_seen_at.timestamp() if c.last_seen_at else 0),
            c.vendor,
            c.chat_id,
        )
    )
    return out


async def find_chat(
    session: AsyncSession, vendor: str, chat_id: str, *, grants: Grants = EVERYTHING
) -> ChatInfo | None:
    """One chat (seen or connected) as ``grants`` see it, else None."""
    for chat in await list_chats(session, grants=grants, vendor=vendor):
        if chat.chat_id == chat_id:
            return chat
    return None


# ----------------------------------------------------------------------------------- connections


async def connected_projects(session: AsyncSession, vendor: str, chat_id: str) -> list[Project]:
    """The projects a chat is connected to, by code (empty: not connected)."""
    stmt = (
        select(Project)
        .join(ChatConnection, ChatConnection.project_id == Project.id)
        .where(ChatConnection.vendor == vendor, ChatConnection.chat_id == chat_id)
        .order_by(Project.code)
    )
    return list((await session.execute(stmt)).scalars())


async def _project(session: AsyncSession, code: str) -> Project:
    project = (await session.execute(select(Project).where(Project.code == code))).scalar_one_or_none()
    if project is None:
        raise NotFound(f"项目不存在：{code}", f"no such project: {code}", where="project")
    return project


async def connect_chat(
    session: AsyncSession,
    vendor: str,
    chat_id: str,
    project_code: str,
    *,
    now: datetime,
    by: str = "",
    grants: Grants = EVERYTHING,
) -> ChatInfo:
    """Connect a chat to a project (idempotent: connecting twice keeps one row). The chat need not
    have been seen: an admin who knows the id may connect it first. The caller checks that
    ``grants`` allow the project; the chat returned lists only the projects ``grants`` allow."""
    check_chat(vendor, chat_id)
    project = await _project(session, project_code)
    stmt = (
        _insert(session, ChatConnection.__table__)  # type: ignore[attr-defined]
        .values(
            vendor=vendor,
            chat_id=chat_id,
            project_id=project.id,
            connected_at=now,
            connected_by=clean_line(by, 100),
        )
        .on_conflict_do_nothing(index_elements=["vendor", "chat_id", "project_id"])
    )
    await session.execute(stmt)
    chat = await find_chat(session, vendor, chat_id, grants=grants)
    assert chat is not None
    return chat


async def disconnect_chat(
    session: AsyncSession,
    vendor: str,
    chat_id: str,
    project_code: str | None = None,
    *,
    grants: Grants = EVERYTHING,
) -> int:
    """Disconnect a chat from one project (or, with ``project_code`` None, from every project
    ``grants`` allow — connections to other projects stay). Returns how many connections were
    removed; NotFound when there was none."""
    check_chat(vendor, chat_id)
    stmt = delete(ChatConnection).where(ChatConnection.vendor == vendor, ChatConnection.chat_id == chat_id)
    if not grants.all_projects:
        stmt = stmt.where(grants.where(ChatConnection.project_id))
    if project_code is not None:
        project = await _project(session, project_code)
        stmt = stmt.where(ChatConnection.project_id == project.id)
    res = await session.execute(stmt)
    removed = int(res.rowcount or 0)
    if not removed:
        raise NotFound(
            f"该群聊未连接{'到项目 ' + project_code if project_code else '任何项目'}：{vendor} {chat_id}",
            f"chat {vendor} {chat_id} is not connected{' to ' + project_code if project_code else ''}",
            where="chat_id",
        )
    return removed


# ----------------------------------------------------------------------------------- events


async def event_seen(session: AsyncSession, vendor: str, event_id: str) -> bool:
    """Whether the event was already received (a replay or a vendor re-push)."""
    found = await session.scalar(
        select(func.count())
        .select_from(InboundEvent)
        .where(InboundEvent.vendor == vendor, InboundEvent.event_id == event_id)
    )
    return bool(found)


async def claim_event(
    session: AsyncSession,
    vendor: str,
    event_id: str,
    *,
    now: datetime,
    chat_id: str = "",
    command: str = "",
    outcome: str = "",
) -> bool:
    """Insert the event's unique row; True if this is its first delivery (answer it), False if it
    was already claimed (a replay: do nothing). Race-safe across processes."""
    stmt = (
        _insert(session, InboundEvent.__table__)  # type: ignore[attr-defined]
        .values(
            vendor=vendor,
            event_id=event_id[:200],
            chat_id=chat_id[:200],
            command=command[:20],
            outcome=outcome[:20],
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["vendor", "event_id"])
    )
    res = await session.execute(stmt)
    return bool(res.rowcount)


async def set_event_outcome(session: AsyncSession, vendor: str, event_id: str, outcome: str) -> None:
    await session.execute(
        update(InboundEvent)
        .where(InboundEvent.vendor == vendor, InboundEvent.event_id == event_id[:200])
        .values(outcome=outcome[:20])
    )


async def last_summary_snapshot_id(session: AsyncSession, project_id: int) -> int | None:
    """The snapshot the latest scheduled summary of the project showed (None if none was posted):
    a chat reply's "change since the last summary" compares with it."""
    from store.models import OutboxMessage

    payload = await session.scalar(
        select(OutboxMessage.payload)
        .where(OutboxMessage.project_id == project_id, OutboxMessage.kind == "summary")
        .order_by(OutboxMessage.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    if not payload or payload.get("snapshot_id") is None:
        return None
    return int(payload["snapshot_id"])
