"""Rigs for the delivery worker: real database (both backends), fake vendors on 127.0.0.1, and a
virtual clock that the worker's sleeps advance (so rate windows and backoffs run instantly)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.channels import adapter_for
from bot.channels.base import ChannelAdapter
from bot.channels.message import Message, Text
from bot.outbox import DeliveryWorker, message_to_payload
from store import outbox as store
from store.db import SessionMaker, transaction
from store.models import ChannelEndpoint, DeliveryAttempt, OutboxMessage
from tests.conftest import Clock
from tests.fakes.fixtures import client_session  # noqa: F401
from tests.fakes.vendors import FAKES, FakeVendor, Reply, WebhookFake
from tests.waits import DEADLINE_S, DeadlineExceeded, within

WECOM_KEY = "wc-key-7d1e55aa-9f30-SECRET"
HOOK_SECRET = "hook-secret-0123456789abcdef"
ENV = {"JX_T_WECOM_KEY": WECOM_KEY, "JX_T_HOOK_SECRET": HOOK_SECRET}


class SlowWebhookFake(WebhookFake):
    """A webhook receiver whose successful replies take ``delay_s`` (settable while running)."""

    delay_s = 0.0

    def ok(self) -> Reply:
        return Reply(200, {"ok": True, "id": f"m{len(self.received)}"}, delay_s=self.delay_s)


def virtual_sleep(clock: Clock) -> Callable[[float], Any]:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)
        await asyncio.sleep(0)

    return sleep


@dataclass
class Rig:
    sm: SessionMaker
    clock: Clock
    http: aiohttp.ClientSession
    fakes: dict[str, FakeVendor]
    adapters: dict[str, ChannelAdapter]

    def worker(self, sm: SessionMaker | None = None, **kwargs: Any) -> DeliveryWorker:
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("rand", random.Random(7))
        kwargs.setdefault("sleep", virtual_sleep(self.clock))
        kwargs.setdefault("env", ENV)
        kwargs.setdefault("poll_s", 0.05)
        return DeliveryWorker(sm or self.sm, self.adapters, self.http, **kwargs)

    async def endpoint(self, kind: str, name: str = "robot-1") -> int:
        fake = self.fakes[kind]
        if kind == "wecom":
            address, config = name, {"key_env": "JX_T_WECOM_KEY", "base_url": fake.base_url}
        else:
            address, config = f"{fake.base_url}/hooks/{name}", {"secret_env": "JX_T_HOOK_SECRET"}
        async with transaction(self.sm) as s:
            ep = await store.ensure_endpoint(s, kind, address, name=name, config=config)
            assert ep.id is not None
            return ep.id

    async def enqueue(self, endpoint_id: int, n: int, *, prefix: str = "m", **kwargs: Any) -> list[str]:
        keys = [f"{prefix}:{endpoint_id}:{i}" for i in range(n)]
        async with transaction(self.sm) as s:
            for key in keys:
                payload = message_to_payload(Message(f"通知 {key}", (Text(f"正文 {key}"),)))
                await store.enqueue(
                    s,
                    dedupe_key=key,
                    endpoint_id=endpoint_id,
                    kind="invite",
                    payload=payload,
                    now=self.clock(),
                    **kwargs,
                )
        return keys

    async def rows(self) -> list[OutboxMessage]:
        async with transaction(self.sm) as s:
            return await store.list_outbox(s, limit=100_000)

    async def row(self, key: str) -> OutboxMessage:
        return next(r for r in await self.rows() if r.dedupe_key == key)

    async def attempts(self) -> list[DeliveryAttempt]:
        from sqlalchemy import select

        async with transaction(self.sm) as s:
            return list((await s.execute(select(DeliveryAttempt).order_by(DeliveryAttempt.id))).scalars())

    async def endpoint_row(self, endpoint_id: int) -> ChannelEndpoint:
        async with transaction(self.sm) as s:
            return await store.get_endpoint(s, endpoint_id)


def progress(worker: DeliveryWorker) -> str:
    """What a worker has done so far, for the message of a wait that missed its deadline."""
    return f"worker {worker.worker_id}: {worker.stats}, {worker.in_flight} rows held"


async def until_idle(worker: DeliveryWorker, what: str = "", *, deadline_s: float = DEADLINE_S) -> int:
    """``worker.run_until_idle()`` with a deadline: returns its claim count, or kills the worker and
    fails naming ``what`` (and the worker's progress) if it is still busy after ``deadline_s``."""
    label = f"worker {worker.worker_id} runs until nothing is due" + (f": {what}" if what else "")
    try:
        return await within(
            worker.run_until_idle(), label, deadline_s=deadline_s, state=lambda: progress(worker)
        )
    except DeadlineExceeded:
        await kill(worker)  # its sends outlive the cancelled wait: stop them before teardown
        raise


async def stop(*workers: DeliveryWorker, deadline_s: float = DEADLINE_S) -> None:
    """``stop()`` the workers (each with its own grace period for sends in flight) under one
    deadline; a worker that has not stopped by then is killed and the test fails."""
    try:
        await within(
            asyncio.gather(*(w.stop() for w in workers)),
            "the workers stop: " + ", ".join(w.worker_id for w in workers),
            deadline_s=deadline_s,
            state=lambda: "; ".join(progress(w) for w in workers),
        )
    except DeadlineExceeded:
        for w in workers:
            await kill(w)
        raise


async def kill(worker: DeliveryWorker) -> None:
    """Crash ``worker`` the way a killed process would: its loop, every send in flight and its
    bookkeeping writers are cancelled, so nothing it still had queued gets written."""
    tasks = [worker._runner, *worker._tasks, worker._starts._task, worker._results._task]
    pending = [t for t in tasks if t is not None and not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        # asyncio.wait, not within(): at the deadline the stuck tasks are reported as they are,
        # before anything cancels them a second time.
        _done, stuck = await asyncio.wait(pending, timeout=DEADLINE_S)
        if stuck:
            raise DeadlineExceeded(
                f"not done within {DEADLINE_S:g} s: the cancelled tasks of worker {worker.worker_id} "
                f"end (still running: {where(list(stuck))})"
            )


def where(tasks: list[asyncio.Task[Any]]) -> str:
    """Each unfinished task with the await chain it is suspended in (for a failed wait)."""
    out = []
    for task in tasks:
        if task.done():
            continue
        steps, awaited = [], task.get_coro()
        while (frame := getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)) is not None:
            steps.append(
                f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno})"
            )
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        out.append(f"{task.get_name()}: " + " > ".join([*steps[-6:], repr(awaited)[:120]]))
    return "; ".join(out) or "all done"


