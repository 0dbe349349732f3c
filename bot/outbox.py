"""The delivery worker: claims due outbox rows, renders and sends them, records every attempt.

Flow per row (see ``store.outbox`` for the status machine):

1. ``claim_due`` leases a batch (default 120 s) — rows of paused/disabled endpoints, and of
   endpoints whose rate-limit window is full for longer than ``max_hold_s``, are not taken.
2. The payload (a platform-neutral message dict, see ``message_to_payload``) is turned into a
   ``Message`` — a ``{link_url}`` placeholder is filled with the unit's personal link at send time,
   so the token never sits in the outbox — and rendered into parts by the endpoint's adapter.
3. Each part (in order, one request at a time per endpoint and process) waits for a rate-limit
   slot of its endpoint only (``limiter.reserve``; other endpoints keep going; a wait longer than
   ``max_hold_s`` gives the row back with ``next_attempt_at`` = the slot), gets a
   ``delivery_attempt`` row inserted as ``in_flight`` BEFORE the request (which also re-checks the
   lease and that the endpoint is neither paused nor disabled), takes its slot at the moment the
   request leaves (``limiter.take``), is sent, and the attempt is completed with outcome, HTTP
   status, vendor code, latency and a redacted excerpt. Every replica on one PostgreSQL database
   runs a worker: the limiter (``limiter_for``) then keeps each endpoint's window in the database
   (``bot.ratelimit.SharedRateLimiter``), so the replicas together stay within each vendor cap.
4. Outcomes: OK → next part, and after the last one ``sent``. RATE_LIMITED → the endpoint is
   paused (persisted) for ``retry_after`` or the adapter's ``default_penalty_s`` and the row is due
   again at the pause end + 0–5 s jitter; not counted as an attempt (throttles are capped
   separately). TRANSIENT/AMBIGUOUS → exponential backoff with full jitter; ``dead`` after
   ``max_attempts`` tries, ``max_age`` after enqueueing, or at ``not_after``. PERMANENT → ``failed``
   and the endpoint disabled with the reason; its other rows stay pending until an admin
   re-enables it.

Bookkeeping is group-committed (``_GroupCommit``), because per-send transactions were the
bottleneck (bench/README.md, "Fan-out": two transactions and ~9 statements per send capped a
worker near 100 sends/s on SQLite). Attempt starts of all sends that become ready together are
written in one transaction (one guarded UPDATE + one multi-row INSERT) and each send waits for
its own start to commit: the in-flight row is still durable before its request. Results of
successful sends (attempt result, ``sent`` mark, endpoint success, link ``sent_at``) are queued
and written in batches every ``result_linger_s`` (or ``result_batch`` results, or at once when
someone drains: a failure, ``run_once``, ``stop``). Failures are written at once, in their own
transaction, after the queued results (so the endpoint's counters see events in order).

Delivery is at-least-once. A row whose worker died mid-send is taken over when the lease expires
and sent again (the old attempt is recorded AMBIGUOUS). A crash after a successful request but
before its result was written loses only that write: the row is still ``sending`` with an
``in_flight`` attempt, so it is treated the same way. The duplicates after a crash are therefore
at most the rows with an in-flight attempt at the crash (requests in flight + results not yet
written, the latter at most ``result_linger_s`` worth). Split messages: after each delivered part
(except the last) the count is stored in the payload (``_parts_sent``) before the next part goes
out; a retry resumes after it, so a crash resends at most the part that was in flight.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keys
from bot.channels.base import ChannelAdapter, Endpoint, Outcome, Part, Result, redact
from bot.channels.message import Attachment, Block, Bullets, Link, Message, Table, Text
from bot.ratelimit import Bucket, RateLimiter, Slot, buckets_for
from config.secrets import secret_environment
from store import outbox as store
from store.db import SessionMaker, transaction
from store.models import ChannelEndpoint, OutboxMessage
from store.models import Link as LinkRow

log = logging.getLogger("jixiao.outbox")

LINK_PLACEHOLDER = "{link_url}"


# ============================================================================ payload ↔ Message


def message_to_payload(message: Message) -> dict[str, Any]:
    """The JSON form of a ``Message`` stored in ``outbox_message.payload``.

    ``{"title", "blocks": [{"type": "text"|"table"|"bullets", …}], "link": {"url", "text"}|None,
    "attachments": [{"filename", "mime", "base64"}]}``. To send a personal link, build the dict
    directly with ``"{link_url}"`` where the URL goes (e.g. ``"link": {"url": "{link_url}", …}``) and
    enqueue with ``link_id``: the worker fills it at send time.
    """
    blocks: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, Text):
            blocks.append({"type": "text", "text": block.text})
        elif isinstance(block, Table):
            blocks.append(
                {"type": "table", "headers": list(block.headers), "rows": [list(r) for r in block.rows]}
            )
        else:
            blocks.append({"type": "bullets", "items": list(block.items)})
    return {
        "title": message.title,
        "blocks": blocks,
        "link": None if message.link is None else {"url": message.link.url, "text": message.link.text},
        "attachments": [
            {"filename": a.filename, "mime": a.mime, "base64": base64.b64encode(a.content).decode()}
            for a in message.attachments
        ],
    }


def message_from_payload(payload: Mapping[str, Any], *, link_url: str | None = None) -> Message:
    """Rebuild the ``Message``; every ``{link_url}`` in its text is replaced by ``link_url``.
    Raises ValueError/TypeError/KeyError on a malformed payload (the row then fails permanently)."""

    def fill(text: Any) -> str:
        text = str(text)
        if LINK_PLACEHOLDER in text:
            if link_url is None:
                raise ValueError("payload has a {link_url} placeholder but the row has no usable link")
            text = text.replace(LINK_PLACEHOLDER, link_url)  # replace, not format: user text has braces
        return text

    blocks: list[Block] = []
    for raw in payload.get("blocks") or []:
        kind = raw.get("type")
        if kind == "text":
            blocks.append(Text(fill(raw["text"])))
        elif kind == "table":
            blocks.append(
                Table(
                    tuple(fill(h) for h in raw["headers"]),
                    [[fill(c) for c in r] for r in raw["rows"]],
                    group=int(raw.get("group", -1)),
                    line=str(raw.get("line", "")),
                )
            )
        elif kind == "bullets":
            blocks.append(Bullets([fill(i) for i in raw["items"]]))
        else:
            raise ValueError(f"unknown block type {kind!r}")
    link = payload.get("link")
    return Message(
        fill(payload.get("title", "")),
        tuple(blocks),
        None if not link else Link(fill(link["url"]), fill(link.get("text", ""))),
        tuple(
            Attachment(
                a["filename"], base64.b64decode(a["base64"]), a.get("mime", "application/octet-stream")
            )
            for a in payload.get("attachments") or []
        ),
    )


def _link_id(row: OutboxMessage) -> int | None:
    """The row's link: the column, else the payload's ``link_id`` (store.campaigns puts it there)."""
    raw = row.link_id if row.link_id is not None else row.payload.get("link_id")
    return int(raw) if raw is not None else None


def _needs_link(payload: Mapping[str, Any]) -> bool:
    return LINK_PLACEHOLDER in str(payload)


# ============================================================================ endpoints

#: Address → config key, per kind, when the config does not set it explicitly.
_ADDRESS_KEY = {"telegram": "chat_id", "email": "to", "webhook": "url", "slack": "url"}


#: Payload key of a per-message destination merged over the endpoint's config for that row only:
#: replies to chat commands go to a URL the vendor handed us with the command (DingTalk's
#: ``sessionWebhook``, WeCom's and Slack's ``response_url``), while rate limits stay per chat.
REPLY_TO_KEY = "reply_to"


def resolve_env(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``config`` with every ``X_env`` key (the NAME of an environment variable) replaced by ``X``
    holding that variable's value (empty when unset), read by
    :func:`config.secrets.secret_environment` (the environment over ``.env``) unless ``env`` is
    given. Secrets are never stored, only their names;
    used for channel endpoints and for the inbound bot's verification secrets alike."""
    env = secret_environment() if env is None else env
    out: dict[str, Any] = {}
    for name, value in config.items():
        if name.endswith("_env"):
            out[name[: -len("_env")]] = env.get(str(value), "")
        else:
            out[name] = value
    return out


