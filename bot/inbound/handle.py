"""The vendor-neutral part of a chat command: after a vendor module has checked the request's
authenticity and parsed it into an :class:`Inbound`, this decides the answer and puts it in the
outbox.

Order of work (each step cheap before the next):

1. parse the command (``bot.inbound.commands``); a message that is not for the bot is ignored;
2. the chat's projects (``store.chats``): none → one line saying how an admin connects it;
   ``help``/unknown → the help; otherwise the reply content (``bot.inbound.replies``);
3. one write transaction: claim the event's unique row (the dedupe: a replayed or re-pushed event,
   even two deliveries at once, is answered once), remember the chat (``seen_chat``), enqueue the reply with dedupe key
   ``reply:{vendor}:{event_id}``; then wake the delivery worker.

Every request and its outcome is logged on ``jixiao.inbound`` (vendor, event id, chat id,
command, outcome, milliseconds); never a secret, a token or a reply URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot import keys
from bot.inbound.commands import parse
from bot.inbound.replies import build_reply, help_message, unconnected_message
from bot.inbound.senders import BASE_OF, reply_url_allowed
from bot.outbox import REPLY_TO_KEY, resolve_env, wake
from bot.summary import message_to_payload
from store import chats
from store.db import transaction
from store.outbox import enqueue, ensure_endpoint

log = logging.getLogger("jixiao.inbound")

#: The reply must be delivered within this long, when the vendor gives no expiry of its own.
DEFAULT_REPLY_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class ReplyRoute:
    """Where the answer goes: an outbox endpoint (``kind``, ``address``, stored ``config`` with
    secrets by env-var NAME) plus per-message settings (``reply_to``: a vendor reply URL) and the
    time after which a reply is useless (``not_after``)."""

    kind: str
    address: str
    config: Mapping[str, Any] | None = None
    reply_to: Mapping[str, Any] | None = None
    not_after: datetime | None = None


@dataclass(frozen=True)
class Inbound:
    """An authenticated chat message, vendor-neutral."""

    vendor: str
    event_id: str
    chat_id: str
    text: str
    route: ReplyRoute
    mentioned: bool = False
    sender: str = ""
    title: str = ""
    bot_names: tuple[str, ...] = field(default_factory=tuple)


def vendor_config(app: web.Application, vendor: str) -> dict[str, Any] | None:
    """The vendor's inbound settings with ``*_env`` secrets resolved, or None when the vendor is
    not configured (its route then answers 404)."""
    raw = app[keys.SETTINGS].inbound.get(vendor)
    if raw is None:
        return None
    return resolve_env(raw, app.get(ENV))


#: Environment override for secret resolution (tests); defaults to the process environment.
ENV = web.AppKey("inbound_env", dict)


class ReplyCache:
    """Built replies, kept ``ttl_s`` seconds (monotonic) per (command, projects): a burst of the
    same question in many chats reads the database once, and a reply is never more than
    ``ttl_s`` seconds staler than the data (0 turns the cache off)."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self._items: dict[tuple[str, tuple[int, ...]], tuple[float, Any]] = {}
        self._locks: dict[tuple[str, tuple[int, ...]], asyncio.Lock] = {}

    async def get(self, key: tuple[str, tuple[int, ...]], build: Callable[[], Awaitable[Any]]) -> Any:
        if self.ttl_s <= 0:
            return await build()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent askers wait for one build instead of each building
            hit = self._items.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            value = await build()
            self._items[key] = (time.monotonic() + self.ttl_s, value)
            return value


REPLY_CACHE = web.AppKey("inbound_reply_cache", ReplyCache)
#: (kind, address, name, config JSON) → id of the reply endpoint, once committed.
KNOWN_ENDPOINTS = web.AppKey("inbound_known_endpoints", dict)


