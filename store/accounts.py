"""Console accounts: argon2id passwords, server-side sessions, login throttling.

- **Passwords** are hashed with argon2id (``argon2-cffi``'s defaults: RFC 9106 low-memory profile);
  a hash made with older parameters is upgraded on the next successful login. Hashing is CPU
  work: async callers run :func:`hash_password`/:func:`verify_password` in a thread.
- **Sessions** are rows: the cookie holds 256 random bits, the table only their SHA-256. A session
  ends at ``expires_at`` (:data:`SESSION_MAX` after login), after :data:`SESSION_IDLE` without a
  request, on logout, and for every session of an account whose password changes or that is
  disabled.
- **Login throttling** counts failures in the last :data:`THROTTLE_WINDOW`, in the database (so
  several replicas share it): per (account, client) :data:`MAX_PER_PAIR`, per client across all
  accounts :data:`MAX_PER_CLIENT`, per account across all clients :data:`MAX_PER_ACCOUNT`. A client
  guessing one account's password is stopped after a few tries without touching anyone else; the
  per-account ceiling is high, so locking a colleague out takes many clients, and even then it
  lasts one window and other accounts keep working. Throttled attempts are refused before the
  password is checked (so they cost no argon2 time) and are not counted again.

Functions take the session first and never commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.errors import Conflict, Invalid, NotFound
from store.models import Account, ConsoleSession, LoginFailure

ROLES: tuple[str, ...] = ("admin", "coordinator")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

SESSION_MAX = timedelta(hours=12)
SESSION_IDLE = timedelta(hours=2)
#: ``last_seen_at`` is rewritten at most this often, so page views are not all writes.
TOUCH_EVERY = timedelta(minutes=1)

THROTTLE_WINDOW = timedelta(minutes=15)
MAX_PER_PAIR = 5
MAX_PER_CLIENT = 30
MAX_PER_ACCOUNT = 100

_HASHER = PasswordHasher()  # argon2id
#: verified against when the account does not exist, so timing does not reveal which names exist
_DUMMY_HASH = _HASHER.hash("not-a-real-password-0000")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME_RE.match(name):
        raise Invalid(
            "用户名应为1–64个字母、数字或 _ . @ -（以字母或数字开头）",
            "user name must be 1–64 letters, digits or _ . @ - (starting with a letter or digit)",
            where="name",
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        raise Invalid(
            f"密码长度应为 {MIN_PASSWORD}–{MAX_PASSWORD} 个字符",
            f"the password must be {MIN_PASSWORD}–{MAX_PASSWORD} characters",
            where="password",
        )
    if any(ord(c) < 32 for c in password):
        raise Invalid(
            "密码不能包含控制字符", "the password must not contain control characters", where="password"
        )
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise Invalid(
            f"角色 {role!r} 无效，应为 admin 或 coordinator",
            f"role {role!r} is invalid: admin or coordinator expected",
            where="role",
        )
    return role


# ---------------------------------------------------------------------------- accounts


async def find_account(session: AsyncSession, name: str) -> Account | None:
    return (await session.execute(select(Account).where(Account.name == name.strip()))).scalar_one_or_none()


async def get_account(session: AsyncSession, name: str) -> Account:
    row = await find_account(session, name)
    if row is None:
        raise NotFound(f"用户不存在：{name}", f"no such user: {name}", where="user")
    return row


async def list_accounts(session: AsyncSession) -> list[Account]:
    return list((await session.execute(select(Account).order_by(Account.name))).scalars())


async def create_account(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    password_hash: str,
    all_projects: bool = False,
    now: datetime,
) -> Account:
    """Create an account from an already computed hash (hash off the event loop first)."""
    name = check_name(name)
    check_role(role)
    if await find_account(session, name) is not None:
        raise Conflict(f"用户已存在：{name}", f"user already exists: {name}", where="name")
    row = Account(
        name=name,
        role=role,
        password_hash=password_hash,
        all_projects=all_projects,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def set_password(session: AsyncSession, account: Account, *, password_hash: str, now: datetime) -> None:
    """Replace the password and end every session of the account."""
    account.password_hash = password_hash
    account.updated_at = now
    await revoke_sessions(session, account.id or 0, now=now)
    await session.flush()


async def disable_account(session: AsyncSession, account: Account, *, now: datetime) -> None:
    if account.disabled_at is None:
        account.disabled_at = now
        account.updated_at = now
    await revoke_sessions(session, account.id or 0, now=now)
    await session.flush()


# ---------------------------------------------------------------------------- sessions


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def open_session(session: AsyncSession, account: Account, *, client: str, now: datetime) -> str:
    """A new session for ``account``; returns the cookie value (shown once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            token_hash=_hash(token),
            account_id=account.id or 0,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_MAX,
            client=client[:64],
        )
    )
    await session.flush()
    return token


@dataclass
class LiveSession:
    row: ConsoleSession
    account: Account


async def resume_session(session: AsyncSession, token: str, *, now: datetime) -> LiveSession | None:
    """The live session for a cookie value, or None (unknown, expired, idle, revoked, disabled)."""
    if not token or len(token) > 100:
        return None
    found = (
        await session.execute(
            select(ConsoleSession, Account)
            .join(Account, Account.id == ConsoleSession.account_id)
            .where(ConsoleSession.token_hash == _hash(token))
        )
    ).first()
    if found is None:
        return None
    row, account = found
    if (
        row.revoked_at is not None
        or account.disabled_at is not None
        or now >= row.expires_at
        or now - row.last_seen_at >= SESSION_IDLE
    ):
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        await session.flush()
    return LiveSession(row, account)


async def close_session(session: AsyncSession, token: str, *, now: datetime) -> None:
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.token_hash == _hash(token), ConsoleSession.revoked_at.is_(None))  # type: ignore[union-attr]
        .values(revoked_at=now)
    )


async def revoke_sessions(session: AsyncSession, account_id: int, *, now: datetime) -> None:
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.account_id == account_id, ConsoleSession.revoked_at.is_(None))  # type: ignore[union-attr]
        .values(revoked_at=now)
    )


# ---------------------------------------------------------------------------- throttle


async def login_throttled(session: AsyncSession, *, name: str, client: str, now: datetime) -> bool:
    """True when this (account, client) must wait: too many recent failures for the pair, the
    client, or the account (see the module docstring)."""
    since = now - THROTTLE_WINDOW
    recent = select(func.count()).select_from(LoginFailure).where(LoginFailure.at > since)
    pair = await session.scalar(
        recent.where(LoginFailure.account_name == name, LoginFailure.client == client)
    )
    if (pair or 0) >= MAX_PER_PAIR:
        return True
    per_client = await session.scalar(recent.where(LoginFailure.client == client))
    if (per_client or 0) >= MAX_PER_CLIENT:
        return True
    per_account = await session.scalar(recent.where(LoginFailure.account_name == name))
    return (per_account or 0) >= MAX_PER_ACCOUNT


async def record_failure(session: AsyncSession, *, name: str, client: str, now: datetime) -> None:
    session.add(LoginFailure(account_name=name[:64], client=client[:64], at=now))
    # Old rows are useless: prune opportunistically so the table stays small.
    await session.execute(delete(LoginFailure).where(LoginFailure.at < now - 4 * THROTTLE_WINDOW))
    await session.flush()


async def clear_failures(session: AsyncSession, *, name: str, client: str) -> None:
    """A successful login forgives this pair's failures (not the client's or the account's)."""
    await session.execute(
        delete(LoginFailure).where(LoginFailure.account_name == name, LoginFailure.client == client)
    )


def dummy_hash() -> str:
    return _DUMMY_HASH
