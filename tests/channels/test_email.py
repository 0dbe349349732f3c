"""Email adapter against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import aiohttp

from bot.channels import Endpoint, Outcome, SmtpSettings
from bot.channels.email import EmailAdapter, message_id
from bot.channels.message import Attachment, Message, Text
from tests.channels.conftest import summary_message
from tests.fakes.smtp import FakeSmtp, free_port

TO = {"to": "coordinator@unit.example"}


def adapter_for_smtp(smtp: FakeSmtp, **kwargs: object) -> EmailAdapter:
    return EmailAdapter(
        SmtpSettings(host=smtp.host, port=smtp.port, sender="jixiao@bot.example", timeout_s=5, **kwargs)
    )  # type: ignore[arg-type]


async def test_email_sends_text_and_html_alternatives_with_the_attachment(
    fake_smtp: FakeSmtp, client_session: aiohttp.ClientSession
) -> None:
    adapter = adapter_for_smtp(fake_smtp)
    message = Message(
        "绩效评价汇总",
        summary_message(hostile=True).blocks,
        attachments=(
            Attachment(
                "汇总.xlsx",
                b"PK\x03\x04xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
        ),
    )
    (part,) = adapter.render(message, dedupe_key="summary:g1:2026-11-25T09:00")
    result = await adapter.send(client_session, Endpoint("email", "coord", TO), part)

    assert result.ok
    (mail,) = fake_smtp.messages
    assert fake_smtp.envelopes[0].rcpt_tos == ["coordinator@unit.example"]
    assert mail["Subject"] == "绩效评价汇总" and mail["From"] == "jixiao@bot.example"
    assert (
        mail["Message-ID"]
        == message_id("summary:g1:2026-11-25T09:00", "jixiao.local")
        == result.vendor_msg_id
    )
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "<table" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert "R0001" in text and "R0001" in html
    (att,) = list(mail.iter_attachments())
    assert att.get_filename() == "汇总.xlsx" and att.get_content() == b"PK\x03\x04xlsx"


async def test_the_same_dedupe_key_always_gives_the_same_message_id() -> None:
    a = EmailAdapter().render(summary_message(), dedupe_key="invite:c1:org9")[0]
    b = EmailAdapter().render(summary_message(), dedupe_key="invite:c1:org9")[0]
    endpoint = Endpoint("email", "x", TO)
    assert EmailAdapter().build(endpoint, a)["Message-ID"] == EmailAdapter().build(endpoint, b)["Message-ID"]


async def test_an_smtp_4xx_reply_is_transient(
    fake_smtp: FakeSmtp, client_session: aiohttp.ClientSession
) -> None:
    fake_smtp.script("451 4.3.0 Try again later")
    adapter = adapter_for_smtp(fake_smtp)
    result = await adapter.send(
        client_session, Endpoint("email", "x", TO), adapter.render(summary_message())[0]
    )
    assert (result.outcome, result.vendor_code) == (Outcome.TRANSIENT, "451")
    assert fake_smtp.messages == []


async def test_an_smtp_5xx_reply_is_permanent(
    fake_smtp: FakeSmtp, client_session: aiohttp.ClientSession
) -> None:
    fake_smtp.script("550 5.7.1 Rejected")
    adapter = adapter_for_smtp(fake_smtp)
    result = await adapter.send(
        client_session, Endpoint("email", "x", TO), adapter.render(summary_message())[0]
    )
    assert (result.outcome, result.vendor_code) == (Outcome.PERMANENT, "550")


async def test_a_refused_recipient_is_permanent(
    fake_smtp: FakeSmtp, client_session: aiohttp.ClientSession
) -> None:
    fake_smtp.script("550 5.1.1 No such user", at="RCPT")
    adapter = adapter_for_smtp(fake_smtp)
    result = await adapter.send(
        client_session, Endpoint("email", "x", TO), adapter.render(summary_message())[0]
    )
    assert (result.outcome, result.vendor_code) == (Outcome.PERMANENT, "550")


async def test_a_refused_smtp_connection_is_transient(client_session: aiohttp.ClientSession) -> None:
    adapter = EmailAdapter(
        SmtpSettings(host="127.0.0.1", port=free_port(), timeout_s=2, password="smtp-pass-never-shown")
    )
    result = await adapter.send(
        client_session, Endpoint("email", "x", TO), adapter.render(summary_message())[0]
    )
    assert result.outcome is Outcome.TRANSIENT
    assert "smtp-pass-never-shown" not in repr(result) and "smtp-pass-never-shown" not in repr(adapter.smtp)


def test_a_newline_in_the_title_cannot_inject_mail_headers() -> None:
    (part,) = EmailAdapter().render(Message("Hi\nBcc: victim@example.com", (Text("x"),)))
    mail = EmailAdapter().build(Endpoint("email", "x", TO), part)
    assert mail["Bcc"] is None and mail["Subject"] == "Hi Bcc: victim@example.com"


async def test_endpoint_config_overrides_the_smtp_settings(
    fake_smtp: FakeSmtp, client_session: aiohttp.ClientSession
) -> None:
    adapter = EmailAdapter(SmtpSettings(host="127.0.0.1", port=1))
    endpoint = Endpoint("email", "x", {**TO, "port": fake_smtp.port, "sender": "ops@unit.example"})
    result = await adapter.send(client_session, endpoint, adapter.render(summary_message())[0])
    assert result.ok and fake_smtp.messages[0]["From"] == "ops@unit.example"