def log_request(vendor: str, outcome: str, *, status: int, started: float, **fields: Any) -> None:
    """One line per inbound request: vendor, outcome, HTTP status, milliseconds and safe fields
    (ids and the command only)."""
    extra = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
    log.info(
        "inbound %s %s status=%d ms=%.0f %s",
        vendor,
        outcome,
        status,
        (time.perf_counter() - started) * 1000,
        extra,
    )


async def handle(app: web.Application, msg: Inbound) -> str:
    """Answer ``msg`` through the outbox. Returns the outcome: ``replied``, ``help``,
    ``unconnected``, ``ignored``, ``duplicate`` or ``refused: …`` (a reply URL that is not the
    vendor's: nothing is called)."""
    command = parse(msg.text, bot_names=msg.bot_names, mentioned=msg.mentioned)
    if command is None:
        return "ignored"
    url = (msg.route.reply_to or {}).get("url")
    if url is not None:
        base = app[keys.SETTINGS].channel_base_urls.get(BASE_OF.get(msg.route.kind, ""))
        if not reply_url_allowed(msg.route.kind, str(url), base):
            return "refused: reply URL not the vendor's"
    sm = app[keys.SESSIONMAKER]
    # Reads go to the read engine (SQLite: concurrent with the one writer connection, which the
    # delivery worker and the write below need); only the final transaction writes.
    rsm = app[keys.READ_SESSIONMAKER]
    now = app[keys.CLOCK]()
    async with rsm() as session:
        # No "already seen?" read first: a replay is rare, and the unique row claimed below
        # answers it once anyway (its reply, if built, comes from the cache).
        projects = await chats.connected_projects(session, msg.vendor, msg.chat_id)
    settings = app[keys.SETTINGS]
    if not projects:
        message, outcome = unconnected_message(msg.vendor, msg.chat_id), "unconnected"
    elif command.name == "help":
        message, outcome = help_message(projects, unknown=command.unknown), "help"
    else:
        message = await app[REPLY_CACHE].get(
            (command.name, tuple(p.id or 0 for p in projects)),
            lambda: build_reply(
                rsm, command.name, projects, now=now, public_url=settings.public_url, secret=app[keys.SECRET]
            ),
        )
        outcome = "replied"
    extra: dict[str, Any] = {"kind": "reply", "command": command.name}
    if msg.route.reply_to:
        extra[REPLY_TO_KEY] = dict(msg.route.reply_to)
    payload = message_to_payload(message, **extra)
    known = app[KNOWN_ENDPOINTS]
    async with transaction(sm) as session:
        if not await chats.claim_event(
            session,
            msg.vendor,
            msg.event_id,
            now=now,
            chat_id=msg.chat_id,
            command=command.name,
            outcome=outcome,
        ):
            return "duplicate"
        await chats.record_seen(
            session, msg.vendor, msg.chat_id, now=now, title=msg.title, text=msg.text, sender=msg.sender
        )
        name = f"{msg.vendor} {msg.title or msg.chat_id}"[:200]
        config = dict(msg.route.config) if msg.route.config is not None else None
        ep_key = (msg.route.kind, msg.route.address, name, json.dumps(config, sort_keys=True))
        endpoint_id = known.get(ep_key)
        if endpoint_id is None:
            endpoint = await ensure_endpoint(
                session, msg.route.kind, msg.route.address, name=name, config=config
            )
            assert endpoint.id is not None
            endpoint_id = endpoint.id
        await enqueue(
            session,
            dedupe_key=f"reply:{msg.vendor}:{msg.event_id}"[:200],
            endpoint_id=endpoint_id,
            kind="reply",
            payload=payload,
            now=now,
            not_after=msg.route.not_after or now + DEFAULT_REPLY_TTL,
            project_id=projects[0].id if projects else None,
        )
    # Remembered only once committed: the endpoint row exists and holds this name and config, so
    # the next reply to the chat skips ensure_endpoint's two statements.
    known[ep_key] = endpoint_id
    wake(app)
    return outcome
