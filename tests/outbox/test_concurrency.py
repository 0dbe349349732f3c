"""Two workers on one database, and a worker killed mid-send: every message delivered, each row
sent by one worker only, duplicates at most the requests that were in flight at the kill."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from store.db import create_engine, make_sessionmaker, transaction
from store.models import DeliveryAttempt
from tests.waits import within

from .conftest import Rig, SlowWebhookFake, delivered_keys, kill, stop, until_idle


async def test_two_workers_on_one_database_never_send_a_row_twice(rig: Rig, db_url: str) -> None:
    fake = rig.fakes["webhook"]
    assert isinstance(fake, SlowWebhookFake)
    # The vendor holds its answers until six requests are in flight. Each worker holds one row per
    # endpoint (per_endpoint_hold=1, four endpoints) and sends at most three at once (concurrency=3),
    # so each reaches exactly three in flight, and six in flight means both are sending: "both really
    # worked" follows from the setup, not from how the machine happens to schedule the two loops.
    fake.hold = asyncio.Event()
    endpoints = [await rig.endpoint("webhook", f"hook-{i}") for i in range(4)]
    keys = [k for ep in endpoints for k in await rig.enqueue(ep, 15)]
    other_engine = create_engine(db_url)  # a second process would have its own engine and pool
    try:
        # Connect B before the race starts: a first PostgreSQL connect (tens of ms) let A take
        # everything in some runs, which proves nothing about two workers.
        async with other_engine.connect() as conn:
            await within(conn.exec_driver_sql("SELECT 1"), "worker B's engine connects")
        a = rig.worker(worker_id="A", concurrency=3, max_held=7, per_endpoint_hold=1)
        b = rig.worker(
            make_sessionmaker(other_engine), worker_id="B", concurrency=3, max_held=7, per_endpoint_hold=1
        )
        # Both run their real loops side by side (not run_until_idle: a claim that finds every due
        # row momentarily locked by the other worker would end that worker's run at once).
        a.start()
        b.start()
        try:
            await fake.wait_until(lambda f: len(f.received) >= 6, what="three sends in flight per worker")
            assert len(fake.received) == 6, "neither worker exceeds its three concurrent sends"
            fake.hold.set()
            await fake.wait_until(lambda f: len(f.delivered) >= len(keys), what="every row delivered")
        finally:
            fake.hold.set()  # never leave the workers' sends hanging on a failed wait
            await stop(a, b)
    finally:
        await other_engine.dispose()
    got = Counter(delivered_keys(fake))
    assert set(got) == set(keys)
    assert max(got.values()) == 1 and len(fake.received) == len(keys)
    assert a.stats["sent"] >= 3 and b.stats["sent"] >= 3  # both really worked
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
    await fake.wait_until(lambda f: len(f.received) == 4, what="four sends in flight (then the kill)")
    # Kill it: its run loop and every send in flight are cancelled, nothing gets recorded.
    await kill(doomed)
    assert task.cancelled()
    async with transaction(rig.sm) as s:
        in_flight = (
            await s.execute(select(func.count()).where(DeliveryAttempt.outcome == "in_flight"))
        ).scalar_one()
    assert in_flight == 4
    received_before = len(fake.received)

    fake.delay_s = 0.0
    heir = rig.worker(worker_id="heir")
    # The lease still holds: nothing is taken over early.
    assert await until_idle(heir, "a first look while the lease holds") == 0
    rig.clock.advance(seconds=121)
    await until_idle(heir, "the heir takes over the four rows after the lease")

    assert all(r.status == "sent" for r in await rig.rows())
    got = Counter(delivered_keys(fake))
    assert set(got) == set(keys)  # nothing lost
    duplicates = sum(n - 1 for n in got.values())
    assert duplicates == received_before == in_flight  # exactly the requests in flight at the kill
    ambiguous = [a for a in await rig.attempts() if a.outcome == "ambiguous"]
    assert len(ambiguous) == in_flight and all("lease expired" in a.excerpt for a in ambiguous)
