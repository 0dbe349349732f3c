"""Console channel: prints the plain-text rendering to a stream (stdout by default) for local use and
demos. Never splits, never fails."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import aiohttp

from ._render import PlainFlavor, split_message
from .base import ChannelAdapter, Endpoint, Outcome, Part, Result, part_key
from .message import Message


class ConsoleAdapter(ChannelAdapter):
    kind = "console"
    default_penalty_s = 0.0
    max_part_size = 10**9
    size_unit = "chars"

    flavor = PlainFlavor()

    def __init__(self, stream: TextIO | None = None, **kwargs: object) -> None:
        """`stream` defaults to sys.stdout looked up at send time (so pytest's capture sees it)."""
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.stream = stream

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        (t,) = split_message(message, self.flavor, limit=10**9, cost=len, overhead=lambda title: 0)
        text = f"{self.flavor.heading(t.title)}\n{t.body}".rstrip() + "\n"
        for attachment in message.attachments:
            text += (
                f"[attachment] {attachment.filename} ({attachment.mime}, {len(attachment.content)} bytes)\n"
            )
        return [Part({"text": text}, 1, 1, len(text), "chars", dedupe_key=part_key(dedupe_key, 1, 1))]

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        started = time.perf_counter()
        stream = self.stream or sys.stdout
        stream.write(f"--- [{endpoint.kind}:{endpoint.name}] part {part.index}/{part.total} ---\n")
        stream.write(str(part.payload.get("text", "")))
        stream.flush()
        return Result(Outcome.OK, latency_ms=(time.perf_counter() - started) * 1000)
