"""Set-based outbox bookkeeping (both backends): bulk enqueue, batched attempt starts, bounded
claims, and the worker sharing one transaction between sends that become ready together."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.channels.message import Message, Text
from bot.outbox import message_to_payload
from store import outbox as store
from store.db import transaction
from store.models import DeliveryAttempt
from tests.waits import within

from .conftest import Rig, SlowWebhookFake, delivered_keys, kill, progress, until_idle


def _message(key: str, endpoint_id: int, **kw: Any) -> store.NewMessage:
    payload = message_to_payload(Message(f"通知 {key}", (Text("正文"),)))
    return store.NewMessage(dedupe_key=key, endpoint_id=endpoint_id, kind="invite", payload=payload, **kw)


async def test_enqueue_many_adds_new_keys_once_and_skips_existing_and_repeated_ones(rig: Rig) -> None:
    ep = await rig.endpoint("webhook")
    now = rig.clock()
    async with transaction(rig.sm) as s:
        assert await store.enqueue(
            s, dedupe_key="k0", endpoint_id=ep, kind="invite", payload={"title": "x"}, now=now
        )
        later = now + timedelta(hours=1)
        batch = [_message("k0", ep), _message("k1", ep, not_before=later), _message("k1", ep)]
        batch += [_message(f"n{i}", ep, link_id=None) for i in range(7)]
        added = await store.enqueue_many(s, batch, now=now, chunk=3)
    assert added == {"k1"} | {f"n{i}" for i in range(7)}
    rows = {r.dedupe_key: r for r in await rig.rows()}
    assert len(rows) == 9 and rows["k0"].payload == {"title": "x"}  # the existing row is untouched
    assert rows["k1"].next_attempt_at == later  # the first of the repeated keys wins
    assert all(r.status == "pending" and r.attempt_count == 0 for r in rows.values())


async def test_attempt_starts_are_refused_for_rows_not_leased_or_of_a_paused_endpoint(rig: Rig) -> None:
    open_ep, paused_ep = await rig.endpoint("webhook", "a"), await rig.endpoint("webhook", "b")
    await rig.enqueue(open_ep, 2)
    await rig.enqueue(paused_ep, 1)
    now = rig.clock()
    async with transaction(rig.sm) as s:
        mine = await store.claim_due(s, now=now, worker_id="w1", lease_s=60, limit=10)
        by_ep = {r.endpoint_id: r.id for r in mine}
        await store.pause_endpoint(s, paused_ep, until=now + timedelta(seconds=30))
    async with transaction(rig.sm) as s:
        theirs = await store.record_attempt_starts(
            s, [store.AttemptStart(r.id, now) for r in mine], worker_id="someone-else", now=now
        )
        got = await store.record_attempt_starts(
            s, [store.AttemptStart(r.id, now) for r in mine], worker_id="w1", now=now
        )
    assert theirs == {}
    assert set(got) == {r.id for r in mine} - {by_ep[paused_ep]}
    attempts = await rig.attempts()
    assert {a.outbox_id: (a.id, a.attempt_no) for a in attempts} == got
    assert all(a.outcome == "in_flight" and a.worker_id == "w1" for a in attempts)


async def test_a_claim_skips_an_excluded_endpoints_backlog_and_takes_the_other_endpoints_rows(
    rig: Rig,
) -> None:
    busy, quiet = await rig.endpoint("webhook", "busy"), await rig.endpoint("webhook", "quiet")
    await rig.enqueue(busy, 300)  # all due before the quiet endpoint's rows
    rig.clock.advance(seconds=1)
    quiet_keys = await rig.enqueue(quiet, 3)
    now = rig.clock()
    async with transaction(rig.sm) as s:
        first = await store.claim_due(s, now=now, worker_id="w", lease_s=60, limit=10, per_endpoint_limit=5)
        second = await store.claim_due(
            s,
            now=now,
            worker_id="w",
            lease_s=60,
            limit=10,
            per_endpoint_limit=5,
            exclude_endpoint_ids={busy},
        )
    assert [r.endpoint_id for r in first] == [busy] * 5  # oldest first, capped per endpoint
    assert [r.dedupe_key for r in second] == quiet_keys


async def test_sends_that_become_ready_together_share_one_attempt_insert_and_one_result_write(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoints = [await rig.endpoint("webhook", f"hook-{i}") for i in range(6)]
    keys = [k for ep in endpoints for k in await rig.enqueue(ep, 1)]
    statements: list[str] = []
    engine = rig.sm.kw["bind"].sync_engine

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    # On PostgreSQL the worker's attempt starts bypass the session (one autocommitted statement).
    autocommit = store.fetch_autocommit

    async def counted(engine: Any, statement: str, *args: Any) -> list[Any]:
        statements.append(" ".join(statement.split()).lower())
        return await autocommit(engine, statement, *args)

    monkeypatch.setattr(store, "fetch_autocommit", counted)
    event.listen(engine, "before_cursor_execute", count)
    try:
        # Results wait for company long enough (real time) to be written once, by run_once's drain.
        await until_idle(rig.worker(concurrency=6, result_linger_s=30), "six sends, results written once")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert sorted(delivered_keys(rig.fakes["webhook"])) == sorted(keys)
    assert sum("insert into delivery_attempt" in st for st in statements) == 1
    assert sum(st.startswith("update delivery_attempt set") for st in statements) == 1
    assert all(r.status == "sent" for r in await rig.rows())
    assert [a.outcome for a in await rig.attempts()] == ["ok"] * 6


async def test_a_crash_before_results_are_written_resends_only_the_rows_with_in_flight_attempts(
    rig: Rig,
) -> None:
    """The result writer batches ``sent`` marks; a crash loses the unwritten ones, and those rows
    (still ``sending`` with an in-flight attempt) are sent again after the lease: at-least-once,
    duplicates at most the in-flight + unwritten attempts, nothing lost."""
    fake = rig.fakes["webhook"]
    assert isinstance(fake, SlowWebhookFake)
    endpoints = [await rig.endpoint("webhook", f"hook-{i}") for i in range(3)]
    keys = [k for ep in endpoints for k in await rig.enqueue(ep, 4)]
    doomed = rig.worker(worker_id="doomed", concurrency=3, result_linger_s=3600)
    await within(
        doomed.run_once(), "the first batch is delivered and written", state=lambda: progress(doomed)
    )
    assert all(r.status == "sent" for r in await rig.rows())
    more = [k for ep in endpoints for k in await rig.enqueue(ep, 4, prefix="more")]
    task = doomed.start()
    try:
        await fake.wait_until(
            lambda f: len(f.delivered) == len(keys) + len(more),
            what="every request of the second batch answered",
        )
    finally:
        # Crash: the loop, the sends and the result writer die; nothing queued gets written.
        # (In ``finally`` so that a failed wait still stops the worker instead of hanging teardown.)
        await kill(doomed)
    assert task.cancelled()
    async with transaction(rig.sm) as s:
        in_flight = len(
            (await s.execute(select(DeliveryAttempt).where(DeliveryAttempt.outcome == "in_flight"))).all()
        )
    unwritten = sum(1 for r in await rig.rows() if r.status == "sending")
    assert in_flight == unwritten > 0

    heir = rig.worker(worker_id="heir")
    rig.clock.advance(seconds=121)
    await until_idle(heir, "the heir resends the unwritten rows after the lease")
    got = delivered_keys(fake)
    assert set(got) == set(keys) | set(more)  # nothing lost
    assert len(got) - len(set(got)) == in_flight  # duplicates: exactly the unwritten rows
    assert all(r.status == "sent" for r in await rig.rows())
