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
from bot.ratelimit import RateLimiter, SharedRateLimiter
from store.db import create_engine, make_sessionmaker
from store.rate_buckets import RateWindows, Window
from tests.waits import within

from .conftest import ENV, Rig

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


async def test_a_reservation_moves_to_the_send_time_only_when_it_fits(pg_only: str) -> None:
    engines = await _replica_engines(pg_only, 1)
    try:
        windows = RateWindows(engines[0])
        spec = [Window("ep:3|2/10", 2, 10.0)]
        assert (await windows.acquire(spec, now=100.0)).ok
        assert (await windows.acquire(spec, now=101.0)).ok
        moved = await windows.acquire(spec, now=102.0, replacing=101.0)
        assert moved.ok and moved.live["ep:3|2/10"] == [100.0, 102.0]
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
