"""Two workers on one database, and a worker killed mid-send: every message delivered, each row
sent by one worker only, duplicates at most the requests that were in flight at the kill."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from store.db import create_engine, make_sessionmaker, transaction
from store.models import DeliveryAttempt

from .conftest import Rig, SlowWebhookFake, delivered_keys


async def _until(predicate, *, limit_s: float = 10.0) -> None:
    """Wait (in real time) until predicate() is true; fails the test if it never becomes true."""
    for _ in range(int(limit_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_two_workers_on_one_database_never_send_a_row_twice(rig: Rig, db_url: str) -> None:
    fake = rig.fakes["webhook"]
    assert isinstance(fake, SlowWebhookFake)
    # Slow enough replies that one worker cannot drain the queue before the other's first claim.
    fake.delay_s = 0.03
    endpoints = [await rig.endpoint("webhook", f"hook-{i}") for i in range(4)]
    keys = [k for ep in endpoints for k in await rig.enqueue(ep, 15)]
    other_engine = create_engine(db_url)  # a second process would have its own engine and pool
    try:
        # Connect B before the race starts: a first PostgreSQL connect (tens of ms) let A take
        # everything in some runs, which proves nothing about two workers.
        async with other_engine.connect():
            pass
        a = rig.worker(worker_id="A", concurrency=3, max_held=7)
        b = rig.worker(make_sessionmaker(other_engine), worker_id="B", concurrency=3, max_held=7)
        # Both run their real loops side by side (not run_until_idle: a claim that finds every due
        # row momentarily locked by the other worker would end that worker's run at once).
        a.start()
        b.start()
        try:
            await _until(lambda: len(fake.received) >= len(keys), limit_s=30)
        finally:
            await asyncio.gather(a.stop(), b.stop())
    finally:
        await other_engine.dispose()
    got = Counter(delivered_keys(fake))
    assert set(got) == set(keys)
    assert max(got.values()) == 1 and len(fake.received) == len(keys)
    assert a.stats["sent"] > 0 and b.stats["sent"] > 0  # both really worked
    assert a.stats["sent"] + b.stats["sent"] == len(keys)


async def test_a_worker_killed_mid_send_is_taken_over_after_the_lease_without_losing_messages(
    rig: Rig,
) -> None:
    fake = rig.fakes["webhook"]
    assert isinstance(fake, SlowWebhookFake)
    endpoints = [await rig.endpoint("webhook", f"hook-{i}") for i in range(4)]
    keys = [k for ep in endpoints for k in await rig.enqueue(ep, 3)]
    fake.delay_s = 30.0  # replies hang: the vendor has the request, we never see the answer
    doomed = rig.worker(worker_id="doomed", concurrency=4, lease_s=120)
    task = doomed.start()
    await _until(lambda: len(fake.received) == 4)
    # Kill it: its run loop and every send in flight are cancelled, nothing gets recorded.
    task.cancel()
    for t in list(doomed._tasks):
        t.cancel()
    await asyncio.gather(task, *doomed._tasks, return_exceptions=True)
    async with transaction(rig.sm) as s:
        in_flight = (
            await s.execute(select(func.count()).where(DeliveryAttempt.outcome == "in_flight"))
        ).scalar_one()
    assert in_flight == 4
    received_before = len(fake.received)

    fake.delay_s = 0.0
    heir = rig.worker(worker_id="heir")
    assert await heir.run_until_idle() == 0  # the lease still holds: nothing is taken over early
    rig.clock.advance(seconds=121)
    await heir.run_until_idle()

    assert all(r.status == "sent" for r in await rig.rows())
    got = Counter(delivered_keys(fake))
    assert set(got) == set(keys)  # nothing lost
    duplicates = sum(n - 1 for n in got.values())
    assert duplicates == received_before == in_flight  # exactly the requests in flight at the kill
    ambiguous = [a for a in await rig.attempts() if a.outcome == "ambiguous"]
    assert len(ambiguous) == in_flight and all("lease expired" in a.excerpt for a in ambiguous)
