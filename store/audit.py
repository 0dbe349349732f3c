"""The audit log: every change made through the console (and the user commands of the CLI),
with who, when and what. Append-only; admins read it on the console's audit page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.access import Grants
from store.models import AuditEntry


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    now: datetime,
    project_id: int | None = None,
    object: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (so it exists exactly when the change does)."""
    row = AuditEntry(
        at=now,
        actor=actor[:100],
        action=action[:50],
        project_id=project_id,
        object=object[:200],
        detail=detail or {},
    )
    session.add(row)
    await session.flush()
    return row


async def list_entries(
    session: AsyncSession, grants: Grants, *, limit: int = 100, offset: int = 0
) -> list[AuditEntry]:
    """Newest first; entries of projects outside ``grants`` are left out (entries with no
    project — accounts, endpoints — only for callers who see every project)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)  # type: ignore[union-attr]
    if not grants.all_projects:
        stmt = stmt.where(grants.where(AuditEntry.project_id))
    return list((await session.execute(stmt)).scalars())
