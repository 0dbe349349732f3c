"""Who am I: the caller's token (name, role) — handy to check a token works.

Authentication itself is in ``bot.api.common.require_role``: ``Authorization: Bearer <token>``,
only the token's SHA-256 is stored (``store.tokens``); tokens are created with the CLI
(``jixiao token create``), which is also how the first admin token is bootstrapped.
"""

from __future__ import annotations

from aiohttp import web

from bot.api.common import API, Call, Out, iso, ok


class MeOut(Out):
    id: int
    name: str
    role: str
    created_at: str


@API.op("GET", "/api/me", role="reader", tag="auth", summary="当前令牌 / the calling token", data=MeOut)
async def whoami(request: web.Request, call: Call) -> web.Response:
    t = call.token
    assert t is not None and t.id is not None
    return ok(MeOut(id=t.id, name=t.name, role=t.role, created_at=iso(t.created_at) or ""))
