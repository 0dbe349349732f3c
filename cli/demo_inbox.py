"""The demo's stand-in for the chat apps: a local receiver of jixiao's signed webhooks.

``jixiao demo`` routes every unit's invitation and the coordinators' summary here (generic
webhook channel, signed), so the whole loop runs on one machine with no vendor account. It checks
each signature as a real receiver would (the scheme documented in bot/channels/webhook.py) and
shows what arrived at ``/`` — the summary as a coordinator's group would see it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SIGNATURE_HEADER = "X-Jixiao-Signature"
TIMESTAMP_HEADER = "X-Jixiao-Timestamp"
#: A receiver rejects timestamps further than this from its clock (replays), as documented.
MAX_SKEW_S = 300


@dataclass
class Inbox:
    """What arrived: unit invitations by unit key, group messages in order."""

    secret: bytes
    invitations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    group: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _verified(self, body: bytes, timestamp: str, header: str) -> bool:
        """HMAC-SHA256 over ``timestamp + "." + body``, compared in constant time, within 5 min."""
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
            return False
        message = timestamp.encode("ascii") + b"." + body
        expected = "sha256=" + hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, header)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        if not self._verified(body, headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")):
            self.rejected += 1
            return web.json_response({"ok": False, "error": "bad signature"}, status=401)
        message = json.loads(body)
        if request.match_info.get("key"):
            self.invitations.setdefault(request.match_info["key"], []).append(message)
        else:
            self.group.append(message)
        self.changed.set()
        return web.json_response({"ok": True, "id": f"m{len(self.group) + len(self.invitations)}"})

    async def page(self, request: web.Request) -> web.Response:
        items = "".join(
            f"<article><h2>{html.escape(m.get('title') or '')}</h2><pre>{html.escape(m.get('text') or '')}</pre>"
            + (
                f'<p><a href="{html.escape(m["link"]["url"])}">{html.escape(m["link"]["text"])}</a></p>'
                if m.get("link")
                else ""
            )
            + "</article>"
            for m in reversed(self.group)
        )
        body = (
            '<!doctype html><html lang="zh-CN"><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>演示群聊 demo group chat</title>"
            "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:1rem auto;padding:0 1rem}"
            "pre{white-space:pre-wrap;background:#f4f6f8;padding:.75rem;border-radius:6px}</style>"
            f"<h1>演示群聊 / demo group chat</h1><p>单位邀请 {len(self.invitations)} 个单位；"
            f"群消息 {len(self.group)} 条 / invitations to {len(self.invitations)} units, "
            f"{len(self.group)} group messages</p>{items}"
        )
        return web.Response(text=body, content_type="text/html")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/unit/{key}", self.receive)
        app.router.add_post("/group", self.receive)
        app.router.add_get("/", self.page)
        return app

    async def wait_for(self, predicate: Any, deadline_s: float) -> bool:
        """Wait until ``predicate()`` holds or ``deadline_s`` seconds pass; whether it held."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self.changed.clear()
            try:
                async with asyncio.timeout(remaining):  # not wait_for: it can swallow a cancel on 3.11
                    await self.changed.wait()
            except TimeoutError:
                return bool(predicate())
        return True
