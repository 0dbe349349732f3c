"""The scheduler service: APScheduler 3.11 (AsyncIOScheduler, in-memory job store) rebuilt from
our own ``schedule`` table, with every fire claimed in ``schedule_run`` before it runs.

Why this shape (reference/stack-pitfalls.md §3):

- The job store is a ``MemoryJobStore`` rebuilt from the table on start and re-synced whenever the
  table's fingerprint (row count, version sum, latest ``updated_at``) changes — on an in-process
  poke after API writes, on PostgreSQL at once on every replica through ``LISTEN``/``NOTIFY``
  (``store.schedules.notify_schedulers`` announces each change and "run now" request on commit;
  a dedicated connection listens, reconnecting if it drops), and by polling every
  ``poll_seconds`` (SQLite; on PostgreSQL only every :data:`LISTEN_POLL_SECONDS` as a safety net
  while the listener is up). No pickled jobs, no shared store.
- Each fire inserts ``(schedule_id, fire_time)`` under a unique constraint (``ON CONFLICT DO
  NOTHING RETURNING``) and runs only if it got the row, so any number of replicas sharing one
  PostgreSQL database run every fire exactly once. (Leader election with an advisory lock would
  only save the losers a query; it is not needed for correctness and is not implemented.)
- APScheduler does not pass the scheduled time to a job; the job derives it from the trigger and
  the clock (``store.cron.last_fire_at_or_before``), so every replica names a fire identically.
- On start, the latest fire missed while the process was down runs once (coalesced) if it is
  within the schedule's ``grace_seconds``, and is recorded as ``missed`` otherwise.
- A job that raises is recorded (``failed`` + error text) and the scheduler carries on.
- ``shutdown(wait=True)`` does not wait for coroutine jobs, so stopping is: pause, await our own
  tracked job tasks up to a time limit, then shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from store.cron import build_trigger, last_fire_at_or_before
from store.db import SessionMaker, transaction
from store.models import Schedule
from store.schedules import (
    claim_run,
    find_schedule,
    finish_run,
    last_fire_time,
    list_schedules,
    project_code,
    record_missed,
    requested_runs,
    state_token,
    take_requested,
)

log = logging.getLogger("jixiao.scheduler")

#: While a PostgreSQL listener is connected, the fallback poll runs this rarely (seconds).
LISTEN_POLL_SECONDS = 30.0
#: Seconds between reconnect attempts of the listener, and between its liveness checks.
LISTEN_RETRY_SECONDS = 2.0
LISTEN_CHECK_SECONDS = 15.0

Clock = Callable[[], datetime]
#: A job runner: (schedule, project code, fire_time, now) → JSON-able result.
Runner = Callable[[Schedule, str, datetime, datetime], Awaitable[dict[str, Any] | None]]


def _set_event(event: asyncio.Event, *_: Any) -> None:
    event.set()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobDeps:
    """What the jobs need besides the database: the server secret (link tokens, report
    signatures) and the public base URL (report links)."""

    secret: bytes
    public_url: str


def default_runner(sm: SessionMaker, deps: JobDeps) -> Runner:
    """Dispatch a schedule to its job in ``scheduler.jobs`` by kind."""
    from scheduler import jobs

    async def run(schedule: Schedule, code: str, fire_time: datetime, now: datetime) -> dict[str, Any] | None:
        params = dict(schedule.params or {})
        if schedule.kind == "recompute":
            return await jobs.recompute_job(sm, code, now=now)
        if schedule.kind == "summarise":
            return await jobs.summarise(
                sm,
                code,
                schedule_id=schedule.id,  # type: ignore[arg-type]
                fire_time=fire_time,
                endpoints=list(params.get("endpoints") or []),
                now=now,
                report_url_base=deps.public_url,
                secret=deps.secret,
                params=params,
            )
        assert schedule.campaign_id is not None, "campaign schedules carry a campaign_id"
        if schedule.kind == "remind":
            return await jobs.remind(
                sm, schedule.campaign_id, now=now, secret=deps.secret, public_url=deps.public_url
            )
        if schedule.kind == "launch":
            return await jobs.launch(
                sm, schedule.campaign_id, now=now, secret=deps.secret, public_url=deps.public_url
            )
        if schedule.kind == "close":
            return await jobs.close(sm, schedule.campaign_id, now=now)
        raise ValueError(f"unknown schedule kind {schedule.kind!r}")

    return run


def _error_text(exc: BaseException) -> str:
    """The exception and the last frames: enough to diagnose, bounded for the run row."""
    tail = "".join(traceback.format_exception(exc)[-4:])
    return f"{type(exc).__name__}: {exc}\n{tail}"[:4000]


async def execute_fire(
    sm: SessionMaker,
    runner: Runner,
    schedule_id: int,
    fire_time: datetime,
    *,
    clock: Clock,
    run_id: int | None = None,
    force: bool = False,
) -> tuple[int | None, str]:
    """Claim ``(schedule_id, fire_time)`` and run it. Returns (run id, status); status is
    ``lost`` when another process already had the claim, ``skipped`` when the schedule is gone or
    paused (unless ``force``). Exceptions from the job are recorded, never raised."""
    now = clock()
    async with transaction(sm) as session:
        schedule = await find_schedule(session, schedule_id)
        if schedule is None or (not schedule.enabled and not force):
            if run_id is not None:
                await finish_run(
                    session, run_id, status="failed", now=now, error="schedule removed or paused"
                )
            return run_id, "skipped"
        code = await project_code(session, schedule)
        if run_id is None:
            run_id = await claim_run(session, schedule_id, fire_time, now=now)
            if run_id is None:
                return None, "lost"
    try:
        result = await runner(schedule, code, fire_time, now)
        status, error = "ok", ""
    except Exception as exc:  # a failing job must not stop the scheduler: record it
        log.exception("schedule %s (%s) fire %s failed", schedule_id, schedule.kind, fire_time.isoformat())
        result, status, error = None, "failed", _error_text(exc)
    async with transaction(sm) as session:
        await finish_run(session, run_id, status=status, now=clock(), error=error, result=result)
    return run_id, status


class SchedulerService:
    """One process's scheduler. ``start()`` must be called inside the running event loop."""

    def __init__(
        self,
        sm: SessionMaker,
        *,
        deps: JobDeps,
        clock: Clock | None = None,
        runner: Runner | None = None,
        poll_seconds: float = 2.0,
        name: str = "scheduler",
    ) -> None:
        self.sm = sm
        self.clock = clock or utc_now
        self.runner = runner or default_runner(sm, deps)
        self.poll_seconds = poll_seconds
        self.name = name
        self.scheduler: AsyncIOScheduler | None = None
        self._built: dict[int, int] = {}  # schedule id → version the job was built from
        self._token: tuple[int, int, str] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.syncs = 0  # how many times jobs were rebuilt (observability, tests)
        self.notifications = 0  # NOTIFYs received (PostgreSQL)
        #: Set while the PostgreSQL listener is connected (tests wait on it, never on time).
        self.listening = asyncio.Event()
        #: Set after each sync that rebuilt jobs; tests clear it and wait.
        self.synced = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.scheduler.start()
        await self.sync(force=True)
        await self.catch_up()
        self._poller = asyncio.create_task(self._poll_loop(), name=f"{self.name}-poll")
        engine = self.sm.kw.get("bind")
        if engine is not None and engine.dialect.driver == "asyncpg":
            self._listener = asyncio.create_task(self._listen_loop(engine), name=f"{self.name}-listen")

    def pause(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()

    async def stop(self, *, grace: float = 30.0) -> None:
        """Pause, wait up to ``grace`` seconds for running jobs, then shut APScheduler down."""
        self.pause()
        for task in (self._poller, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                log.warning("job task %s still running after %.0fs; cancelling", task.get_name(), grace)
                task.cancel()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # shutdown is deferred through call_soon_threadsafe

    def poke(self) -> None:
        """Ask for a re-sync now (after an in-process schedule write)."""
        self._wake.set()

    async def idle(self) -> None:
        """Wait until no job task is running (tests, benchmarks)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # ------------------------------------------------------------------ sync

    @staticmethod
    def job_id(schedule_id: int) -> str:
        return f"schedule-{schedule_id}"

    async def sync(self, *, force: bool = False) -> bool:
        """Rebuild jobs whose schedule changed; True if the table had changed."""
        assert self.scheduler is not None
        async with self.sm() as session, session.begin():
            token = await state_token(session)
            if token == self._token and not force:
                return False
            rows = [s for s, _ in await list_schedules(session, enabled_only=True)]
        live: set[int] = set()
        for s in rows:
            assert s.id is not None
            live.add(s.id)
            if self._built.get(s.id) == s.version and self.scheduler.get_job(self.job_id(s.id)):
                continue
            try:
                trigger = build_trigger(s.cron, s.timezone)
            except ValueError:  # validated on write; a hand-edited row must not stop the others
                log.error("schedule %s has an invalid cron %r; not scheduled", s.id, s.cron)
                continue
            if self.scheduler.get_job(self.job_id(s.id)):
                self.scheduler.remove_job(self.job_id(s.id))
            self.scheduler.add_job(
                self._on_fire,
                trigger,
                args=[s.id],
                id=self.job_id(s.id),
                name=f"{s.kind}#{s.id}",
                misfire_grace_time=max(1, s.grace_seconds),
                coalesce=True,
                max_instances=1,
            )
            self._built[s.id] = s.version
        for sid in list(self._built):
            if sid not in live:
                if self.scheduler.get_job(self.job_id(sid)):
                    self.scheduler.remove_job(self.job_id(sid))
                del self._built[sid]
        self._token = token
        self.syncs += 1
        self.synced.set()
        return True

    def next_run_time(self, schedule_id: int) -> datetime | None:
        assert self.scheduler is not None
        job = self.scheduler.get_job(self.job_id(schedule_id))
        return None if job is None else job.next_run_time

    async def _listen_loop(self, engine: Any) -> None:
        """PostgreSQL: LISTEN on a dedicated connection (not a pooled one: a listener must stay
        on one session); each NOTIFY wakes the poll loop. After every (re)connect one re-sync
        catches up with changes made while it was down."""
        import asyncpg
        from sqlalchemy.engine import make_url

        from store.schedules import NOTIFY_CHANNEL

        dsn = make_url(engine.url).set(drivername="postgresql").render_as_string(hide_password=False)

        def on_notify(*_: Any) -> None:
            self.notifications += 1
            self._wake.set()

        while True:
            conn = None
            try:
                conn = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(functools.partial(_set_event, lost))
                await conn.add_listener(NOTIFY_CHANNEL, on_notify)
                self.listening.set()
                self._wake.set()  # catch up with what changed before we listened
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LISTEN_CHECK_SECONDS):  # not wait_for: see _poll_loop
                            await lost.wait()
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1")  # a silently dead socket raises here
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: poll until it is back
                log.warning("schedule listener lost (%s); polling until it reconnects", type(exc).__name__)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def _poll_loop(self) -> None:
        while True:
            every = (
                max(self.poll_seconds, LISTEN_POLL_SECONDS) if self.listening.is_set() else self.poll_seconds
            )
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # arrives with a wake (a NOTIFY, a poke) (gh-86296), and stop() then waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync()
                await self.take_requests()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the loop
                log.exception("schedule sync failed; retrying in %.1fs", self.poll_seconds)

    # ------------------------------------------------------------------ fires

    def _track(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _on_fire(self, schedule_id: int) -> None:
        """Called by APScheduler. Derives the fire time and runs it in a tracked task (shielded:
        APScheduler cancels its own job coroutines at shutdown; ours get a grace period)."""
        now = self.clock()
        async with self.sm() as session, session.begin():
            schedule = await find_schedule(session, schedule_id)
        if schedule is None or not schedule.enabled:
            return
        fire_time = last_fire_at_or_before(build_trigger(schedule.cron, schedule.timezone), now)
        if fire_time is None:
            return
        await asyncio.shield(self.fire(schedule_id, fire_time))

    def fire(self, schedule_id: int, fire_time: datetime) -> asyncio.Task[tuple[int | None, str]]:
        """Claim and run one fire in a tracked task (the claim makes duplicates harmless)."""
        return self._track(
            execute_fire(self.sm, self.runner, schedule_id, fire_time, clock=self.clock),
            f"fire-{schedule_id}-{fire_time.isoformat()}",
        )

    async def catch_up(self) -> list[tuple[int, datetime, str]]:
        """For each enabled schedule, the latest fire missed while down: run it (once) inside the
        grace period, else record it as missed. Fires before the schedule's last change or at/
        before its last recorded fire are not missed. Returns (schedule id, fire time, action)."""
        now = self.clock()
        out: list[tuple[int, datetime, str]] = []
        async with self.sm() as session, session.begin():
            rows = [s for s, _ in await list_schedules(session, enabled_only=True)]
            last_seen = {s.id: await last_fire_time(session, s.id) for s in rows}  # type: ignore[arg-type]
        for s in rows:
            assert s.id is not None
            try:
                fire = last_fire_at_or_before(build_trigger(s.cron, s.timezone), now)
            except ValueError:
                continue
            floor = max(d for d in (s.updated_at, last_seen[s.id]) if d is not None)
            if fire is None or fire <= floor:
                continue
            if (now - fire).total_seconds() <= s.grace_seconds:
                self.fire(s.id, fire)
                out.append((s.id, fire, "run"))
            else:
                async with transaction(self.sm) as session:
                    late = int((now - fire).total_seconds())
                    await record_missed(
                        session,
                        s.id,
                        fire,
                        now=now,
                        reason=f"错过执行：晚了 {late} 秒，超过宽限 {s.grace_seconds} 秒 / "
                        f"missed: {late}s late, grace is {s.grace_seconds}s",
                    )
                out.append((s.id, fire, "missed"))
        return out

    async def take_requests(self) -> int:
        """Run "run now" requests left in the table (by the API, any replica): each is taken
        by exactly one scheduler with a conditional update."""
        async with self.sm() as session, session.begin():
            pending = [(r.id, r.schedule_id, r.fire_time) for r in await requested_runs(session)]
        taken = 0
        for run_id, schedule_id, fire_time in pending:
            async with transaction(self.sm) as session:
                won = await take_requested(session, run_id, now=self.clock())  # type: ignore[arg-type]
            if won:
                taken += 1
                self._track(
                    execute_fire(
                        self.sm,
                        self.runner,
                        schedule_id,
                        fire_time,
                        clock=self.clock,
                        run_id=run_id,
                        force=True,
                    ),
                    f"run-now-{run_id}",
                )
        return taken

    async def run_now(self, schedule_id: int) -> int | None:
        """Run a schedule immediately in this process (fire time = now); returns the run id."""
        run_id, _ = await self.fire(schedule_id, self.clock())
        return run_id


# ---------------------------------------------------------------------- aiohttp wiring

SCHEDULER = web.AppKey("scheduler", SchedulerService)


def attach_scheduler(
    app: web.Application,
    sessionmaker: SessionMaker,
    *,
    clock: Clock | None = None,
    poll_seconds: float = 2.0,
    shutdown_timeout: float = 30.0,
    runner: Runner | None = None,
) -> None:
    """Run the scheduler inside ``app``: started by a cleanup_ctx (inside the loop), paused in
    ``on_shutdown``, stopped after running jobs finish (≤ ``shutdown_timeout`` s). Also wires the
    in-process hooks ``run_now["schedules_changed"]`` (poke a re-sync) and
    ``run_now["schedule"]`` (run one schedule now) for the admin API."""
    from bot import keys

    holder: dict[str, SchedulerService] = {}

    async def _ctx(app: web.Application) -> AsyncIterator[None]:
        deps = JobDeps(secret=app[keys.SECRET], public_url=app[keys.SETTINGS].public_url)
        service = SchedulerService(
            sessionmaker, deps=deps, clock=clock or app[keys.CLOCK], runner=runner, poll_seconds=poll_seconds
        )
        await service.start()
        holder["service"] = service
        app[SCHEDULER] = service
        try:
            yield
        finally:
            await service.stop(grace=shutdown_timeout)
            holder.pop("service", None)

    async def _on_shutdown(app: web.Application) -> None:
        if "service" in holder:
            holder["service"].pause()

    async def _changed() -> None:
        if "service" in holder:
            holder["service"].poke()

    async def _run(schedule_id: int) -> int | None:
        if "service" not in holder:
            return None
        return await holder["service"].run_now(schedule_id)

    app.cleanup_ctx.append(_ctx)
    app.on_shutdown.append(_on_shutdown)
    app[keys.RUN_NOW]["schedules_changed"] = _changed
    app[keys.RUN_NOW]["schedule"] = _run