def with_reply_target(endpoint: Endpoint, payload: Mapping[str, Any]) -> Endpoint:
    """The endpoint with the payload's ``reply_to`` settings (if any) laid over its config."""
    extra = payload.get(REPLY_TO_KEY)
    if not isinstance(extra, Mapping) or not extra:
        return endpoint
    return Endpoint(endpoint.kind, endpoint.name, {**endpoint.config, **extra}, endpoint.base_url)


def endpoint_from_row(row: ChannelEndpoint, env: Mapping[str, str] | None = None) -> Endpoint:
    """The adapter-facing ``Endpoint`` of a stored endpoint.

    Secrets are not stored: a config key ``X_env`` names an environment variable whose value
    becomes ``X`` (``key_env = "JIXIAO_WECOM_KEY"`` → ``key``), looked up by
    :func:`config.secrets.secret_environment` (the environment over the ``.env`` file) unless
    ``env`` is given. A missing variable leaves ``X`` empty, which the adapter reports as
    PERMANENT (so the endpoint is disabled with a reason). ``base_url`` in config overrides the
    vendor origin.
    """
    config = resolve_env(row.config or {}, env)
    base_url = config.pop("base_url", None)
    addr_key = _ADDRESS_KEY.get(row.kind)
    if addr_key and not config.get(addr_key) and row.address:
        config[addr_key] = row.address
    return Endpoint(row.kind, row.name or f"{row.kind}#{row.id}", config, base_url)


