"""Build adapters by kind. Nothing happens at import time; the composition root calls these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

import aiohttp

from .base import ChannelAdapter
from .console import ConsoleAdapter
from .dingtalk import DingTalkAdapter
from .email import EmailAdapter, SmtpSettings
from .feishu import FeishuAdapter
from .slack import SlackAdapter
from .telegram import TelegramAdapter
from .webhook import WebhookAdapter
from .wecom import WeComAdapter

_HTTP: dict[str, type[ChannelAdapter]] = {
    cls.kind: cls
    for cls in (WeComAdapter, DingTalkAdapter, FeishuAdapter, TelegramAdapter, SlackAdapter, WebhookAdapter)
}
KINDS: tuple[str, ...] = (*_HTTP, "email", "console")


def adapter_for(
    kind: str,
    *,
    base_url: str | None = None,
    smtp: SmtpSettings | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
    stream: TextIO | None = None,
) -> ChannelAdapter:
    """A new adapter for `kind`; ValueError names the known kinds if `kind` is unknown."""
    if kind in _HTTP:
        return _HTTP[kind](base_url, timeout=timeout)
    if kind == "email":
        return EmailAdapter(smtp)
    if kind == "console":
        return ConsoleAdapter(stream)
    raise ValueError(f"unknown channel kind {kind!r}; known kinds: {', '.join(KINDS)}")


def build_adapters(
    base_urls: Mapping[str, str] | None = None,
    smtp: SmtpSettings | None = None,
    *,
    timeout: aiohttp.ClientTimeout | None = None,
    stream: TextIO | None = None,
) -> dict[str, ChannelAdapter]:
    """One adapter per kind. `base_urls` maps kind → origin override (e.g. fakes in tests)."""
    base_urls = base_urls or {}
    unknown = set(base_urls) - set(KINDS)
    if unknown:
        raise ValueError(f"base_urls has unknown kinds {sorted(unknown)}; known kinds: {', '.join(KINDS)}")
    return {
        kind: adapter_for(kind, base_url=base_urls.get(kind), smtp=smtp, timeout=timeout, stream=stream)
        for kind in KINDS
    }
