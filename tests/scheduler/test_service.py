"""The scheduler service on a real database: re-sync without restart, catch-up after downtime,
exactly-once across two instances, failures recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from scheduler.service import JobDeps, SchedulerService
from store.cron import next_fire_times
from store.db import SessionMaker, create_engine, make_sessionmaker, transaction
from store.models import Campaign, OutboxMessage, ScheduleRun, ScoreSnapshot
from store.schedules import create_schedule, request_run, update_schedule
from tests.conftest import Clock
from tests.scheduler.conftest import CODE, TEST_SECRET, count, make_campaign
from tests.waits import DEADLINE_S, wait_until, wait_until_async, within

DEPS = JobDeps(secret=TEST_SECRET, public_url="https://jx.example.cn")
ENDPOINTS = [
    {"kind": "wecom", "address": "coordinators-1", "name": "协调群", "config": {"key_env": "WECOM_KEY"}}
]


async def started(svc: SchedulerService) -> None:
    await within(svc.start(), f"scheduler {svc.name} starts (first sync and catch-up)")


async def idle(svc: SchedulerService) -> None:
    """``svc.idle()`` with a deadline: its running jobs finish."""
    await within(
        svc.idle(), f"the jobs of scheduler {svc.name} finish", state=lambda: f"{len(svc._tasks)} running"
    )


async def stopped(svc: SchedulerService, *, grace: float = 30.0) -> None:
    """``svc.stop(grace=...)`` with a deadline beyond its own grace period for running jobs."""
    await within(svc.stop(grace=grace), f"scheduler {svc.name} stops", deadline_s=grace + DEADLINE_S)


def job_executed(svc: SchedulerService, schedule_id: int) -> asyncio.Event:
    """An event set when APScheduler reports the schedule's job finished (after its fire ran)."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

    event = asyncio.Event()
    job_id = svc.job_id(schedule_id)

    def listener(ev: object) -> None:
        if getattr(ev, "job_id", None) == job_id:
            event.set()

    assert svc.scheduler is not None
    svc.scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return event


def is_fire_time(cron: str, when: datetime) -> bool:
    """True if `when` is one of `cron`'s fire times in Shanghai."""
    return next_fire_times(cron, "Asia/Shanghai", now=when - timedelta(seconds=1), count=1)[0] == when


async def add(sm: SessionMaker, clock: Clock, kind: str, cron: str, **kw: object) -> int:
    async with transaction(sm) as session:
        row = await create_schedule(session, kind=kind, project=CODE, cron=cron, by="test", now=clock(), **kw)  # type: ignore[arg-type]
    assert row.id is not None
    return row.id


async def runs(sm: SessionMaker, schedule_id: int) -> list[ScheduleRun]:
    async with sm() as session:
        stmt = (
            select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id).order_by(ScheduleRun.fire_time)
        )
        return list((await session.execute(stmt)).scalars())


@pytest.fixture
async def service(sessionmaker, clock):
    svc = SchedulerService(sessionmaker, deps=DEPS, clock=clock, poll_seconds=0.05)
    await started(svc)
    yield svc
    await stopped(svc, grace=5)


async def test_new_and_changed_schedules_take_effect_without_restart(
    sessionmaker, project, clock, service
) -> None:
    # APScheduler plans from the wall clock, so the expected time is bracketed by wall-clock readings
    # taken before and after, instead of recomputed later (which fails if 09:00 passes in between).
    before = datetime.now(UTC)
    sid = await add(sessionmaker, clock, "recompute", "0 9 * * *")
    await wait_until(lambda: service.next_run_time(sid) is not None, what="the new schedule gets a job")
    planned = service.next_run_time(sid)
    assert planned is not None and is_fire_time("0 9 * * *", planned)
    first_after = next_fire_times("0 9 * * *", "Asia/Shanghai", now=before, count=1)[0]
    assert (
        first_after
        <= planned
        <= next_fire_times("0 9 * * *", "Asia/Shanghai", now=datetime.now(UTC), count=1)[0]
    )

    async with transaction(sessionmaker) as session:
        await update_schedule(session, sid, changes={"cron": "30 17 * * 1-5"}, by="test", now=clock())
    await wait_until(
        lambda: (t := service.next_run_time(sid)) is not None and is_fire_time("30 17 * * 1-5", t),
        what="the changed cron (17:30 on weekdays) replaces 09:00 daily",
    )

    async with transaction(sessionmaker) as session:
        await update_schedule(session, sid, changes={"enabled": False}, by="test", now=clock())
    await wait_until(lambda: service.next_run_time(sid) is None, what="the disabled schedule loses its job")


