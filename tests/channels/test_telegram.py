"""Telegram Bot API adapter against the fake Bot API (which parses HTML like Telegram does)."""

from __future__ import annotations

import pytest

from bot.channels import Outcome
from bot.channels.message import Attachment, Message, Text
from tests.channels.conftest import TELEGRAM_CHAT, TELEGRAM_TOKEN, RigFactory, summary_message
from tests.fakes.vendors import Reply

HELLO = Message("t", (Text("hello"),))


async def test_telegram_sends_html_to_the_chat_and_returns_the_message_id(make_rig: RigFactory) -> None:
    rig = await make_rig("telegram")
    (part,) = rig.adapter.render(summary_message(hostile=True))
    result = await rig.send(part)
    (rec,) = rig.fake.received
    assert rec.problems == [], "the fake's HTML parser accepted our escaping"
    assert result.ok and result.vendor_msg_id == "101"
    assert rec.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert rec.json == {"chat_id": TELEGRAM_CHAT, **part.payload}
    assert rec.json["parse_mode"] == "HTML" and "<pre>" in rec.json["text"]
    assert rec.json["link_preview_options"] == {"is_disabled": True}
    assert "disable_web_page_preview" not in rec.json, "the pre-7.0 field is gone"


async def test_telegram_429_is_rate_limited_for_exactly_retry_after_seconds(make_rig: RigFactory) -> None:
    rig = await make_rig("telegram")
    rig.fake.script(rig.fake.throttled(retry_after_s=3))
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.http_status, result.retry_after_s) == (Outcome.RATE_LIMITED, 429, 3.0)


async def test_telegram_chat_not_found_is_permanent(make_rig: RigFactory) -> None:
    rig = await make_rig("telegram", chats={"-100999"})
    (result,) = await rig.send_message(HELLO)
    assert (result.outcome, result.http_status) == (Outcome.PERMANENT, 400)
    assert "chat not found" in (result.vendor_msg or "")


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (
            Reply(
                403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
            ),
            Outcome.PERMANENT,
        ),
        (Reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}), Outcome.PERMANENT),
        (Reply(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}), Outcome.TRANSIENT),
        (Reply(200, {"ok": False, "error_code": 400, "description": "Bad Request: x"}), Outcome.PERMANENT),
    ],
)
async def test_telegram_errors_are_classified_by_code(
    make_rig: RigFactory, reply: Reply, outcome: Outcome
) -> None:
    rig = await make_rig("telegram")
    rig.fake.script(reply)
    (result,) = await rig.send_message(HELLO)
    assert result.outcome is outcome


async def test_telegram_group_migration_is_permanent_and_reports_the_new_chat_id(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig("telegram")
    body = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": -1009876},
    }
    rig.fake.script(Reply(400, body))
    (result,) = await rig.send_message(HELLO)
    assert result.outcome is Outcome.PERMANENT and result.details == {"migrate_to_chat_id": "-1009876"}


async def test_telegram_attachments_go_out_as_send_document(make_rig: RigFactory) -> None:
    rig = await make_rig("telegram")
    message = Message(
        "t",
        (Text("see file"),),
        attachments=(Attachment("汇总<1>.xlsx", b"PK\x03\x04data", "application/vnd.ms-excel"),),
    )
    parts = rig.adapter.render(message)
    assert [p.op for p in parts] == ["message", "document"] and parts[1].index == 2 and parts[1].total == 2
    results = [await rig.send(p) for p in parts]
    assert all(r.ok for r in results)
    doc = rig.fake.received[1]
    assert doc.path.endswith("/sendDocument") and doc.problems == []
    assert doc.form["document"] == {"filename": "汇总<1>.xlsx", "content": b"PK\x03\x04data"}
    assert doc.form["caption"] == "汇总&lt;1&gt;.xlsx" and doc.form["chat_id"] == TELEGRAM_CHAT


def test_telegram_limits_include_a_global_budget_under_30_per_second() -> None:
    from bot.channels.telegram import TelegramAdapter

    (glob,) = [r for r in TelegramAdapter.limits if r.scope == "global"]
    assert glob.count / glob.per_seconds < 30
