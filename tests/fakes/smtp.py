"""A local SMTP server (aiosmtpd) that collects messages and can be scripted to refuse.

with FakeSmtp() as smtp:                      # 127.0.0.1 on a free port
    smtp.script("451 4.3.0 Try again later")  # next DATA is refused, then accepted again
    ...EmailAdapter(SmtpSettings(host=smtp.host, port=smtp.port))...
    assert smtp.messages[0]["Subject"] == "…"
"""

from __future__ import annotations

import socket
from collections import deque
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["FakeSmtp", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot report port 0's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, owner: FakeSmtp) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.owner._rcpt_replies:
            return self.owner._rcpt_replies.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.owner._data_replies:
            return self.owner._data_replies.popleft()
        self.owner.envelopes.append(envelope)
        self.owner.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class FakeSmtp:
    """SMTP server in a background thread. `messages` are parsed EmailMessages (policy.default);
    `envelopes` carry mail_from/rcpt_tos. Use as a context manager or call start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []
        self._data_replies: deque[str] = deque()
        self._rcpt_replies: deque[str] = deque()
        self._controller = Controller(_Handler(self), hostname=host, port=self.port)

    def script(self, *replies: str, at: str = "DATA") -> None:
        """Queue raw SMTP replies ("451 4.3.0 Try later", "550 5.1.1 No such user") for the next
        DATA (default) or RCPT commands; afterwards the server accepts again."""
        (self._rcpt_replies if at.upper() == "RCPT" else self._data_replies).extend(replies)

    def start(self) -> FakeSmtp:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
