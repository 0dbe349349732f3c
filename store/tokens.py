"""Admin-API bearer tokens.

A token is ``jx_`` + 256 random bits (``secrets.token_urlsafe(32)``); the prefix lets secret
scanners recognise a leaked one. Only its SHA-256 is stored, so the database alone cannot be used
to call the API. The plain token is returned exactly once, by :func:`create_token`.

Roles: ``admin`` (everything on its projects) and ``coordinator`` (read-only). Each token is
granted projects (``store.access``); only an explicit ``all_projects`` admin token sees them all. Functions take the session first
and never commit (the caller owns the transaction).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.errors import Invalid, NotFound
from store.models import ApiToken

ROLES: tuple[str, ...] = ("admin", "coordinator")
TOKEN_PREFIX = "jx_"
#: ``last_used_at`` is rewritten at most this often per token, so reads do not all become writes.
TOUCH_EVERY = timedelta(minutes=1)


def hash_token(plain: str) -> str:
    """Hex SHA-256 of the token text (a fast hash is enough: the token has 256 bits of entropy)."""
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_token(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    now: datetime,
    projects: Sequence[int] = (),
    all_projects: bool = False,
) -> tuple[ApiToken, str]:
    """Create a token granted ``projects`` (ids), or every project with ``all_projects`` (admin
    tokens only). Returns the row and the plain token (shown once, never stored). A token with
    neither sees no project (see ``store.access``)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("令牌名称不能为空且不超过100字", "token name must be 1–100 characters", where="name")
    if role not in ROLES:
        raise Invalid(
            f"角色 {role!r} 无效，应为 admin 或 coordinator",
            f"role {role!r} is invalid: admin or coordinator expected",
            where="role",
        )
    if all_projects and role != "admin":
        raise Invalid(
            "只有管理员令牌可以访问全部项目（--all-projects）",
            "only an admin token may see every project (--all-projects)",
            where="all_projects",
        )
    plain = new_token()
    row = ApiToken(
        name=name, role=role, token_hash=hash_token(plain), created_at=now, all_projects=all_projects
    )
    session.add(row)
    await session.flush()
    if projects:
        from store.access import set_grants

        assert row.id is not None
        await set_grants(session, token_id=row.id, project_ids=projects, now=now)
    return row, plain


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list((await session.execute(select(ApiToken).order_by(ApiToken.id))).scalars())


async def get_token(session: AsyncSession, token_id: int) -> ApiToken:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"令牌不存在：{token_id}", f"no such token: {token_id}", where="token")
    return row


async def revoke_token(session: AsyncSession, token_id: int, *, now: datetime) -> ApiToken:
    """Revoke (idempotent: an already revoked token keeps its first revocation time)."""
    row = await get_token(session, token_id)
    if row.revoked_at is None:
        row.revoked_at = now
    await session.flush()
    return row


async def authenticate(session: AsyncSession, plain: str, *, now: datetime) -> ApiToken | None:
    """The live token matching ``plain``, or None (unknown or revoked).

    The lookup is by hash on a unique index, so timing reveals nothing about other tokens.
    ``last_used_at`` is updated at most every :data:`TOUCH_EVERY`.
    """
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    row = (
        await session.execute(select(ApiToken).where(ApiToken.token_hash == hash_token(plain)))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        row.last_used_at = now
        await session.flush()
    return row