async def test_missed_fire_within_grace_runs_once_after_restart(sessionmaker, project, clock) -> None:
    clock.now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
    sid = await add(sessionmaker, clock, "recompute", "0 9 * * *", grace_seconds=3600)
    clock.now = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30: down at 09:00, back within the hour
    for _ in range(2):  # starting twice (a restart) must not run it again
        svc = SchedulerService(sessionmaker, deps=DEPS, clock=clock, poll_seconds=60)
        await started(svc)
        await idle(svc)
        await stopped(svc)
    (run,) = await runs(sessionmaker, sid)
    assert run.status == "ok" and run.fire_time == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    assert await count(sessionmaker, ScoreSnapshot) == 1


async def test_missed_fire_outside_grace_is_recorded_as_missed_and_not_run(
    sessionmaker, project, clock
) -> None:
    clock.now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    sid = await add(sessionmaker, clock, "recompute", "0 9 * * *", grace_seconds=600)
    clock.now = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 11:00, two hours late
    svc = SchedulerService(sessionmaker, deps=DEPS, clock=clock, poll_seconds=60)
    await started(svc)
    await idle(svc)
    await stopped(svc)
    (run,) = await runs(sessionmaker, sid)
    assert run.status == "missed" and "grace" in run.error
    assert await count(sessionmaker, ScoreSnapshot) == 0


async def test_fires_before_a_schedule_existed_are_not_caught_up(sessionmaker, project, clock) -> None:
    clock.now = datetime(2026, 3, 2, 1, 10, tzinfo=UTC)  # created at 09:10, after today's 09:00
    sid = await add(sessionmaker, clock, "recompute", "0 9 * * *")
    svc = SchedulerService(sessionmaker, deps=DEPS, clock=clock, poll_seconds=60)
    await started(svc)
    await idle(svc)
    await stopped(svc)
    assert await runs(sessionmaker, sid) == []


async def test_two_instances_on_one_database_run_each_fire_once_and_post_one_summary(
    db_url, sessionmaker, project, clock
) -> None:
    sid = await add(sessionmaker, clock, "summarise", "0 9 * * *", params={"endpoints": ENDPOINTS})
    # A second replica: its own engine and connection pool on the same database.
    other_engine = create_engine(db_url)
    other = make_sessionmaker(other_engine)
    clock.now = datetime(2026, 3, 3, 1, 0, 0, 5000, tzinfo=UTC)  # 09:00:00.005 next day
    a = SchedulerService(sessionmaker, deps=DEPS, clock=clock, poll_seconds=60, name="a")
    b = SchedulerService(other, deps=DEPS, clock=clock, poll_seconds=60, name="b")
    try:
        await asyncio.gather(started(a), started(b))
        # Both APSchedulers fire the job now, through APScheduler's own executor; wait for each to
        # report the job executed (its fire claimed and run, or lost to the other).
        executed = [job_executed(svc, sid) for svc in (a, b)]
        for svc in (a, b):
            svc.scheduler.modify_job(svc.job_id(sid), next_run_time=datetime.now(UTC))  # type: ignore[union-attr]
        await within(
            asyncio.gather(*(e.wait() for e in executed)),
            "APScheduler runs the job in both instances",
            state=lambda: f"executed: a={executed[0].is_set()}, b={executed[1].is_set()}",
        )
        await idle(a)
        await idle(b)
        # And the same fire claimed head-on by both at once.
        results = await within(
            asyncio.gather(
                a.fire(sid, datetime(2026, 3, 3, 1, 0, tzinfo=UTC)),
                b.fire(sid, datetime(2026, 3, 3, 1, 0, tzinfo=UTC)),
            ),
            "both instances claim the fire that already ran",
        )
    finally:
        await stopped(a)
        await stopped(b)
        await other_engine.dispose()
    assert sorted(status for _, status in results) == ["lost", "lost"]  # APScheduler's fire already ran it
    (run,) = await runs(sessionmaker, sid)
    assert run.status == "ok" and run.fire_time == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    summaries = await count(sessionmaker, OutboxMessage, OutboxMessage.kind == "summary")
    assert summaries == 1


