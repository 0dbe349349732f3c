"""The outbox: every message that leaves the process is a row written in the caller's transaction.

``enqueue`` is idempotent by ``dedupe_key`` (``INSERT … ON CONFLICT DO NOTHING``), so a job that
runs twice, a retried request or a restart never sends twice. Dedupe key conventions:
``invite:{campaign}:{unit}``, ``remind:{campaign}:{unit}:{n}``, ``summary:{schedule}:{fire_iso}``.
The delivery worker (``bot.outbox``) claims, sends and records attempts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import ChannelEndpoint, OutboxMessage


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


async def ensure_endpoint(
    session: AsyncSession, kind: str, address: str, *, name: str = "", config: dict[str, Any] | None = None
) -> ChannelEndpoint:
    """The endpoint row for (kind, address), created if missing (race-safe)."""
    stmt = (
        _insert(session, ChannelEndpoint)
        .values(kind=kind, address=address, name=name, config=config or {}, consecutive_failures=0)
        .on_conflict_do_nothing(index_elements=["kind", "address"])
    )
    await session.execute(stmt)
    row = (
        await session.execute(
            select(ChannelEndpoint).where(ChannelEndpoint.kind == kind, ChannelEndpoint.address == address)
        )
    ).scalar_one()
    if config is not None and row.config != config:
        row.config = dict(config)
    if name and row.name != name:
        row.name = name
    return row


async def enqueue(
    session: AsyncSession,
    *,
    dedupe_key: str,
    endpoint_id: int,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    project_id: int | None = None,
    campaign_id: int | None = None,
    link_id: int | None = None,
) -> bool:
    """Add a message unless one with ``dedupe_key`` exists. Returns True when a row was added.

    ``payload`` is the platform-neutral message (JSON of ``bot.channels.message.Message``);
    ``not_before`` defers the first attempt (quiet hours); ``not_after`` is when it becomes useless.
    """
    stmt = (
        _insert(session, OutboxMessage)
        .values(
            dedupe_key=dedupe_key,
            endpoint_id=endpoint_id,
            kind=kind,
            payload=payload,
            status="pending",
            attempt_count=0,
            throttle_count=0,
            next_attempt_at=not_before or now,
            not_after=not_after,
            project_id=project_id,
            campaign_id=campaign_id,
            link_id=link_id,
            last_error="",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None
