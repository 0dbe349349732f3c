"""The coordinators' score summary: the pure content now lives in :mod:`bot.summary`, shared with
the bot's chat-command replies (``bot`` never imports ``scheduler``). Re-exported here for the
summary job and its tests."""

from __future__ import annotations

from bot.summary import (
    MINUS,
    Names,
    SummaryData,
    build_summary,
    changes,
    deviations,
    message_to_payload,
    payload_to_message,
    signed,
    table_rows,
)

__all__ = [
    "MINUS",
    "Names",
    "SummaryData",
    "build_summary",
    "changes",
    "deviations",
    "message_to_payload",
    "payload_to_message",
    "signed",
    "table_rows",
]
