"""Several replicas taking over expired leases at once, while the old owner's late results arrive:
on PostgreSQL every transaction locks outbox rows first, then their attempts, each in id order,
so none of them can deadlock (a deadlock was seen once with three workers before the order was
made consistent)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from store import outbox as store
from store.db import SessionMaker, create_engine, make_sessionmaker, transaction
from store.models import DeliveryAttempt

from .conftest import Rig

pytestmark = pytest.mark.pg

ROUNDS = 20
ROWS = 40
CLAIMERS = 3


@pytest.fixture
def pg_only(engine: AsyncEngine, db_url: str) -> str:
    if db_url.startswith("sqlite"):
        pytest.skip("row-lock order is PostgreSQL's concern (SQLite serialises writers)")
    return db_url


async def _claim(sm: SessionMaker, worker_id: str, now: datetime) -> list[int]:
    async with transaction(sm) as session:
        rows = await store.claim_due(session, now=now, worker_id=worker_id, lease_s=60, limit=ROWS)
        return [r.id for r in rows if r.id is not None]


async def _late_results(
    sm: SessionMaker, worker_id: str, starts: dict[int, tuple[int, int]], endpoint_id: int, now: datetime
) -> None:
    """The old owner's result writer finally commits what it delivered before its lease ran out."""
    async with transaction(sm) as session:
        await store.record_deliveries(
            session,
            results=[
                store.AttemptResult(attempt_id, now, "ok", 12.0)
                for attempt_id, _ in reversed(starts.values())
            ],
            sent=[store.Sent(message_id, endpoint_id, None, now) for message_id in reversed(starts)],
            worker_id=worker_id,
        )


async def test_replicas_taking_over_expired_leases_never_deadlock(rig: Rig, pg_only: str) -> None:
    endpoint = await rig.endpoint("webhook", "hook-leases")
    engines = [create_engine(pg_only) for _ in range(CLAIMERS + 1)]
    sms = [make_sessionmaker(e) for e in engines]
    t0 = datetime.now(UTC)
    try:
        for round_no in range(ROUNDS):
            await rig.enqueue(endpoint, ROWS, prefix=f"r{round_no}")
            old = f"old-{round_no}"
            now = t0 + timedelta(hours=round_no)
            async with transaction(rig.sm) as session:
                rows = await store.claim_due(session, now=now, worker_id=old, lease_s=1, limit=ROWS)
                starts = await store.record_attempt_starts(
                    session,
                    [store.AttemptStart(r.id, now) for r in rows if r.id is not None],
                    worker_id=old,
                    now=now,
                )
            assert len(starts) == ROWS
            later = now + timedelta(seconds=30)  # every lease has expired
            got = await asyncio.gather(
                _late_results(sms[0], old, starts, endpoint, later),
                *(_claim(sms[i], f"new-{round_no}-{i}", later) for i in range(1, CLAIMERS + 1)),
            )
            claimed = [mid for ids in got[1:] for mid in ids]
            assert len(claimed) == len(set(claimed)), "a row was taken over twice"
            async with transaction(rig.sm) as session:
                in_flight = await session.scalar(
                    select(func.count())
                    .select_from(DeliveryAttempt)
                    .where(
                        DeliveryAttempt.outbox_id.in_(list(starts)),  # type: ignore[attr-defined]
                        DeliveryAttempt.outcome == store.IN_FLIGHT,
                    )
                )
            assert in_flight == 0  # each attempt ended "ok" (late result) or "ambiguous" (taken over)
    finally:
        for e in engines:
            await e.dispose()
