"""Vendor caps held across replicas: the sliding logs live in PostgreSQL (``store.rate_buckets``),
so three delivery workers with their own engines (three ``jixiao serve`` processes) together stay
inside one robot's budget. The same rig with per-process limiters goes over the vendor's cap,
which is what the shared limiter prevents."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.base import RateSpec
from bot.channels.wecom import WeComAdapter
from bot.outbox import DeliveryWorker, RetryPolicy, limiter_for
from bot.ratelimit import RateLimiter, SharedRateLimiter, Slot, buckets_for, window_of
from store import outbox as store
from store.db import create_engine, make_sessionmaker, transaction
from store.rate_buckets import Change, RateWindows, Window
from tests.waits import wait_until_async, within

from .conftest import ENV, Rig, kill

#: PostgreSQL's shared row locks are what is tested: the SQLite variants are not collected.
pytestmark = pytest.mark.pg


@pytest.fixture
def pg_only(engine: AsyncEngine, db_url: str) -> str:
    """The URL of a migrated PostgreSQL database (skips on SQLite)."""
    if db_url.startswith("sqlite"):
        pytest.skip("the shared limiter is PostgreSQL's (SQLite is one machine)")
    return db_url


async def _replica_engines(url: str, n: int) -> list[AsyncEngine]:
    engines = [create_engine(url) for _ in range(n)]
    for engine in engines:
        async with engine.connect():
            pass  # connected before the race starts
    return engines


async def test_concurrent_acquires_from_three_replicas_take_exactly_the_budget(pg_only: str) -> None:
    engines = await _replica_engines(pg_only, 3)
    try:
        windows = [RateWindows(e) for e in engines]
        spec = [Window("ep:1|5/10", 5, 10.0)]
        verdicts = await asyncio.gather(*(windows[i % 3].acquire(spec, now=1000.0) for i in range(30)))
        assert sum(v.ok for v in verdicts) == 5
        refused = [v for v in verdicts if not v.ok]
        assert all(v.wait_s == pytest.approx(10.0) for v in refused)
        # Still full 9.9 s later; room again once the first sends leave the window.
        assert not (await windows[1].acquire(spec, now=1009.9)).ok
        later = await asyncio.gather(*(windows[i % 3].acquire(spec, now=1010.0) for i in range(30)))
        assert sum(v.ok for v in later) == 5
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_send_must_fit_every_window_or_takes_none(pg_only: str) -> None:
    engines = await _replica_engines(pg_only, 1)
    try:
        windows = RateWindows(engines[0])
        per_second, per_minute = Window("ep:2|2/1", 2, 1.0), Window("ep:2|3/60", 3, 60.0)
        results = [await windows.acquire([per_second, per_minute], now=t) for t in (0.0, 0.1, 0.2, 5.0)]
        assert [r.ok for r in results] == [True, True, False, True]
        # The refused one recorded nothing: the per-minute window holds 3, not 4.
        assert len(results[-1].live["ep:2|3/60"]) == 3
        assert not (await windows.acquire([per_second, per_minute], now=6.0)).ok
    finally:
        await engines[0].dispose()


async def test_batch_reservations_from_three_replicas_never_exceed_the_budget(pg_only: str) -> None:
    engines = await _replica_engines(pg_only, 3)
    try:
        windows = [RateWindows(e) for e in engines]
        spec = [Window("ep:4|10/10", 10, 10.0)]
        grants = await asyncio.gather(
            *(windows[i % 3].reserve(spec, now=1000.0, until=1002.0, want=1 + i % 4) for i in range(12))
        )
        assert sum(g.granted for g in grants) == 10  # batches of 1–4, cut to what is left
        assert all(g.granted <= 1 + i % 4 for i, g in enumerate(grants))
        # Booked slots are logged at ``until`` (the latest send time), so the window stays full
        # until 10 s after it, whatever the batches did.
        assert not (await windows[0].reserve(spec, now=1011.9, want=5)).ok
        assert (await windows[0].reserve(spec, now=1012.0, want=5)).granted == 5
    finally:
        for engine in engines:
            await engine.dispose()


async def test_settling_lowers_used_slots_and_removes_unused_ones_only(pg_only: str) -> None:
    engines = await _replica_engines(pg_only, 2)
    try:
        a, b = RateWindows(engines[0]), RateWindows(engines[1])
        spec = [Window("ep:3|4/10", 4, 10.0)]
        assert (await a.reserve(spec, now=100.0, until=105.0, want=2)).granted == 2
        assert (await b.reserve(spec, now=100.0, until=105.0, want=2)).granted == 2  # same float
        # Replica a sent one request at 101.0 and will not use its other slot.
        await a.settle([Change("ep:3|4/10", 105.0, 101.0), Change("ep:3|4/10", 105.0)])
        grant = await b.reserve(spec, now=102.0, until=102.0, want=4)
        # b's two identical slots are untouched (one occurrence removed per change).
        assert grant.granted == 1 and grant.live["ep:3|4/10"] == [101.0, 105.0, 105.0, 102.0]
        with pytest.raises(ValueError):
            await a.settle([Change("ep:3|4/10", 105.0, 106.0)])  # never later than booked
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_replica_dying_with_booked_slots_only_delays_the_others(pg_only: str) -> None:
    engines = await _replica_engines(pg_only, 2)
    try:
        bucket = buckets_for(7, "wecom", (RateSpec(6, 10.0),))
        dying = SharedRateLimiter(RateWindows(engines[0]), hold_s=3.0)
        survivor = SharedRateLimiter(RateWindows(engines[1]), hold_s=0.5)
        slot = await dying.reserve(bucket, 1000.0, want=4)
        assert isinstance(slot, Slot) and dying.stats["granted"] == 4
        assert slot.until is not None and slot.until >= 1003.0
        booked_until = slot.until
        assert await dying.take(slot, 1000.5) == 0.0
        await dying.flush()  # its one send is logged at 1000.5
        # The process dies: three slots booked and unused, never handed back.
        await engines[0].dispose()
        got = [await survivor.reserve(bucket, 1001.0) for _ in range(3)]
        assert [isinstance(g, Slot) for g in got] == [True, True, False]
        assert got[2] == pytest.approx(1000.5 + 10.0 - 1001.0)  # until the real send leaves
        window = [window_of(bucket[0])]
        # Then only one slot frees: the dead replica's three still count until 10 s after their
        # ``until``, and the survivor's two until 10 s after theirs.
        assert (await RateWindows(engines[1]).reserve(window, now=1011.0, want=6)).granted == 1
        later = await RateWindows(engines[1]).reserve(window, now=booked_until + 10.0, want=6)
        assert later.granted == 5
        await survivor.close()
    finally:
        for engine in engines[1:]:
            await engine.dispose()


async def test_a_stale_slot_is_handed_back_and_a_fresh_one_booked(pg_only: str) -> None:
    engines = await _replica_engines(pg_only, 1)
    try:
        bucket = buckets_for(8, "wecom", (RateSpec(2, 10.0),))
        limiter = SharedRateLimiter(RateWindows(engines[0]), hold_s=1.0)
        slot = await limiter.reserve(bucket, 2000.0, want=2)
        assert isinstance(slot, Slot) and slot.until is not None and 2001.0 <= slot.until < 2001.5
        # The attempt start took too long: the request may not leave on a slot booked until then.
        assert await limiter.take(slot, 2001.5) == 0.0
        assert slot.until == pytest.approx(2001.5) and slot.at == 2001.5
        # Booked 2; the fresh booking first found the window full of its own handed-back slots,
        # wrote those corrections and asked again.
        assert limiter.stats["reserve_statements"] == 3 and limiter.stats["settle_statements"] == 1
        await limiter.close()  # hands back the unused second slot, settles the stale one
        grant = await RateWindows(engines[0]).reserve([window_of(bucket[0])], now=2002.0, want=2)
        assert grant.granted == 1 and grant.live[window_of(bucket[0]).key] == [2001.5, 2002.0]
    finally:
        await engines[0].dispose()


class FastWeCom(WeComAdapter):
    """WeCom with a compressed budget (9 per 2 s against the fake's 10) so the test runs on
    the real clock in seconds: a virtual clock shared by three workers would jump forward while
    another worker's request is in flight, which no real vendor window does."""

    limits = (RateSpec(9, 2.0),)


async def _deliver_with_three_workers(rig: Rig, url: str, *, shared: bool) -> dict[str, int]:
    fake = rig.fakes["wecom"]
    fake.clock = time.time
    fake.rate_limit = (10, 2.0)
    rig.clock.now = datetime.now(UTC)  # the workers run on the real clock
    endpoint = await rig.endpoint("wecom", "robot-shared")
    keys = await rig.enqueue(endpoint, 30)
    engines = await _replica_engines(url, 3)
    adapter = FastWeCom(timeout=aiohttp.ClientTimeout(total=10))
    workers = []
    for i, engine in enumerate(engines):
        sm = make_sessionmaker(engine)
        limiter = limiter_for(sm) if shared else RateLimiter()
        assert isinstance(limiter, SharedRateLimiter) == shared
        workers.append(
            DeliveryWorker(
                sm,
                {"wecom": adapter},
                rig.http,
                worker_id=f"replica-{i}",
                limiter=limiter,
                env=ENV,
                poll_s=0.05,
                rand=random.Random(i),
                max_hold_s=3600,
                policy=RetryPolicy(max_throttles=1000),
            )
        )
    try:
        for worker in workers:
            worker.start()
        await fake.wait_until(
            lambda f: len(f.delivered) >= len(keys) or bool(f.over_limit and not shared),
            what=f"all {len(keys)} messages delivered by three replicas on the real clock",
            deadline_s=120,
        )
    finally:
        await within(asyncio.gather(*(w.stop(5) for w in workers)), "the three replicas stop")
        for engine in engines:
            await engine.dispose()
    accepted = sorted(r.at for r in fake.delivered)
    busiest = max(sum(1 for t in accepted[i:] if t < start + 2.0) for i, start in enumerate(accepted))
    return {"delivered": len(fake.delivered), "over_limit": fake.over_limit, "busiest_window": busiest}


async def test_three_replicas_sharing_the_database_limiter_never_exceed_a_robots_cap(
    rig: Rig, pg_only: str
) -> None:
    got = await _deliver_with_three_workers(rig, pg_only, shared=True)
    assert got["delivered"] == 30 and got["over_limit"] == 0, got
    assert got["busiest_window"] <= 10, got


async def _crash(worker: DeliveryWorker, engine: AsyncEngine) -> None:
    """The replica's process dies: every task stops where it is (``kill``), nothing is handed back
    or settled (booked slots stay logged in the database), its connections go away."""
    limiter = worker.limiter
    assert isinstance(limiter, SharedRateLimiter)
    mine = [limiter._flusher, *(pool.booking for pool in limiter._pools.values())]
    alive = [t for t in mine if t is not None and not t.done()]
    for task in alive:
        task.cancel()
    await kill(worker)
    await within(asyncio.gather(*alive, return_exceptions=True), "the dead limiter's tasks end")
    limiter._changes.clear()
    limiter._pools.clear()
    await engine.dispose()


async def test_a_replica_dying_with_booked_slots_keeps_the_cap_and_loses_nothing(
    rig: Rig, pg_only: str
) -> None:
    fake = rig.fakes["wecom"]
    fake.clock = time.time
    fake.rate_limit = (10, 2.0)
    rig.clock.now = datetime.now(UTC)
    endpoint = await rig.endpoint("wecom", "robot-crash")
    n = 40
    await rig.enqueue(endpoint, n)
    engines = await _replica_engines(pg_only, 3)
    adapter = FastWeCom(timeout=aiohttp.ClientTimeout(total=10))
    workers = [
        DeliveryWorker(
            make_sessionmaker(engine),
            {"wecom": adapter},
            rig.http,
            worker_id=f"replica-{i}",
            limiter=limiter_for(make_sessionmaker(engine)),
            env=ENV,
            poll_s=0.05,
            lease_s=3.0,  # the dead replica's rows are taken over after 3 s
            rand=random.Random(i),
            max_hold_s=3600,
            policy=RetryPolicy(max_throttles=1000),
        )
        for i, engine in enumerate(engines)
    ]
    dead = workers[0]
    crashed = False
    try:
        # The doomed replica starts alone, so it is the one holding rows and booked slots when it
        # dies (started together, the others could claim every row first and it would never book:
        # seen once in CI). The others start while it holds them, then it dies.
        dead.start()
        limiter = dead.limiter
        assert isinstance(limiter, SharedRateLimiter)
        await fake.wait_until(
            lambda f: dead.stats["requests"] >= 1 and any(p.untils for p in limiter._pools.values()),
            what="the first replica sending with slots booked and unused",
        )
        for worker in workers[1:]:
            worker.start()
        await _crash(dead, engines[0])
        crashed = True

        async def all_sent() -> bool:
            async with transaction(rig.sm) as session:
                return (await store.outbox_stats(session))["sent"] >= n

        await wait_until_async(
            all_sent,
            what=f"all {n} rows sent by the two surviving replicas",
            deadline_s=120,
            state=lambda: "; ".join(f"{w.worker_id}: {w.stats}" for w in workers[1:]),
        )
    finally:
        running = workers[1:] if crashed else workers
        await within(asyncio.gather(*(w.stop(5) for w in running)), "the replicas stop")
        for engine in engines[1:]:
            await engine.dispose()
    async with transaction(rig.sm) as session:
        stats = await store.outbox_stats(session)
    assert stats["sent"] == n, stats
    assert fake.over_limit == 0
    accepted = sorted(r.at for r in fake.delivered)
    busiest = max(sum(1 for t in accepted[i:] if t < start + 2.0) for i, start in enumerate(accepted))
    assert busiest <= 10, accepted
