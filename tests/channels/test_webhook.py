"""Generic signed webhook adapter against the fake receiver (which verifies the HMAC)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from bot.channels import Outcome
from bot.channels.message import Attachment, Message, Text
from tests.channels.conftest import SECRET, RigFactory, summary_message
from tests.fakes.vendors import Reply

HELLO = Message("t", (Text("hello"),))


async def test_webhook_posts_structured_json_signed_over_timestamp_and_raw_body(make_rig: RigFactory) -> None:
    rig = await make_rig("webhook")
    rig.adapter.clock = rig.fake.clock = lambda: 1_764_000_000.0
    (part,) = rig.adapter.render(summary_message(hostile=True), dedupe_key="summary:g1:slot")
    result = await rig.send(part)
    (rec,) = rig.fake.received
    assert result.ok and result.vendor_msg_id == "m1" and rec.problems == []
    assert rec.path == "/hooks/jixiao"
    assert rec.headers["X-Jixiao-Timestamp"] == "1764000000"
    # The README's algorithm, written out here: HMAC-SHA256(secret, timestamp + "." + body), hex.
    signed = b"1764000000." + rec.body
    want = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert rec.headers["X-Jixiao-Signature"] == want
    assert rec.json == {**part.payload, "sent_at": 1764000000}
    assert rec.json["dedupe_key"] == "summary:g1:slot"
    assert rec.json["blocks"][1]["rows"][0][0] == "R0001 产出数量指标第1项"
    assert "<script>" in rec.json["blocks"][0]["text"], "structured blocks stay raw; receivers escape"


async def test_a_replayed_webhook_is_refused_by_a_receiver_that_checks_the_timestamp(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig("webhook")
    rig.adapter.clock = rig.fake.clock = lambda: 1_764_000_000.0
    (result,) = await rig.send_message(HELLO)
    assert result.ok
    (rec,) = rig.fake.received
    # The same bytes and headers again, ten minutes later: the signature still matches the old
    # timestamp, and a new timestamp would not match the signature.
    rig.fake.clock = lambda: 1_764_000_600.0
    headers = {k: rec.headers[k] for k in ("X-Jixiao-Timestamp", "X-Jixiao-Signature")}
    async with rig.session.post(rig.fake.base_url + rec.path, data=rec.body, headers=headers) as replay:
        assert replay.status == 401
    headers["X-Jixiao-Timestamp"] = "1764000600"
    async with rig.session.post(rig.fake.base_url + rec.path, data=rec.body, headers=headers) as forged:
        assert forged.status == 401
    assert [r.problems for r in rig.fake.received[1:]] == [
        ["stale timestamp (replay?)"],
        ["signature mismatch"],
    ]


async def test_a_webhook_whose_secret_variable_is_missing_is_never_sent_unsigned(
    make_rig: RigFactory,
) -> None:
    from bot.outbox import endpoint_from_row
    from store.models import ChannelEndpoint

    rig = await make_rig("webhook")
    row = ChannelEndpoint(
        id=7, kind="webhook", address=rig.fake.base_url + "/hooks/jixiao", config={"secret_env": "JX_T_UNSET"}
    )
    endpoint = endpoint_from_row(row, env={})
    (part,) = rig.adapter.render(HELLO)
    result = await rig.adapter.send(rig.session, endpoint, part)
    assert result.outcome is Outcome.PERMANENT
    assert "secret" in (result.vendor_msg or "") and "unsigned" in (result.vendor_msg or "")
    assert rig.fake.received == []


async def test_webhook_wrong_secret_is_rejected_as_permanent(make_rig: RigFactory) -> None:
    rig = await make_rig("webhook", secret="receiver-has-a-different-secret")
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.http_status) == (Outcome.PERMANENT, 401)


@pytest.mark.parametrize(
    ("reply", "outcome", "retry"),
    [
        (Reply(429, "slow", {"Retry-After": "4"}), Outcome.RATE_LIMITED, 4.0),
        (Reply(503, "down"), Outcome.TRANSIENT, None),
        (Reply(422, "bad"), Outcome.PERMANENT, None),
        (Reply(204, ""), Outcome.OK, None),
    ],
)
async def test_webhook_status_decides_the_outcome(
    make_rig: RigFactory, reply: Reply, outcome: Outcome, retry: float | None
) -> None:
    rig = await make_rig("webhook")
    rig.fake.script(reply)
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.retry_after_s) == (outcome, retry)


async def test_webhook_attachments_travel_as_base64(make_rig: RigFactory) -> None:
    rig = await make_rig("webhook")
    message = Message("t", (Text("x"),), attachments=(Attachment("a.csv", b"a,b\n1,2\n", "text/csv"),))
    (result,) = await rig.send_message(message)
    (att,) = rig.fake.received[0].json["attachments"]
    assert result.ok and base64.b64decode(att["base64"]) == b"a,b\n1,2\n" and att["mime"] == "text/csv"
