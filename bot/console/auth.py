"""Who is looking at the console: login, logout, sessions, CSRF, roles and project grants.

- The session cookie ``jx_console`` (HttpOnly, SameSite=Lax, Secure on https, path ``/console``)
  carries 256 random bits; the row in ``console_session`` has only their hash
  (``store.accounts``), so the database alone cannot be used to log in.
- Every form carries a CSRF token: HMAC(server secret, "console-csrf:" + session id hash) for
  logged-in pages; the login form's token is bound to a random pre-login cookie instead (so a
  foreign site cannot log a browser in to an attacker's account). A POST without the right token
  gets 403 before anything else happens.
- :func:`page` wraps every handler: no session → redirect to the login page (``next`` kept);
  coordinator on an admin page → 403; a project the account is not granted → 404, the same
  answer as a project that does not exist (``store.access``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot import keys
from bot.console.i18n import LANG_COOKIE, lang_of, translator
from store.access import Grants, grants_of_account, visible_project
from store.accounts import (
    SESSION_MAX,
    clear_failures,
    close_session,
    dummy_hash,
    find_account,
    hash_password,
    login_throttled,
    needs_rehash,
    open_session,
    record_failure,
    resume_session,
    verify_password,
)
from store.audit import record
from store.db import transaction
from store.models import Account, Project

COOKIE = "jx_console"
PRE_COOKIE = "jx_console_pre"
PATH = "/console"

Handler = Callable[[web.Request, "Viewer"], Awaitable[web.StreamResponse]]


@dataclass
class Viewer:
    """The logged-in person for one request."""

    account: Account
    grants: Grants
    csrf: str
    lang: str

    @property
    def is_admin(self) -> bool:
        return self.account.role == "admin"

    @property
    def actor(self) -> str:
        return f"console:{self.account.name}"

    def t(self, text: str, **fields: Any) -> str:
        """``text`` (a catalogue phrase) in the viewer's language, ``{fields}`` filled in."""
        return translator(self.lang)(text, **fields)


VIEWER = web.RequestKey("console_viewer", Viewer)


def _mac(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:40]


def client_of(request: web.Request) -> str:
    """The client address used for login throttling (the peer; proxies are the app's concern)."""
    return (request.remote or "unknown")[:64]


def _secure(request: web.Request) -> bool:
    return request.secure or request.app[keys.SETTINGS].public_url.startswith("https://")