async def test_concurrent_claims_of_one_fire_let_exactly_one_run(
    db_url, sessionmaker, project, clock
) -> None:
    sid = await add(sessionmaker, clock, "summarise", "*/5 * * * *", params={"endpoints": ENDPOINTS})
    engines = [create_engine(db_url) for _ in range(2)]
    services = [
        SchedulerService(make_sessionmaker(e), deps=DEPS, clock=clock, poll_seconds=60) for e in engines
    ]
    fire = datetime(2026, 3, 2, 1, 5, tzinfo=UTC)
    try:
        results = await within(
            asyncio.gather(*(s.fire(sid, fire) for s in services * 2)), "four head-on claims of one fire"
        )
    finally:
        for e in engines:
            await e.dispose()
    assert sorted(status for _, status in results) == ["lost", "lost", "lost", "ok"]
    assert await count(sessionmaker, OutboxMessage, OutboxMessage.kind == "summary") == 1


async def test_failing_job_is_recorded_and_the_next_fire_still_runs(
    sessionmaker, project, clock, service
) -> None:
    campaign = await make_campaign(sessionmaker, project, clock, launch=False, days=1)
    sid = await add(sessionmaker, clock, "launch", "0 * * * *", campaign_id=campaign.id)
    clock.advance(days=2)  # the campaign's window is over: launching it fails
    first = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
    _, status = await within(service.fire(sid, first), "the failing fire is recorded")
    assert status == "failed"
    async with transaction(sessionmaker) as session:  # the admin extends the window
        await session.execute(
            update(Campaign).where(Campaign.id == campaign.id).values(closes_at=clock() + timedelta(days=5))
        )
    _, status = await within(service.fire(sid, first + timedelta(hours=1)), "the next fire runs")
    assert status == "ok"
    failed, ok = await runs(sessionmaker, sid)
    assert failed.status == "failed" and "Conflict" in failed.error and "window is over" in failed.error
    assert ok.status == "ok" and ok.result == {"links_created": 121, "invitations": 121}
    assert service.scheduler is not None and service.scheduler.running


async def test_run_now_request_is_taken_by_the_scheduler(sessionmaker, project, clock, service) -> None:
    sid = await add(sessionmaker, clock, "recompute", "0 9 1 1 *")
    async with transaction(sessionmaker) as session:
        run_id = await request_run(session, sid, now=clock())
    service.poke()

    async def done() -> bool:
        return [r.status for r in await runs(sessionmaker, sid)] == ["ok"]

    await wait_until_async(done, what="the requested run is taken and finishes ok")
    (run,) = await runs(sessionmaker, sid)
    assert run.id == run_id and run.status == "ok" and run.result["changed"] is True  # type: ignore[index]


