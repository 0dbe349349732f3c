"""Failure classes every HTTP adapter shares: refused connections, read timeouts, 5xx, redaction."""

from __future__ import annotations

import pytest

from bot.channels import Outcome, adapter_for
from bot.channels.message import Message, Text
from tests.channels.conftest import (
    ALL_SECRETS,
    FAST_TIMEOUT,
    HTTP_KINDS,
    RigFactory,
    endpoint_for,
    summary_message,
)
from tests.fakes.smtp import free_port
from tests.fakes.vendors import Reply


@pytest.mark.parametrize("kind", HTTP_KINDS)
async def test_a_refused_connection_is_transient(kind: str, client_session) -> None:
    adapter = adapter_for(kind, timeout=FAST_TIMEOUT)
    endpoint = endpoint_for(kind, f"http://127.0.0.1:{free_port()}")
    result = await adapter.send(client_session, endpoint, adapter.render(summary_message())[0])
    assert result.outcome is Outcome.TRANSIENT
    for secret in ALL_SECRETS:
        assert secret not in result.excerpt and secret not in repr(result)


@pytest.mark.parametrize("kind", HTTP_KINDS)
async def test_a_read_timeout_after_the_request_was_sent_is_ambiguous(
    kind: str, make_rig: RigFactory
) -> None:
    rig = await make_rig(kind, timeout=FAST_TIMEOUT)
    rig.fake.script(Reply.slow(0.6, rig.fake.ok()))
    (result,) = await rig.send_message(Message("t", (Text("hello"),)))
    assert result.outcome is Outcome.AMBIGUOUS
    assert len(rig.fake.received) == 1, "the vendor did receive it"


@pytest.mark.parametrize("kind", HTTP_KINDS)
async def test_an_http_500_is_transient(kind: str, make_rig: RigFactory) -> None:
    rig = await make_rig(kind)
    rig.fake.script(Reply(500, "<html>Internal Server Error</html>"))
    (result,) = await rig.send_message(Message("t", (Text("hello"),)))
    assert result.outcome is Outcome.TRANSIENT
    assert result.http_status == 500


@pytest.mark.parametrize("kind", HTTP_KINDS)
async def test_secrets_echoed_by_a_vendor_are_redacted_from_the_result(
    kind: str, make_rig: RigFactory
) -> None:
    rig = await make_rig(kind)
    echo = " ".join(
        [
            *ALL_SECRETS,
            f"/bot{ALL_SECRETS[4]}/sendMessage",
            "https://x/cgi-bin/webhook/send?key=zzzz-unknown-key",
        ]
    )
    rig.fake.script(
        Reply(400, {"errcode": 40058, "code": 19002, "ok": False, "error_code": 400, "description": echo})
    )
    (result,) = await rig.send_message(Message("t", (Text("hello"),)))
    assert result.outcome is not Outcome.OK
    # Its own credentials by value; anything credential-shaped (key=, /bot<token>) by pattern.
    for secret in (*rig.endpoint.secrets(), ALL_SECRETS[4], "zzzz-unknown-key"):
        assert secret not in result.excerpt
        assert secret not in repr(result)
    assert len(result.excerpt.encode()) <= 2048


@pytest.mark.parametrize("kind", HTTP_KINDS)
async def test_every_part_of_a_long_summary_is_accepted_by_the_fake_vendor(
    kind: str, make_rig: RigFactory
) -> None:
    rig = await make_rig(kind)
    results = await rig.send_message(summary_message(rows=400, hostile=True))
    assert [r.outcome for r in results] == [Outcome.OK] * len(results)
    assert all(rec.problems == [] for rec in rig.fake.received)
    assert len(rig.fake.delivered) == len(results)
