"""Email over SMTP (aiosmtplib): multipart/alternative text + HTML, with attachments.

The HTML part shows tables as real <table>s; every user string is HTML-escaped. When the part carries
a dedupe key, the Message-ID is derived from it, so a resend after an AMBIGUOUS attempt has the same
Message-ID and mail clients that thread by it show a single message.

Outcomes: SMTP 4xx reply → TRANSIENT; 5xx → PERMANENT; connection refused / connect timeout →
TRANSIENT; a read timeout or a dropped connection once the session started → AMBIGUOUS.
SMTP settings come from the constructor (`SmtpSettings`) and can be overridden per endpoint via
`config` keys host, port, username, password, starttls, use_tls, sender; `config["to"]` is the
recipient address (or a list of them).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate

import aiohttp
import aiosmtplib

from ._render import PlainFlavor, html_escape, split_message
from .base import ChannelAdapter, Endpoint, Outcome, Part, RateSpec, Result, excerpt, part_key
from .message import Bullets, Message, Table, Text


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the SMTP server. `timeout_s` is in seconds and applies to each SMTP step."""

    host: str = "localhost"
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    use_tls: bool = False
    sender: str = "jixiao@localhost"
    timeout_s: float = 30.0
    msgid_domain: str = "jixiao.local"


def message_id(dedupe_key: str, domain: str) -> str:
    """A stable Message-ID for a dedupe key (hashed: keys may hold characters a Message-ID cannot)."""
    return f"<{hashlib.sha256(dedupe_key.encode()).hexdigest()[:40]}@{domain}>"


def html_body(message: Message) -> str:
    """A small, self-contained HTML rendering; everything user-supplied is escaped."""
    out = [
        '<!doctype html><html><head><meta charset="utf-8"></head>'
        '<body style="font-family:sans-serif;font-size:14px">',
        f"<h2>{html_escape(message.title)}</h2>",
    ]
    for block in message.blocks:
        if isinstance(block, Text):
            out.append("<p>" + "<br>".join(html_escape(line) for line in block.text.splitlines()) + "</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{html_escape(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            cell = 'style="border:1px solid #ccc;padding:4px 8px"'
            head = "".join(f"<th {cell}>{html_escape(h)}</th>" for h in block.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td {cell}>{html_escape(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            out.append(
                f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
            )
    if message.link is not None:
        out.append(f'<p><a href="{html_escape(message.link.url)}">{html_escape(message.link.text)}</a></p>')
    out.append("</body></html>")
    return "\n".join(out)


class EmailAdapter(ChannelAdapter):
    kind = "email"
    vendor_caps = ()
    limits = (RateSpec(30, 60.0),)  # provider-specific; a polite default for shared SMTP relays
    default_penalty_s = 300.0
    max_part_size = 25_000_000  # common provider cap on a whole message, bytes
    size_unit = "bytes"

    def __init__(self, smtp: SmtpSettings | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.smtp = smtp or SmtpSettings()

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """One part: subject, text/plain and text/html bodies; attachments travel on the part."""
        (t,) = split_message(message, PlainFlavor(), limit=10**9, cost=len, overhead=lambda title: 0)
        text = f"{message.title}\n\n{t.body}".rstrip() + "\n"
        # Header injection: a newline in the subject would start a new header.
        subject = " ".join(message.title.splitlines())
        payload = {"subject": subject, "text": text, "html": html_body(message)}
        size = sum(len(v.encode()) for v in payload.values()) + sum(
            len(a.content) * 4 // 3 for a in message.attachments
        )
        return [
            Part(
                payload,
                1,
                1,
                size,
                "bytes",
                attachments=message.attachments,
                dedupe_key=part_key(dedupe_key, 1, 1),
            )
        ]

    def _settings(self, endpoint: Endpoint) -> SmtpSettings:
        overrides = {
            k: endpoint.config[k]
            for k in ("host", "port", "username", "password", "starttls", "use_tls", "sender")
            if k in endpoint.config
        }
        return replace(self.smtp, **overrides) if overrides else self.smtp

    def build(self, endpoint: Endpoint, part: Part) -> EmailMessage:
        """The MIME message for `part` (exposed for tests and previews)."""
        settings = self._settings(endpoint)
        to = endpoint.config.get("to")
        recipients = [to] if isinstance(to, str) else list(to or [])
        mail = EmailMessage()
        mail["Subject"] = str(part.payload["subject"])
        mail["From"] = settings.sender
        mail["To"] = ", ".join(recipients)
        mail["Date"] = formatdate(self.clock(), localtime=False)
        if part.dedupe_key:
            mail["Message-ID"] = message_id(part.dedupe_key, settings.msgid_domain)
        mail.set_content(str(part.payload["text"]))
        mail.add_alternative(str(part.payload["html"]), subtype="html")
        for attachment in part.attachments:
            maintype, _, subtype = attachment.mime.partition("/")
            mail.add_attachment(
                attachment.content,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.filename,
            )
        return mail

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        """`session` is unused (SMTP is not HTTP); it is accepted so every adapter has one signature."""
        settings = self._settings(endpoint)
        if not endpoint.config.get("to"):
            return Result(Outcome.PERMANENT, vendor_msg="endpoint config has no 'to'")
        mail = self.build(endpoint, part)
        secrets = (*endpoint.secrets(), settings.password or "")
        started = time.perf_counter()

        def result(outcome: Outcome, code: int | None, msg: str) -> Result:
            clean = excerpt(msg, secrets)
            return Result(
                outcome,
                vendor_code=None if code is None else str(code),
                vendor_msg=clean[:200],
                vendor_msg_id=str(mail["Message-ID"])
                if outcome is Outcome.OK and mail["Message-ID"]
                else None,
                latency_ms=(time.perf_counter() - started) * 1000,
                excerpt=clean,
            )

        try:
            await aiosmtplib.send(
                mail,
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
                start_tls=settings.starttls,
                use_tls=settings.use_tls,
                timeout=settings.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            # Every recipient refused: permanent only if every refusal was a 5xx.
            outcome = Outcome.PERMANENT if codes and all(c >= 500 for c in codes) else Outcome.TRANSIENT
            return result(
                outcome, max(codes, default=None), "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            )
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as exc:
            return result(Outcome.TRANSIENT, None, f"{type(exc).__name__}: {exc}")
        except aiosmtplib.SMTPResponseException as exc:
            outcome = Outcome.PERMANENT if exc.code >= 500 else Outcome.TRANSIENT
            return result(outcome, exc.code, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPReadTimeoutError, aiosmtplib.SMTPServerDisconnected) as exc:
            return result(Outcome.AMBIGUOUS, None, f"{type(exc).__name__}: {exc}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return result(Outcome.TRANSIENT, None, f"{type(exc).__name__}: {exc}")
        return result(Outcome.OK, 250, "accepted")