def delivered_keys(fake: FakeVendor) -> list[str]:
    """Dedupe keys of the webhook messages the fake accepted (our webhook payload carries it)."""
    return [r.json["dedupe_key"] for r in fake.delivered]


@pytest.fixture
async def rig(
    sessionmaker: SessionMaker,
    clock: Clock,
    aiohttp_server: Any,
    client_session: aiohttp.ClientSession,  # noqa: F811
) -> Rig:
    vclock = lambda: clock().timestamp()  # noqa: E731 - fakes count rate windows on the same virtual time
    fakes: dict[str, FakeVendor] = {
        "wecom": FAKES["wecom"](keys={WECOM_KEY}, clock=vclock),
        "webhook": SlowWebhookFake(secret=HOOK_SECRET, clock=vclock),
    }
    for fake in fakes.values():
        await fake.serve(aiohttp_server)
    adapters = {
        "wecom": adapter_for(
            "wecom", timeout=aiohttp.ClientTimeout(total=None, sock_connect=2, sock_read=10)
        ),
        "webhook": adapter_for("webhook"),
    }
    # Signature timestamps come from the adapter clock: keep them on the virtual clock too.
    for adapter in adapters.values():
        adapter.clock = vclock
    return Rig(sessionmaker, clock, client_session, fakes, adapters)