def set_cookie(resp: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    resp.set_cookie(
        name, value, max_age=max_age, path=PATH, httponly=True, samesite="Lax", secure=_secure(request)
    )


def security_headers(resp: web.StreamResponse) -> None:
    """No framing, no inline script, no caching of pages that hold project data."""
    resp.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("Cache-Control", "private, no-store")


async def current_viewer(request: web.Request) -> Viewer | None:
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        live = await resume_session(session, token, now=now)
        if live is None:
            return None
        grants = await grants_of_account(session, live.account)
    csrf = _mac(request.app[keys.SECRET], "console-csrf", live.row.token_hash)
    return Viewer(live.account, grants, csrf, lang_of(request))


async def check_csrf(request: web.Request, expected: str) -> Any:
    """The posted form (a multidict: repeated fields and files kept), after checking its CSRF
    token (403 otherwise)."""
    form = await request.post()
    given = str(form.get("csrf", ""))
    if not given or not hmac.compare_digest(given, expected):
        raise web.HTTPForbidden(text="CSRF token missing or wrong / 表单已过期，请刷新页面后重试")
    return form


def page(role: str = "reader") -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Decorator: resolve the viewer (or redirect to login), enforce the role and, for POST,
    CSRF. The handler reads the checked form from ``request["console_form"]``."""

    def deco(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            viewer = await current_viewer(request)
            if viewer is None:
                if request.method != "GET":
                    raise web.HTTPForbidden(text="session expired / 登录已过期")
                raise web.HTTPSeeOther(f"{PATH}/login?next={quote(request.path_qs, safe='')}")
            request[VIEWER] = viewer
            if "code" in request.match_info:
                # 404 for projects not granted, before the role check (no probing).
                async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
                    request[PROJECT] = await visible_project(
                        session, viewer.grants, request.match_info["code"]
                    )
            if role == "admin" and not viewer.is_admin:
                raise web.HTTPForbidden(text="admins only / 仅管理员")
            if request.method == "POST":
                request[FORM] = await check_csrf(request, viewer.csrf)
            resp = await fn(request, viewer)
            security_headers(resp)
            remember_lang(request, resp)
            return resp

        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler

    return deco


def remember_lang(request: web.Request, resp: web.StreamResponse) -> None:
    """``?lang=en|zh`` (the header's switch) is remembered for a year in the ``jx_lang`` cookie."""
    if request.query.get("lang") in ("en", "zh"):
        resp.set_cookie(LANG_COOKIE, request.query["lang"], path=PATH, max_age=365 * 86400, samesite="Lax")


PROJECT = web.RequestKey("console_project", Project)
FORM = web.RequestKey("console_form", object)


# ---------------------------------------------------------------------------- login / logout


def _safe_next(value: str) -> str:
    """Only local console paths (no scheme, no //host): an open redirect is a phishing aid."""
    if value.startswith(PATH + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PATH + "/"


async def login_form(
    request: web.Request, *, error: str = "", name: str = "", status: int = 200
) -> web.Response:
    from bot.console.render import render_page

    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(16)
    csrf = _mac(request.app[keys.SECRET], "console-login", pre)
    resp = render_page(
        request,
        None,
        "login.html",
        status=status,
        csrf=csrf,
        error=error,
        name=name,
        next=_safe_next(request.query.get("next", "")),
    )
    set_cookie(resp, request, PRE_COOKIE, pre, 3600)
    remember_lang(request, resp)
    security_headers(resp)
    return resp


async def login_page(request: web.Request) -> web.StreamResponse:
    if await current_viewer(request) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next", "")))
    return await login_form(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = dict(await request.post())
    pre = request.cookies.get(PRE_COOKIE, "")
    expected = _mac(request.app[keys.SECRET], "console-login", pre) if pre else ""
    given = str(form.get("csrf", ""))
    if not expected or not hmac.compare_digest(given, expected):
        raise web.HTTPForbidden(text="CSRF token missing or wrong / 表单已过期，请刷新页面后重试")
    t = translator(lang_of(request))
    name = str(form.get("name", "")).strip()[:64]
    password = str(form.get("password", ""))[:1024]
    client = client_of(request)
    now = request.app[keys.CLOCK]()
    sm = request.app[keys.SESSIONMAKER]
    async with transaction(sm) as session:
        if await login_throttled(session, name=name, client=client, now=now):
            return await login_form(request, error=t("尝试次数过多，请稍后再试"), name=name, status=429)
        account = await find_account(session, name) if name else None
    stored = account.password_hash if account is not None else dummy_hash()
    good = await asyncio.to_thread(verify_password, stored, password)
    if not good or account is None or account.disabled_at is not None:
        async with transaction(sm) as session:
            await record_failure(session, name=name, client=client, now=now)
        return await login_form(request, error=t("用户名或密码错误"), name=name, status=401)
    rehash = await asyncio.to_thread(hash_password, password) if needs_rehash(stored) else None
    async with transaction(sm) as session:
        account = await find_account(session, name)
        assert account is not None
        if rehash is not None:
            account.password_hash = rehash
        await clear_failures(session, name=name, client=client)
        token = await open_session(session, account, client=client, now=now)
        await record(session, actor=f"console:{name}", action="login", now=now, object=f"user:{name}")
    resp = web.HTTPSeeOther(_safe_next(str(form.get("next", ""))))
    set_cookie(resp, request, COOKIE, token, int(SESSION_MAX.total_seconds()))
    resp.del_cookie(PRE_COOKIE, path=PATH)
    raise resp


@page()
async def logout(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        await close_session(session, request.cookies.get(COOKIE, ""), now=now)
    resp = web.HTTPSeeOther(f"{PATH}/login")
    resp.del_cookie(COOKIE, path=PATH)
    raise resp