async def test_stop_waits_for_a_running_job(sessionmaker, project, clock) -> None:
    job_started, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def slow(schedule, code, fire_time, now):  # the network edge of a job: stands in for a slow send
        job_started.set()
        await release.wait()
        order.append("job finished")
        return {"done": True}

    sid = await add(sessionmaker, clock, "recompute", "0 9 * * *")
    svc = SchedulerService(sessionmaker, deps=DEPS, clock=clock, runner=slow, poll_seconds=60)
    await started(svc)
    task = svc.fire(sid, datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    await within(job_started.wait(), "the slow job starts")
    stopping = asyncio.create_task(svc.stop(grace=30))
    stopping.add_done_callback(lambda _: order.append("stop finished"))
    for _ in range(200):  # let stop() run as far as it can without the job (no wall-clock wait)
        await asyncio.sleep(0)
    assert order == [], "stop() returned while the job was still running"
    release.set()
    await within(stopping, "stop() returns once the job has finished")
    assert order == ["job finished", "stop finished"]
    assert task.done() and task.result()[1] == "ok"
    (run,) = await runs(sessionmaker, sid)
    assert run.status == "ok" and run.result == {"done": True}


@pytest.mark.pg
async def test_a_schedule_change_reaches_another_replica_through_notify_not_polling(
    sessionmaker, project, clock, db_url
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite schedulers poll")
    other_engine = create_engine(db_url)  # replica B: its own process, engine and listener
    b = SchedulerService(make_sessionmaker(other_engine), deps=DEPS, clock=clock, poll_seconds=3600)
    await started(b)
    try:
        await within(b.listening.wait(), "replica B's listener connects")
        b.synced.clear()
        sid = await add(sessionmaker, clock, "recompute", "7 * * * *")  # written by replica A
        await within(b.synced.wait(), "B re-syncs on A's NOTIFY")  # an hourly poll cannot explain this
        assert b.notifications >= 1 and b.next_run_time(sid) is not None
        b.synced.clear()
        async with transaction(sessionmaker) as session:
            await update_schedule(session, sid, changes={"cron": "9 * * * *"}, by="test", now=clock())
        await within(b.synced.wait(), "B re-syncs on the changed cron")
        job_fire = b.next_run_time(sid)
        assert job_fire is not None and job_fire.minute == 9
        # A "run now" request made on A is taken by B's scheduler, woken by the same channel.
        async with transaction(sessionmaker) as session:
            run_id = await request_run(session, sid, now=clock())
        status = "requested"

        async def taken() -> bool:
            nonlocal status
            async with sessionmaker() as session:
                status = await session.scalar(select(ScheduleRun.status).where(ScheduleRun.id == run_id))
            return status != "requested"

        await wait_until_async(taken, what="B takes the run requested on A", state=lambda: status)
        assert status in ("running", "ok", "failed") and b.notifications >= 3
        await idle(b)
    finally:
        await stopped(b, grace=5)
        await other_engine.dispose()


@pytest.mark.pg
async def test_the_listener_reconnects_after_its_backend_is_killed(
    sessionmaker, project, clock, db_url
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    import asyncpg
    from sqlalchemy.engine import make_url

    import scheduler.service as service_module

    service_module.LISTEN_RETRY_SECONDS = 0.05
    b = SchedulerService(sessionmaker, deps=DEPS, clock=clock, poll_seconds=3600)
    await started(b)
    try:
        await within(b.listening.wait(), "the listener connects")
        name = make_url(db_url).database
        admin = make_url(db_url).set(drivername="postgresql", database="postgres")
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND query LIKE 'LISTEN%'"
            )
        finally:
            await conn.close()
        await wait_until(lambda: not b.listening.is_set(), what="the listener notices its backend died")
        await within(b.listening.wait(), "the listener reconnects")
        b.synced.clear()
        sid = await add(sessionmaker, clock, "recompute", "11 * * * *")
        await within(b.synced.wait(), "the reconnected listener re-syncs on a NOTIFY")
        assert b.next_run_time(sid) is not None
    finally:
        service_module.LISTEN_RETRY_SECONDS = 2.0
        await stopped(b, grace=5)
