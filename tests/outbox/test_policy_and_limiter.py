"""Pure parts: the backoff schedule, its jitter bounds, the sliding-window limiter, payloads."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.channels.base import RateSpec
from bot.channels.message import Bullets, Link, Message, Table, Text
from bot.outbox import RetryPolicy, message_from_payload, message_to_payload
from bot.ratelimit import RateLimiter, buckets_for
from store.models import OutboxMessage

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def test_backoff_ceiling_doubles_from_30_seconds_and_caps_at_30_minutes() -> None:
    policy = RetryPolicy()
    assert [policy.backoff_ceiling(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1800, 1800]


@pytest.mark.parametrize("attempt_no", [1, 2, 5, 8])
def test_backoff_jitter_stays_within_zero_and_the_ceiling_and_spreads(attempt_no: int) -> None:
    policy, rand = RetryPolicy(), random.Random(attempt_no)
    delays = [policy.backoff(attempt_no, rand) for _ in range(2000)]
    ceiling = policy.backoff_ceiling(attempt_no)
    assert all(0 <= d <= ceiling for d in delays)
    # Full jitter: the whole range is used, not just the top.
    assert min(delays) < ceiling * 0.05 and max(delays) > ceiling * 0.95


def _row(**kw: object) -> OutboxMessage:
    base: dict[str, object] = dict(
        dedupe_key="k", endpoint_id=1, kind="invite", payload={}, next_attempt_at=NOW, created_at=NOW
    )
    return OutboxMessage(**{**base, **kw})


def test_policy_gives_up_after_max_attempts_the_age_limit_and_not_after() -> None:
    policy = RetryPolicy()
    assert policy.give_up_reason(_row(attempt_count=7), now=NOW, next_at=NOW + timedelta(seconds=1)) is None
    assert "8 attempts" in (policy.give_up_reason(_row(attempt_count=8), now=NOW, next_at=NOW) or "")
    late = NOW + timedelta(hours=24)
    assert "enqueueing" in (policy.give_up_reason(_row(attempt_count=1), now=NOW, next_at=late) or "")
    cut = _row(attempt_count=1, not_after=NOW + timedelta(minutes=5))
    assert "not_after" in (policy.give_up_reason(cut, now=NOW, next_at=NOW + timedelta(minutes=6)) or "")
    assert policy.give_up_reason(cut, now=NOW, next_at=NOW + timedelta(minutes=4)) is None


def test_limiter_never_allows_more_than_the_budget_in_any_window() -> None:
    limiter = RateLimiter()
    buckets = buckets_for(1, "wecom", [RateSpec(18, 60.0)])
    sent: list[float] = []
    t = 0.0
    while len(sent) < 100:
        wait = limiter.try_acquire(buckets, t)
        if wait == 0:
            sent.append(t)
            t += 0.01
        else:
            t += wait
    for i, start in enumerate(sent):
        assert sum(1 for s in sent[i:] if s < start + 60.0) <= 18
    # …and it is not wasteful: 100 sends need only 5 full windows after the first burst.
    assert sent[-1] < 5 * 60.0 + 1


def test_limiter_counts_sends_recorded_by_a_previous_process() -> None:
    limiter = RateLimiter()
    buckets = buckets_for(3, "wecom", [RateSpec(18, 60.0)])
    for i in range(18):
        limiter.record(buckets, 100.0 + i)
    assert limiter.try_acquire(buckets, 120.0) == pytest.approx(40.0)
    assert limiter.try_acquire(buckets, 160.0) == 0.0


def test_limiter_pause_blocks_only_that_endpoint() -> None:
    limiter = RateLimiter()
    limiter.pause("ep:1", 500.0)
    assert limiter.delay(buckets_for(1, "wecom", [RateSpec(18, 60.0)]), 100.0) == pytest.approx(400.0)
    assert limiter.delay(buckets_for(2, "wecom", [RateSpec(18, 60.0)]), 100.0) == 0.0


def test_telegram_global_budget_is_shared_by_every_chat() -> None:
    limiter = RateLimiter()
    specs = [RateSpec(1, 1.0), RateSpec(2, 1.0, scope="global")]
    assert limiter.try_acquire(buckets_for(1, "telegram", specs), 0.0) == 0.0
    assert limiter.try_acquire(buckets_for(2, "telegram", specs), 0.0) == 0.0
    assert limiter.try_acquire(buckets_for(3, "telegram", specs), 0.0) > 0


def test_payload_round_trips_and_fills_the_link_placeholder_only_at_send_time() -> None:
    message = Message(
        "标题 {x}",
        (Text("a {b}"), Table(("h",), [("c",)]), Bullets(["i"])),
        Link("https://example.org/r", "报告"),
    )
    assert message_from_payload(message_to_payload(message)) == message
    payload = {
        "title": "邀请",
        "blocks": [{"type": "text", "text": "打开 {link_url}"}],
        "link": {"url": "{link_url}", "text": "填写"},
    }
    filled = message_from_payload(payload, link_url="https://j.example/l/tok")
    assert filled.link is not None and filled.link.url == "https://j.example/l/tok"
    assert filled.blocks == (Text("打开 https://j.example/l/tok"),)
    with pytest.raises(ValueError, match="placeholder"):
        message_from_payload(payload)
