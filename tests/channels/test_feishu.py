"""Feishu signed custom bot against the fake Feishu (signature in the body, seconds timestamp)."""

from __future__ import annotations

import pytest

from bot.channels import Outcome
from bot.channels.base import Part
from bot.channels.message import Message, Text
from tests.channels.conftest import FEISHU_TOKEN, RigFactory, summary_message
from tests.fakes.vendors import Reply

HELLO = Message("t", (Text("hello"),))


async def test_feishu_puts_a_seconds_timestamp_and_sign_in_the_body(make_rig: RigFactory) -> None:
    rig = await make_rig("feishu")
    rig.adapter.clock = lambda: 1_764_000_000.9
    rig.fake.clock = lambda: 1_764_000_010.0
    (part,) = rig.adapter.render(summary_message())
    result = await rig.send(part)
    (rec,) = rig.fake.received
    assert result.ok and rec.problems == []
    assert rec.path == f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}"
    assert rec.json["timestamp"] == "1764000000"
    assert {k: v for k, v in rec.json.items() if k not in ("timestamp", "sign")} == part.payload
    assert rec.json["msg_type"] == "interactive"
    assert rec.json["card"]["header"]["title"]["content"] == "绩效评价汇总 2026-11"


async def test_feishu_wrong_secret_is_a_permanent_19021(make_rig: RigFactory) -> None:
    rig = await make_rig("feishu", secret="another-secret-entirely")
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code) == (Outcome.PERMANENT, "19021")


async def test_feishu_11232_is_rate_limited_and_honours_the_reset_header(make_rig: RigFactory) -> None:
    rig = await make_rig("feishu")
    rig.fake.script(rig.fake.throttled(retry_after_s=7))
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.vendor_code, result.retry_after_s) == (Outcome.RATE_LIMITED, "11232", 7.0)


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(429, {"code": 99991400, "msg": "request trigger frequency limit"}), Outcome.RATE_LIMITED),
        (Reply(200, {"code": 9499, "msg": "too many request"}), Outcome.RATE_LIMITED),
        (Reply(200, {"code": 9499, "msg": "Bad Request"}), Outcome.PERMANENT),
        (Reply(400, {"code": 9499, "msg": "Bad Request"}), Outcome.PERMANENT),
        (Reply(200, {"code": 19024, "msg": "Key Words Not Found"}), Outcome.PERMANENT),
        (Reply(200, {"code": 19022, "msg": "Ip Not Allowed"}), Outcome.PERMANENT),
        (Reply(200, {"StatusCode": 0, "StatusMessage": "success"}), Outcome.OK),
    ],
)
async def test_feishu_body_codes_decide_the_outcome(
    make_rig: RigFactory, reply: Reply, outcome: Outcome
) -> None:
    rig = await make_rig("feishu")
    rig.fake.script(reply)
    (result,) = await rig.send_message(HELLO)
    assert result.outcome is outcome


async def test_feishu_sends_unsigned_when_the_bot_has_no_secret(make_rig: RigFactory) -> None:
    rig = await make_rig("feishu", secret=None)
    endpoint = rig.endpoint.__class__("feishu", "plain", {"token": FEISHU_TOKEN}, rig.endpoint.base_url)
    result = await rig.adapter.send(rig.session, endpoint, rig.adapter.render(HELLO)[0])
    assert result.ok and "sign" not in rig.fake.received[0].json


async def test_feishu_a_body_over_20_kb_fails_permanently_instead_of_pausing_the_bot(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig("feishu")
    (part,) = rig.adapter.render(HELLO)
    oversized = Part({**part.payload, "padding": "x" * 21_000}, part.index, part.total, 21_000)
    result = await rig.send(oversized)
    assert rig.fake.received[0].problems, "the fake refused the body for its size"
    assert (result.outcome, result.vendor_code) == (Outcome.PERMANENT, "9499")