# ============================================================================ retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again. Times in seconds unless typed.

    TRANSIENT/AMBIGUOUS: try ``n`` (1-based) failed → wait ``rand(0, min(cap_s, base_s·2^(n-1)))``
    (full jitter: spreads a burst of failures instead of retrying them in lock-step). Give up
    (``dead``) after ``max_attempts`` tries, when the next try would be later than ``max_age`` after
    enqueueing, or at ``not_after``. RATE_LIMITED: due at the pause end + ``rand(0, throttle_jitter_s)``,
    not counted as a try; ``dead`` after ``max_throttles``.
    """

    base_s: float = 30.0
    cap_s: float = 1800.0
    max_attempts: int = 8
    max_age: timedelta = timedelta(hours=24)
    max_throttles: int = 20
    throttle_jitter_s: float = 5.0

    def backoff_ceiling(self, attempt_no: int) -> float:
        """Upper bound of the wait after failed try ``attempt_no`` (seconds)."""
        return min(self.cap_s, self.base_s * 2 ** max(0, attempt_no - 1))

    def backoff(self, attempt_no: int, rand: random.Random) -> float:
        return rand.uniform(0.0, self.backoff_ceiling(attempt_no))

    def give_up_reason(
        self, row: OutboxMessage, *, now: datetime, next_at: datetime | None = None
    ) -> str | None:
        """Why the row should go ``dead`` (None to keep trying).

        Without ``next_at`` (checked when a row is claimed): past ``not_after`` or ``max_age``, or
        its tries are used up (a row whose last try was cut short by a crash). With ``next_at``
        (after a failed try): the tries are used up, or the next one would come too late."""
        when = next_at or now
        if row.attempt_count >= self.max_attempts:
            return f"gave up after {row.attempt_count} attempts"
        if row.not_after is not None and when >= row.not_after:
            return f"not_after {row.not_after.isoformat()} reached: the message is no longer useful"
        if when >= row.created_at + self.max_age:
            return f"gave up: a try would be more than {self.max_age} after enqueueing"
        return None


# ============================================================================ worker

#: Tries of the result writer before it gives up on a batch (see ``_write_results``).
RESULT_WRITE_TRIES = 3

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[Any]]
LinkUrl = Callable[[LinkRow], str]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Held:
    """A claimed row with what the worker needs to send it."""

    row: OutboxMessage
    endpoint: ChannelEndpoint
    link: LinkRow | None
    #: The secrets' environment (``*_env`` lookups), read once per claim rather than per row:
    #: ``secret_environment`` parses the ``.env`` file, a measurable share of a send's CPU.
    env: Mapping[str, str] | None = None


T = TypeVar("T")
R = TypeVar("R")


class _GroupCommit(Generic[T, R]):
    """Group commit for the worker's bookkeeping: items submitted while a batch is being written
    go into the next batch, so N sends that become ready together cost one transaction, not N.

    ``write`` gets a list of items and returns one result per item (same order). At low load a
    batch is one item (no added latency: nothing waits on a timer unless ``linger_s`` > 0); under
    load the batches grow by themselves with the time a write takes. ``linger_s`` (real seconds,
    never the worker's injectable sleep) lets a batch wait for company when nobody is in a hurry;
    ``submit(urgent=True)`` or ``drain()`` cut the wait short.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        linger_s: float = 0.0,
        max_batch: int = 500,
    ) -> None:
        self._write = write
        self.name = name
        self.linger_s = linger_s
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._hurry = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Items submitted and not yet written."""
        return len(self._queue)

    def submit(self, item: T, *, urgent: bool = False) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves once its batch is committed (or fails with the
        write's exception)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if urgent or len(self._queue) >= self.max_batch:
            self._hurry.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)
        return future

    async def drain(self) -> None:
        """Write everything queued now and wait until it is written."""
        while self._task is not None:
            self._hurry.set()
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        try:
            while self._queue:
                if self.linger_s > 0 and len(self._queue) < self.max_batch and not self._hurry.is_set():
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
                    # that arrives together with the event (gh-86296), and the task runs on.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.linger_s):
                            await self._hurry.wait()
                self._hurry.clear()
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                except BaseException:
                    for _, future in batch:
                        future.cancel()
                    raise
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
        finally:
            self._task = None
            # Only a cancelled writer leaves items behind (a normal exit means the queue is empty):
            # their submitters must not wait forever.
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()


@dataclass(frozen=True, slots=True)
class _Finished:
    """A delivered part waiting for the result writer: its attempt's result, and either the row's
    ``sent`` mark (last part) or its split-message progress (earlier parts)."""

    result: store.AttemptResult
    sent: store.Sent | None
    parts_sent: tuple[int, int] | None = None  # (message_id, parts delivered so far)


class _Release(Exception):
    """Internal: give the row back without an outcome (limiter wait too long, or stopping)."""

    def __init__(self, at: datetime) -> None:
        self.at = at


class DeliveryWorker:
    """Claims and delivers outbox rows. One per process, in every replica; on PostgreSQL pass
    ``limiter=limiter_for(sessionmaker)`` so the replicas share the vendor budgets
    (``bot.ratelimit``; ``setup`` does).

    ``concurrency`` sends are in flight at once across all endpoints; up to ``max_held`` rows are
    leased at a time (the others wait for a rate-limit slot of their own endpoint, at most
    ``per_endpoint_hold`` per endpoint). Results of successful sends are written in batches of up
    to ``result_batch``, at most ``result_linger_s`` real seconds after the first one (the window in
    which a crash turns a delivered row into a resend; see the module docstring). ``clock`` (aware
    datetimes), ``rand`` and ``sleep`` are injectable so tests run on virtual time.
    """

    def __init__(
        self,
        sessionmaker: SessionMaker,
        adapters: Mapping[str, ChannelAdapter],
        http: aiohttp.ClientSession,
        *,
        clock: Clock = _utc_now,
        rand: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        worker_id: str | None = None,
        lease_s: float = 120.0,
        concurrency: int = 20,
        max_held: int = 200,
        per_endpoint_hold: int = 20,
        max_hold_s: float = 10.0,
        poll_s: float = 1.0,
        result_linger_s: float = 0.05,
        result_batch: int = 200,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        link_url: LinkUrl | None = None,
        public_url: str = "",
        secret: bytes = b"",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.sm = sessionmaker
        self.adapters = adapters
        self.http = http
        self.clock = clock
        self.rand = rand or random.Random()
        self.sleep = sleep
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:12]}"
        self.lease_s = lease_s
        self.concurrency = concurrency
        self.max_held = max_held
        self.per_endpoint_hold = per_endpoint_hold
        self.max_hold_s = max_hold_s
        self.poll_s = poll_s
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or RateLimiter()
        self._link_url = link_url
        self.public_url = public_url
        self.secret = secret
        self.env = env
        self._send_slots = asyncio.Semaphore(concurrency)
        self._kick = asyncio.Event()
        self._db_lock = asyncio.Lock()
        bind = sessionmaker.kw.get("bind")
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        #: PostgreSQL through asyncpg: attempt starts go out as one autocommitted statement.
        self._pg_engine = bind if bind is not None and bind.dialect.driver == "asyncpg" else None
        self._woken = False
        #: Claim again after a task finishes only once this many rows can be taken: one claim
        #: query per finished send would dominate the database load.
        self.claim_batch = max(1, max_held // 4)
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._held_per_endpoint: dict[int, int] = {}
        self._kinds: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._seeded = False
        self._runner: asyncio.Task[None] | None = None
        # Bookkeeping goes through two group-commit writers (see the module docstring):
        # attempt starts are on the critical path of each send, so they never linger; results
        # are not, so they wait up to ``result_linger_s`` for company.
        self._starts: _GroupCommit[store.AttemptStart, tuple[int, int] | None] = _GroupCommit(
            self._write_starts, name=f"outbox-starts-{self.worker_id}"
        )
        self._results: _GroupCommit[_Finished, None] = _GroupCommit(
            self._write_results,
            name=f"outbox-results-{self.worker_id}",
            linger_s=result_linger_s,
            max_batch=result_batch,
        )
        #: Counters for logs and benchmarks (this worker only).
        self.stats: dict[str, int] = {
            "claimed": 0,
            "sent": 0,
            "requests": 0,
            "throttled": 0,
            "retried": 0,
            "failed": 0,
            "dead": 0,
            "released": 0,
        }

    # -- public control -------------------------------------------------------------------------------
    def wake(self) -> None:
        """Look for due rows now instead of at the next poll (call after enqueueing)."""
        self._woken = True
        self._kick.set()

    @property
    def in_flight(self) -> int:
        """Rows this worker currently holds (leased, waiting or sending)."""
        return len(self._tasks)

    def start(self) -> asyncio.Task[None]:
        """Run the loop in a background task."""
        if self._runner is None:
            self._runner = asyncio.create_task(self.run(), name=f"outbox-{self.worker_id}")
        return self._runner

    async def stop(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109 - a grace period, not an I/O timeout
        """Stop claiming; rows waiting for a rate-limit slot are given back at once; sends in
        flight get ``timeout`` seconds to finish, then are cancelled (their rows are retried
        when the lease expires, recorded AMBIGUOUS)."""
        self._stopping = True
        self._kick.set()
        if self._runner is not None:
            await asyncio.wait({self._runner}, timeout=timeout)
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            await asyncio.wait({self._runner})
        await self._results.drain()
        await self.limiter.close()

    async def run(self) -> None:
        """Claim and deliver until ``stop()``; wakes every ``poll_s`` seconds or on ``wake()``."""
        await self._seed()
        timed_out = True
        while not self._stopping:
            self._kick.clear()
            free = self.max_held - len(self._tasks)
            claimed = 0
            # Claim on every poll, on wake(), or when a batch worth of room has freed up.
            if free > 0 and (timed_out or self._woken or free >= self.claim_batch or not self._tasks):
                self._woken = False
                try:
                    claimed = await self._claim_and_spawn(free)
                except Exception:  # keep the loop alive through a database hiccup
                    log.exception("outbox claim failed; retrying at the next poll")
            if self._stopping:
                break
            if free > 0 and claimed >= free:
                await asyncio.sleep(0)
                timed_out = False
                continue
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # arrives with a wake() (gh-86296); the loop then ran on and a shutdown that cancelled
            # it while a send finished waited for it forever.
            try:
                async with asyncio.timeout(self.poll_s):
                    await self._kick.wait()
                timed_out = False
            except TimeoutError:
                timed_out = True

    async def run_once(self) -> int:
        """Claim one batch, deliver it completely, and return how many rows were claimed
        (for tests and one-shot CLI use)."""
        await self._seed()
        claimed = await self._claim_and_spawn(self.max_held - len(self._tasks))
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        await self._results.drain()
        return claimed

    async def run_until_idle(self, max_rounds: int = 1000) -> int:
        """``run_once`` until nothing is due; returns the total number of claims."""
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            total += n
            if n == 0:
                break
        return total

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        """One short transaction. On SQLite the worker's own transactions queue on an asyncio lock:
        SQLite has one writer, and letting 20 tasks race for it makes sqlite3's busy handler sleep
        in 5–100 ms steps instead of handing the lock over at once."""
        if self._sqlite:
            async with self._db_lock, transaction(self.sm) as session:
                yield session
        else:
            async with transaction(self.sm) as session:
                yield session

    # -- claiming -------------------------------------------------------------------------------------
    def _now_ts(self) -> float:
        return self.clock().timestamp()

    def _buckets(self, endpoint_id: int, kind: str) -> tuple[Bucket, ...]:
        adapter = self.adapters.get(kind)
        return buckets_for(endpoint_id, kind, adapter.limits if adapter else ())

    async def _seed(self) -> None:
        """Count the sends of earlier processes still inside a rate window (see bot.ratelimit)."""
        if self._seeded:
            return
        self._seeded = True
        windows = [s.per_seconds for a in self.adapters.values() for s in a.limits]
        if not windows:
            return
        now = self.clock()
        async with self._tx() as session:
            recent = await store.recent_send_times(session, since=now - timedelta(seconds=max(windows)))
        for endpoint_id, kind, at in recent:
            self._kinds[endpoint_id] = kind
            self.limiter.record(self._buckets(endpoint_id, kind), at.timestamp())

    def _excluded(self) -> set[int]:
        now = self._now_ts()
        out = {e for e, n in self._held_per_endpoint.items() if n >= self.per_endpoint_hold}
        for endpoint_id, kind in self._kinds.items():
            if self.limiter.delay(self._buckets(endpoint_id, kind), now) > self.max_hold_s:
                out.add(endpoint_id)
        return out

    async def _claim_and_spawn(self, free: int) -> int:
        if free <= 0 or self._stopping:
            return 0
        now = self.clock()
        async with self._tx() as session:
            rows = await store.claim_due(
                session,
                now=now,
                worker_id=self.worker_id,
                lease_s=self.lease_s,
                limit=free,
                per_endpoint_limit=self.per_endpoint_hold,
                exclude_endpoint_ids=self._excluded(),
            )
            if not rows:
                return 0
            endpoint_ids = {r.endpoint_id for r in rows}
            endpoints = {
                e.id: e
                for e in (
                    await session.execute(
                        select(ChannelEndpoint).where(ChannelEndpoint.id.in_(endpoint_ids))  # type: ignore[union-attr]
                    )
                ).scalars()
            }
            link_ids = {_link_id(r) for r in rows if _needs_link(r.payload)} - {None}
            links: dict[int | None, LinkRow] = {}
            if link_ids:
                links = {
                    link.id: link
                    for link in (
                        await session.execute(select(LinkRow).where(LinkRow.id.in_(link_ids)))  # type: ignore[union-attr]
                    ).scalars()
                }
        self.stats["claimed"] += len(rows)
        env = self.env if self.env is not None else secret_environment()
        for row in rows:
            endpoint = endpoints[row.endpoint_id]
            self._kinds[row.endpoint_id] = endpoint.kind
            self._held_per_endpoint[row.endpoint_id] = self._held_per_endpoint.get(row.endpoint_id, 0) + 1
            held = _Held(row, endpoint, links.get(_link_id(row)), env)
            task = asyncio.create_task(self._deliver(held), name=f"outbox-row-{row.id}")
            self._tasks.add(task)
            task.add_done_callback(self._done(row.endpoint_id))
        return len(rows)

    def _done(self, endpoint_id: int) -> Callable[[asyncio.Task[None]], None]:
        def callback(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            left = self._held_per_endpoint.get(endpoint_id, 1) - 1
            if left > 0:
                self._held_per_endpoint[endpoint_id] = left
            else:
                self._held_per_endpoint.pop(endpoint_id, None)
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox delivery task crashed", exc_info=task.exception())
            self._kick.set()

        return callback

    # -- delivering one row ---------------------------------------------------------------------------
    def _link_for(self, held: _Held) -> str | None:
        if held.link is None or held.link.revoked_at is not None:
            return None
        if self._link_url is not None:
            return self._link_url(held.link)
        from bot.links import link_url  # lazy: bot.links is a sibling feature, optional at import

        return link_url(self.public_url, self.secret, held.link)

    async def _deliver(self, held: _Held) -> None:
        row, ep_row = held.row, held.endpoint
        assert row.id is not None and ep_row.id is not None
        try:
            await self._deliver_parts(held)
        except _Release as release:
            async with self._tx() as session:
                await store.reschedule(session, message_id=row.id, worker_id=self.worker_id, at=release.at)
            self.stats["released"] += 1

    async def _deliver_parts(self, held: _Held) -> None:
        row, ep_row = held.row, held.endpoint
        message_id = row.id
        assert message_id is not None and ep_row.id is not None
        now = self.clock()
        reason = self.policy.give_up_reason(row, now=now)
        if reason is not None:
            async with self._tx() as session:
                await store.mark_dead(
                    session, message_id=message_id, worker_id=self.worker_id, now=now, reason=reason
                )
            self.stats["dead"] += 1
            return
        adapter = self.adapters.get(ep_row.kind)
        endpoint = with_reply_target(endpoint_from_row(ep_row, held.env), row.payload)
        if adapter is None:
            await self._permanent(
                held, f"no adapter configured for channel kind {ep_row.kind!r}", disable=True
            )
            return
        try:
            link_url = self._link_for(held) if _needs_link(row.payload) else None
            message = message_from_payload(row.payload, link_url=link_url)
            parts = adapter.render(message, dedupe_key=row.dedupe_key)
        except (ValueError, TypeError, KeyError) as exc:
            # Our payload is wrong, not the endpoint: fail the row, keep the endpoint enabled.
            await self._permanent(held, f"cannot render payload: {exc}", disable=False)
            return
        buckets = self._buckets(ep_row.id, ep_row.kind)
        done = int(row.payload.get(store.PARTS_SENT_KEY, 0) or 0)
        first = True
        for part in parts[done:]:
            # One request at a time per endpoint: parts and rows reach a group chat in order, and
            # after a throttle or a permanent error the next row sees the pause/disable before
            # sending (the attempt start re-checks the endpoint). The rate-limit wait happens
            # inside the lock, so at most one task per endpoint polls the limiter (the others
            # queue on the lock in claim order instead of all waking at every freed slot).
            async with self._endpoint_lock(ep_row.id):
                if self._stopping:
                    raise _Release(self.clock())
                slot = await self._wait_for_slot(buckets, want=self._held_per_endpoint.get(ep_row.id, 1))
                sent = await self._send_part(held, adapter, endpoint, part, slot, new_attempt=first)
                first = False
                if sent is None:
                    return  # lease lost or endpoint closed meanwhile; the row was handed back
                attempt_id, result = sent
                if result.outcome is not Outcome.OK:
                    # Results queued before this one are written first, so the endpoint's
                    # failure counter and pause see the events in the order they happened.
                    await self._results.drain()
                    await self._on_failure(held, adapter, endpoint, attempt_id, result)
                    return
                now = self.clock()
                last = part.index >= part.total
                finished = _Finished(
                    self._attempt_result(endpoint, attempt_id, part, result, now),
                    store.Sent(message_id, ep_row.id, row.link_id, now, result.vendor_msg_id)
                    if last
                    else None,
                    None if last else (message_id, part.index),
                )
                if last:
                    # Written by the result writer within ``result_linger_s``; a crash before
                    # that leaves the row ``sending`` with an in-flight attempt, so it is resent
                    # after its lease (at-least-once, like a crash mid-request).
                    self._results.submit(finished)
                    self.stats["sent"] += 1
                else:
                    # A split message's progress is durable before its next part goes out, so a
                    # crash resends at most the part that was in flight.
                    await self._results.submit(finished, urgent=True)

    def _endpoint_lock(self, endpoint_id: int) -> asyncio.Lock:
        lock = self._locks.get(endpoint_id)
        if lock is None:
            lock = self._locks[endpoint_id] = asyncio.Lock()
        return lock

    async def _wait_for_slot(self, buckets: tuple[Bucket, ...], *, want: int = 1) -> Slot:
        """A rate-limit slot for the next request to ``buckets`` (``want``: requests this worker
        holds for them, so a shared limiter can book several in one statement), or ``_Release``."""
        while True:
            asked = self._now_ts()
            got = await self.limiter.reserve(buckets, asked, want=want)
            if isinstance(got, Slot):
                return got
            if got > self.max_hold_s or self._stopping:
                raise _Release(self.clock() + timedelta(seconds=got))
            # The wait counts from ``asked``: a shared limiter's round trip has already used part
            # of it (sleeping all of it again made every window edge late by that round trip).
            await self.sleep(max(0.0, got - (self._now_ts() - asked)))

    async def _send_part(
        self,
        held: _Held,
        adapter: ChannelAdapter,
        endpoint: Endpoint,
        part: Part,
        slot: Slot,
        *,
        new_attempt: bool,
    ) -> tuple[int, Result] | None:
        """Insert the in-flight attempt, then send. None if the row may not be sent any more."""
        row = held.row
        assert row.id is not None
        async with self._send_slots:
            started = self.clock()
            note = f"part {part.index}/{part.total}" if part.total > 1 else ""
            attempt = await self._starts.submit(store.AttemptStart(row.id, started, new_attempt, note))
            if attempt is None:
                self.limiter.release(slot)  # the row goes back to pending; nothing was sent
                async with self._tx() as session:
                    await store.reschedule(session, message_id=row.id, worker_id=self.worker_id, at=started)
                self.stats["released"] += 1
                return None
            attempt_id, row.attempt_count = attempt
            # The slot was booked before the database write; take it now so the time the limiter
            # records is the moment the request leaves, never earlier (local for both limiters
            # unless the slot went stale meanwhile).
            while (wait := await self.limiter.take(slot, self._now_ts())) > 0:
                await self.sleep(wait)
            self.stats["requests"] += 1
            try:
                result = await adapter.send(self.http, endpoint, part)
            except Exception as exc:  # adapters should not raise; classify a bug as transient
                log.exception("adapter %s raised", adapter.kind)
                result = Result(Outcome.TRANSIENT, vendor_msg=f"{type(exc).__name__}: {exc}")
            return attempt_id, result

    def _attempt_result(
        self, endpoint: Endpoint, attempt_id: int, part: Part | None, result: Result, now: datetime
    ) -> store.AttemptResult:
        prefix = f"part {part.index}/{part.total}: " if part is not None and part.total > 1 else ""
        return store.AttemptResult(
            attempt_id,
            now,
            str(result.outcome),
            result.latency_ms,
            result.http_status,
            result.vendor_code,
            result.retry_after_s,
            # Adapters already redact; again here with this endpoint's resolved secrets.
            redact(prefix + (result.excerpt or result.vendor_msg or ""), endpoint.secrets()),
        )

    async def _record(
        self, session: AsyncSession, endpoint: Endpoint, attempt_id: int, part: Part | None, result: Result
    ) -> None:
        await store.record_attempt_results(
            session, [self._attempt_result(endpoint, attempt_id, part, result, self.clock())]
        )

    async def _write_starts(self, starts: list[store.AttemptStart]) -> list[tuple[int, int] | None]:
        """The start writer: one transaction for every attempt start queued meanwhile (on
        PostgreSQL one statement, one round trip: it is on every request's critical path)."""
        if self._pg_engine is not None:
            got = await store.record_attempt_starts_now(
                self._pg_engine, starts, worker_id=self.worker_id, now=self.clock()
            )
            return [got.get(start.message_id) for start in starts]
        async with self._tx() as session:
            got = await store.record_attempt_starts(
                session, starts, worker_id=self.worker_id, now=self.clock()
            )
        return [got.get(start.message_id) for start in starts]

    async def _write_results(self, batch: list[_Finished]) -> list[None]:
        """The result writer: attempt results, ``sent`` marks and split progress in one
        transaction. Never raises: after ``RESULT_WRITE_TRIES`` failed tries the rows stay
        ``sending`` with in-flight attempts and are resent after their lease (at-least-once)."""
        for try_no in range(1, RESULT_WRITE_TRIES + 1):
            try:
                async with self._tx() as session:
                    await store.record_deliveries(
                        session,
                        results=[f.result for f in batch],
                        sent=[f.sent for f in batch if f.sent is not None],
                        parts_sent=[f.parts_sent for f in batch if f.parts_sent is not None],
                        worker_id=self.worker_id,
                    )
                return [None] * len(batch)
            except Exception:
                if try_no == RESULT_WRITE_TRIES:
                    log.exception(
                        "outbox: could not record %d delivered messages; they stay 'sending' and "
                        "will be sent again when their lease expires",
                        len(batch),
                    )
                else:
                    log.warning("outbox: recording results failed (try %d), retrying", try_no, exc_info=True)
                    await asyncio.sleep(0.1 * 2**try_no)
        return [None] * len(batch)

    def _error_text(self, endpoint: Endpoint, result: Result) -> str:
        bits = [str(result.outcome)]
        if result.http_status is not None:
            bits.append(f"http {result.http_status}")
        if result.vendor_code is not None:
            bits.append(f"code {result.vendor_code}")
        text = " ".join(bits)
        if result.vendor_msg:
            text += f": {result.vendor_msg}"
        return redact(text, endpoint.secrets())

    async def _permanent(
        self,
        held: _Held,
        error: str,
        *,
        disable: bool,
        session: AsyncSession | None = None,
    ) -> None:
        row, ep_row = held.row, held.endpoint
        assert row.id is not None and ep_row.id is not None
        now = self.clock()
        error = redact(error, with_reply_target(endpoint_from_row(ep_row, self.env), row.payload).secrets())
        if session is None:
            async with self._tx() as own:
                await self._permanent(held, error, disable=disable, session=own)
            return
        await store.mark_failed(session, message_id=row.id, worker_id=self.worker_id, now=now, error=error)
        if disable:
            await store.disable_endpoint(session, ep_row.id, reason=error, now=now)
            log.warning("endpoint %s (%s) disabled: %s", ep_row.id, ep_row.kind, error)
        self.stats["failed"] += 1

    async def _on_failure(
        self, held: _Held, adapter: ChannelAdapter, endpoint: Endpoint, attempt_id: int, result: Result
    ) -> None:
        """Record the failed attempt and the row's next state in one transaction."""
        row, ep_row = held.row, held.endpoint
        message_id, endpoint_id = row.id, ep_row.id
        assert message_id is not None and endpoint_id is not None
        error = self._error_text(endpoint, result)
        now = self.clock()
        async with self._tx() as session:
            # The row first, then its attempt and endpoint: the lock order of every outbox
            # transaction (store.outbox.record_deliveries), so a replica taking over this row's
            # expired lease meanwhile cannot deadlock with us.
            await store.lock_messages(session, [message_id])
            await self._record(session, endpoint, attempt_id, None, result)
            if result.outcome is Outcome.PERMANENT:
                # A per-message reply URL that is used up or expired says nothing about the
                # chat's endpoint: fail the row, keep the endpoint enabled.
                per_message = bool(row.payload.get(REPLY_TO_KEY))
                await self._permanent(held, error, disable=not per_message, session=session)
                return
            if result.outcome is Outcome.RATE_LIMITED:
                pause_s = (
                    result.retry_after_s if result.retry_after_s is not None else adapter.default_penalty_s
                )
                until = now + timedelta(seconds=pause_s)
                self.limiter.pause(f"ep:{endpoint_id}", until.timestamp())
                self.stats["throttled"] += 1
                await store.pause_endpoint(session, endpoint_id, until=until)
                if row.throttle_count + 1 > self.policy.max_throttles:
                    await store.mark_dead(
                        session,
                        message_id=message_id,
                        worker_id=self.worker_id,
                        now=now,
                        reason=f"gave up after {row.throttle_count + 1} throttled tries: {error}",
                        outcome=str(result.outcome),
                    )
                    self.stats["dead"] += 1
                    return
                at = until + timedelta(seconds=self.rand.uniform(0.0, self.policy.throttle_jitter_s))
                await store.reschedule(
                    session,
                    message_id=message_id,
                    worker_id=self.worker_id,
                    at=at,
                    outcome=str(result.outcome),
                    error=error,
                    throttled=True,
                )
                return
            # TRANSIENT or AMBIGUOUS: back off.
            next_at = now + timedelta(seconds=self.policy.backoff(row.attempt_count, self.rand))
            reason = self.policy.give_up_reason(row, now=now, next_at=next_at)
            if reason is not None:
                await store.mark_dead(
                    session,
                    message_id=message_id,
                    worker_id=self.worker_id,
                    now=now,
                    reason=f"{reason}; last error: {error}",
                    outcome=str(result.outcome),
                )
                self.stats["dead"] += 1
                return
            await store.reschedule(
                session,
                message_id=message_id,
                worker_id=self.worker_id,
                at=next_at,
                outcome=str(result.outcome),
                error=error,
                endpoint_failure=True,
            )
            self.stats["retried"] += 1


# ============================================================================ app wiring

WORKER = web.AppKey("outbox_worker", DeliveryWorker)

#: Seconds the delivery worker gets at shutdown to finish the sends in flight.
SHUTDOWN_GRACE_S = 20.0


def limiter_for(sessionmaker: SessionMaker) -> RateLimiter:
    """The rate limiter for a worker on this database: shared through the database on
    PostgreSQL (every replica counts against one budget), in-process on SQLite (one machine)."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bot.ratelimit import SharedRateLimiter
    from store.rate_buckets import RateWindows

    engine = sessionmaker.kw.get("bind")
    if isinstance(engine, AsyncEngine) and engine.dialect.driver == "asyncpg":
        return SharedRateLimiter(RateWindows(engine))
    return RateLimiter()


def wake(app: web.Application) -> None:
    """Nudge the app's delivery worker after enqueueing (no-op when workers are not started)."""
    worker = app.get(WORKER)
    if worker is not None:
        worker.wake()


def setup(app: web.Application, *, start_workers: bool) -> None:
    """Run the delivery worker for the app's lifetime when ``start_workers`` is true."""
    if not start_workers:
        return

    async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        worker = DeliveryWorker(
            app[keys.SESSIONMAKER],
            app[keys.CHANNELS],
            app[keys.HTTP],
            clock=app[keys.CLOCK],
            public_url=settings.public_url,
            secret=app[keys.SECRET],
            limiter=limiter_for(app[keys.SESSIONMAKER]),
        )
        app[WORKER] = worker
        worker.start()
        yield
        await worker.stop(SHUTDOWN_GRACE_S)

    app.cleanup_ctx.append(_worker_ctx)
