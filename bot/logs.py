"""Structured logs: one JSON object per line on stderr, secrets never included.

Personal link tokens (``/l/<token>``) and signed report codes (``/r/<code.expiry.sig>``) are
bearer credentials that travel in URL paths. :func:`redact_tokens` is the one rule that removes
them from text that is logged; it is applied to the error log (``bot.errors``), to aiohttp's
access log (:class:`RedactingAccessLogger`, used by ``jixiao serve``), to delivery attempt
records (``bot.channels.base.redact``), and once more to every line this module formats.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from aiohttp.abc import BaseRequest, StreamResponse
from aiohttp.web_log import AccessLogger

REDACTED = "***"

#: ``/l/<token>`` and ``/r/<signed>`` anywhere in a text (path, full URL, Referer, message).
#: The token segment is whatever URL-safe text follows, up to the next ``/``, ``?``, ``#``,
#: quote or space (link tokens are 32 base64url characters; report codes ``code.expiry.sig``).
_TOKEN_PATH = re.compile(r"(/[lr]/)[A-Za-z0-9_.~%=-]+")


def redact_tokens(text: str) -> str:
    """``text`` with every link and report token replaced by ``***`` (``/l/***/answers``)."""
    return _TOKEN_PATH.sub(rf"\g<1>{REDACTED}", text)


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access logger with tokens redacted from every logged value (request line,
    Referer, any header in the format)."""

    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [
            (key, redact_tokens(value) if isinstance(value, str) else value)
            for key, value in super()._format_line(request, response, time)
        ]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact_tokens(record.getMessage()),
        }
        for key in ("event", "project", "campaign", "outbox_id", "endpoint", "outcome", "schedule_id"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exc"] = redact_tokens(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
