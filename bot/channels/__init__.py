"""Outbound channel adapters (WeCom, DingTalk, Feishu, Telegram, Slack, email, generic webhook,
console) behind one contract; see base.py. No I/O at import time."""

from .base import ChannelAdapter, Endpoint, Outcome, Part, RateSpec, Result, redact
from .email import SmtpSettings
from .message import Attachment, Block, Bullets, Link, Message, Table, Text
from .registry import KINDS, adapter_for, build_adapters

__all__ = [
    "KINDS",
    "Attachment",
    "Block",
    "Bullets",
    "ChannelAdapter",
    "Endpoint",
    "Link",
    "Message",
    "Outcome",
    "Part",
    "RateSpec",
    "Result",
    "SmtpSettings",
    "Table",
    "Text",
    "adapter_for",
    "build_adapters",
    "redact",
]
