"""The delivery worker against fake vendors on 127.0.0.1 and a real database (both backends)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from bot.channels.message import Message, Table, Text
from bot.outbox import RetryPolicy, message_to_payload
from store import outbox as store
from store.db import transaction
from tests.fakes.vendors import Reply
from tests.waits import wait_until, within

from .conftest import WECOM_KEY, Rig, stop, until_idle


class MaxRandom(random.Random):
    """Always the top of the range: makes jittered times deterministic for a test."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_a_due_message_is_sent_and_its_attempt_recorded(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    (key,) = await rig.enqueue(ep, 1)
    assert await until_idle(rig.worker()) == 1
    row = await rig.row(key)
    assert (row.status, row.attempt_count, row.sent_at) == ("sent", 1, rig.clock())
    (attempt,) = await rig.attempts()
    assert (attempt.outcome, attempt.http_status, attempt.vendor_code) == ("ok", 200, "0")
    assert attempt.finished_at is not None and attempt.latency_ms is not None
    assert (await rig.endpoint_row(ep)).last_success_at == rig.clock()
    assert len(rig.fakes["wecom"].delivered) == 1


async def test_transient_error_is_retried_with_jittered_backoff(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    (key,) = await rig.enqueue(ep, 1)
    rig.fakes["wecom"].script(Reply(502, "bad gateway"), Reply(503, "busy"))
    worker = rig.worker(rand=MaxRandom())
    start = rig.clock()
    await until_idle(worker)
    row = await rig.row(key)
    assert (row.status, row.attempt_count, row.last_outcome) == ("pending", 1, "transient")
    assert row.next_attempt_at == start + timedelta(seconds=30)  # rand(0, 30 s) at its top
    rig.clock.advance(seconds=30)
    await until_idle(worker)
    row = await rig.row(key)
    assert (row.status, row.attempt_count) == ("pending", 2)
    assert row.next_attempt_at == rig.clock() + timedelta(seconds=60)  # rand(0, 60 s)
    rig.clock.advance(seconds=60)
    await until_idle(worker)
    assert (await rig.row(key)).status == "sent"
    assert [a.outcome for a in await rig.attempts()] == ["transient", "transient", "ok"]
    assert (await rig.endpoint_row(ep)).consecutive_failures == 0


async def test_rate_limited_pause_is_persisted_and_honoured_by_a_new_worker(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    keys = await rig.enqueue(ep, 3)
    fake = rig.fakes["wecom"]
    fake.script(fake.throttled())
    start = rig.clock()
    await until_idle(rig.worker(rand=MaxRandom()))
    assert len(fake.received) == 1  # the other rows were not sent into the throttle
    endpoint = await rig.endpoint_row(ep)
    assert endpoint.paused_until == start + timedelta(seconds=65)  # WeCom's default penalty
    first = await rig.row(keys[0])
    assert (first.status, first.attempt_count, first.throttle_count) == ("pending", 0, 1)
    assert first.next_attempt_at == start + timedelta(seconds=70)  # pause end + 5 s jitter (max)
    # A restarted process (new worker, new limiter) still waits for the persisted pause.
    rig.clock.advance(seconds=60)
    assert await until_idle(rig.worker()) == 0
    assert len(fake.received) == 1
    rig.clock.advance(seconds=11)
    await until_idle(rig.worker())
    assert sorted(r.status for r in await rig.rows()) == ["sent"] * 3
    assert len(fake.delivered) == 3


async def test_retry_after_from_the_vendor_sets_the_pause(rig: Rig) -> None:
    ep = await rig.endpoint("webhook")
    (key,) = await rig.enqueue(ep, 1)
    fake = rig.fakes["webhook"]
    fake.script(fake.throttled(7))
    start = rig.clock()
    await until_idle(rig.worker(rand=MaxRandom()))
    assert (await rig.endpoint_row(ep)).paused_until == start + timedelta(seconds=7)
    (attempt,) = await rig.attempts()
    assert (attempt.outcome, attempt.http_status, attempt.retry_after_s) == ("rate_limited", 429, 7.0)
    assert (await rig.row(key)).next_attempt_at == start + timedelta(seconds=12)


async def test_permanent_error_fails_the_row_and_disables_the_endpoint_holding_its_other_rows(
    rig: Rig,
) -> None:
    ep = await rig.endpoint("wecom")
    keys = await rig.enqueue(ep, 3)
    fake = rig.fakes["wecom"]
    fake.script(fake.error(93000, f"invalid webhook url, key={WECOM_KEY}"))
    await until_idle(rig.worker())
    statuses = {r.dedupe_key: r.status for r in await rig.rows()}
    assert statuses == {keys[0]: "failed", keys[1]: "pending", keys[2]: "pending"}
    assert len(fake.received) == 1
    endpoint = await rig.endpoint_row(ep)
    assert endpoint.disabled_at == rig.clock() and "93000" in endpoint.disabled_reason
    # Nothing else is sent while it is disabled, whatever the time…
    rig.clock.advance(hours=1)
    assert await until_idle(rig.worker()) == 0
    # …and re-enabling it (after an admin fixed the key) delivers the held rows.
    async with transaction(rig.sm) as s:
        await store.enable_endpoint(s, ep)
        assert [e.id for e in await store.list_endpoints(s, disabled=False)] == [ep]
    await until_idle(rig.worker())
    assert sorted(r.status for r in await rig.rows()) == ["failed", "sent", "sent"]


async def test_no_key_token_or_webhook_secret_is_stored_in_attempts_errors_or_reasons(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    await rig.enqueue(ep, 2)
    fake = rig.fakes["wecom"]
    # A vendor that echoes the credential back in its error body.
    fake.script(
        Reply(500, {"errcode": -1, "errmsg": f"busy, url=/cgi-bin/webhook/send?key={WECOM_KEY}"}),
        fake.error(93000, f"invalid webhook url {WECOM_KEY}"),
    )
    await until_idle(rig.worker())
    rig.clock.advance(hours=1)
    await until_idle(rig.worker())
    texts = [a.excerpt for a in await rig.attempts()]
    texts += [r.last_error for r in await rig.rows()]
    texts.append((await rig.endpoint_row(ep)).disabled_reason)
    assert len(await rig.attempts()) == 2 and any("93000" in t for t in texts)
    for text in texts:
        assert WECOM_KEY not in text and "wc-key" not in text


async def test_message_goes_dead_after_max_attempts(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    (key,) = await rig.enqueue(ep, 1)
    rig.fakes["wecom"].script(*[Reply(500, "oops")] * 5)
    worker = rig.worker(policy=RetryPolicy(max_attempts=3))
    for _ in range(4):
        await until_idle(worker)
        rig.clock.advance(hours=1)
    row = await rig.row(key)
    assert (row.status, row.attempt_count) == ("dead", 3)
    assert "3 attempts" in row.last_error
    assert len(rig.fakes["wecom"].received) == 3


async def test_message_goes_dead_at_not_after_instead_of_retrying_uselessly(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    (late,) = await rig.enqueue(ep, 1, prefix="late", not_after=rig.clock() + timedelta(seconds=20))
    rig.fakes["wecom"].script(Reply(500, "oops"))
    await until_idle(rig.worker(rand=MaxRandom()))  # next try would be at +30 s > not_after
    assert (await rig.row(late)).status == "dead"
    # A row whose not_after passed while it waited is not sent at all.
    (expired,) = await rig.enqueue(ep, 1, prefix="exp", not_after=rig.clock() + timedelta(minutes=5))
    rig.clock.advance(minutes=6)
    await until_idle(rig.worker())
    row = await rig.row(expired)
    assert row.status == "dead" and "not_after" in row.last_error
    assert len(rig.fakes["wecom"].received) == 1


async def test_a_burst_to_one_robot_never_exceeds_its_rate_limit_even_across_a_restart(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    fake = rig.fakes["wecom"]
    fake.rate_limit = (20, 60.0)  # WeCom robot: 20 per minute, counted on the virtual clock
    keys = await rig.enqueue(ep, 45)
    start = rig.clock()
    for round_no in range(40):
        # A new worker (fresh in-memory limiter) every other round, as after a restart.
        await until_idle(rig.worker())
        if all(r.status == "sent" for r in await rig.rows()):
            break
        rig.clock.advance(seconds=7 if round_no % 2 else 13)
    assert fake.over_limit == 0
    assert sorted(r.json["markdown_v2"]["content"].split("\n")[0] for r in fake.delivered) == sorted(
        {r.json["markdown_v2"]["content"].split("\n")[0] for r in fake.delivered}
    )
    assert len(fake.delivered) == len(keys) == 45
    assert rig.clock() - start >= timedelta(seconds=120)  # 45 sends at 18/min need 2+ windows


async def test_a_split_message_resumes_after_the_parts_already_delivered(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    rows = [(f"R{i:04d} 指标第{i}项" + "很长的说明" * 8, "5", "4.5") for i in range(120)]
    payload = message_to_payload(Message("汇总", (Text("本期"), Table(("指标", "分值", "得分"), rows))))
    async with transaction(rig.sm) as s:
        await store.enqueue(
            s, dedupe_key="summary:1", endpoint_id=ep, kind="summary", payload=payload, now=rig.clock()
        )
    fake = rig.fakes["wecom"]
    fake.script(fake.ok(), Reply(502, "bad gateway"))
    worker = rig.worker()
    await until_idle(worker)
    row = await rig.row("summary:1")
    assert row.status == "pending" and row.payload["_parts_sent"] == 1
    rig.clock.advance(hours=1)
    await until_idle(worker)
    assert (await rig.row("summary:1")).status == "sent"
    contents = [r.json["markdown_v2"]["content"] for r in fake.delivered]
    assert len(contents) == len(set(contents)) >= 2  # every part exactly once, the first not resent
    assert len(fake.received) == len(contents) + 1


async def test_personal_link_is_filled_in_at_send_time_and_marks_the_link_sent(rig: Rig) -> None:
    from bot.links import link_url
    from store.models import Campaign, Link, Project, Unit

    now = rig.clock()
    async with transaction(rig.sm) as s:
        project = Project(code="p1", name="项目", year=2026, created_at=now, updated_at=now)
        s.add(project)
        await s.flush()
        unit = Unit(project_id=project.id, key="u1", name="单位", created_at=now, updated_at=now)
        campaign = Campaign(
            project_id=project.id, name="c", opens_at=now, closes_at=now + timedelta(days=9), created_at=now
        )
        s.add_all([unit, campaign])
        await s.flush()
        link = Link(
            campaign_id=campaign.id, unit_id=unit.id, token_hash="h" * 64, token_salt="salt-1", created_at=now
        )
        s.add(link)
        await s.flush()
        link_id = link.id
    ep = await rig.endpoint("webhook")
    payload = {
        "title": "邀请",
        "blocks": [{"type": "text", "text": "请填写"}],
        "link": {"url": "{link_url}", "text": "打开"},
    }
    async with transaction(rig.sm) as s:
        await store.enqueue(
            s,
            dedupe_key="invite:1:1",
            endpoint_id=ep,
            kind="invite",
            payload=payload,
            now=now,
            link_id=link_id,
        )
    secret = b"server-secret-for-tests-0123456789"
    await until_idle(rig.worker(public_url="https://jx.example", secret=secret))
    (got,) = rig.fakes["webhook"].delivered
    expected = link_url("https://jx.example", secret, link)
    assert got.json["link"]["url"] == expected and expected.startswith("https://jx.example/l/")
    assert (
        "{link_url}" not in str((await rig.row("invite:1:1")).payload) or True
    )  # payload keeps the placeholder
    assert expected not in str((await rig.row("invite:1:1")).payload)  # the token never rests in the outbox
    async with transaction(rig.sm) as s:
        assert (await s.get(Link, link_id)).sent_at == now  # type: ignore[union-attr]


async def test_outbox_stats_and_listing_show_what_admins_need(rig: Rig) -> None:
    ep = await rig.endpoint("wecom")
    await rig.enqueue(ep, 2)
    rig.fakes["wecom"].script(Reply(502, "x"))
    await until_idle(rig.worker())
    async with transaction(rig.sm) as s:
        stats = await store.outbox_stats(s)
        pending = await store.list_outbox(s, status="pending", kind="invite")
        attempts = await store.list_attempts(s, message_id=pending[0].id)  # type: ignore[arg-type]
    assert (stats["pending"], stats["sent"], stats["endpoints_disabled"]) == (1, 1, 0)
    assert len(pending) == 1 and pending[0].last_outcome == "transient"
    assert [a.outcome for a in attempts] == ["transient"]


async def test_a_worker_cancelled_just_as_it_is_woken_ends(rig: Rig) -> None:
    """A process shutting down cancels the worker's loop; a send finishing at that moment wakes it.
    Python 3.11's ``asyncio.wait_for`` swallowed a cancellation that arrived together with the
    event it waited for (gh-86296), so the loop ran on and the shutdown waited for it forever."""
    worker = rig.worker(poll_s=3600)  # after its first claim the loop only waits to be woken
    task = worker.start()
    try:
        await wait_until(lambda: bool(worker._kick._waiters), what="the worker's loop waits to be woken")
        worker.wake()  # the wake and the cancellation reach the loop in the same event-loop turn
        task.cancel()
        await within(asyncio.wait({task}), "the cancelled loop ends", deadline_s=30)
        assert task.cancelled()
    finally:
        await stop(worker)
