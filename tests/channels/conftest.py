"""Rigs that wire each HTTP adapter to its fake vendor on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.channels import Endpoint, Part, adapter_for
from bot.channels.base import ChannelAdapter
from bot.channels.message import Bullets, Link, Message, Table, Text
from tests.fakes.fixtures import client_session, fake_smtp  # noqa: F401
from tests.fakes.vendors import FAKES, FakeVendor

SECRET = "SEC-sign-secret-0123456789abcdef"
WECOM_KEY = "wc-key-5f1c0a77-4e1b"
DINGTALK_TOKEN = "dt-token-9a8b7c6d5e4f"
FEISHU_TOKEN = "fs-hook-1234-abcd-5678"
TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TELEGRAM_CHAT = "-1001234567890"
SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/slackSecretPath99"
WEBHOOK_URL = "https://receiver.example/hooks/jixiao"

HTTP_KINDS = ("wecom", "dingtalk", "feishu", "telegram", "slack", "webhook")
#: Every credential a Result or repr must never show.
ALL_SECRETS = (SECRET, WECOM_KEY, DINGTALK_TOKEN, FEISHU_TOKEN, TELEGRAM_TOKEN, "slackSecretPath99")

FAST_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=1.0, sock_read=0.2)


def endpoint_for(kind: str, base_url: str | None) -> Endpoint:
    config: dict[str, Any] = {
        "wecom": {"key": WECOM_KEY},
        "dingtalk": {"access_token": DINGTALK_TOKEN, "secret": SECRET},
        "feishu": {"token": FEISHU_TOKEN, "secret": SECRET},
        "telegram": {"token": TELEGRAM_TOKEN, "chat_id": TELEGRAM_CHAT},
        "slack": {"url": SLACK_URL},
        "webhook": {"url": WEBHOOK_URL, "secret": SECRET},
    }[kind]
    return Endpoint(kind, f"{kind}-coordinators", config, base_url)


def fake_for(kind: str, **kwargs: Any) -> FakeVendor:
    if kind in ("dingtalk", "feishu", "webhook"):
        kwargs.setdefault("secret", SECRET)
    if kind == "wecom":
        kwargs.setdefault("keys", {WECOM_KEY})
    if kind == "telegram":
        kwargs.setdefault("tokens", {TELEGRAM_TOKEN})
        kwargs.setdefault("chats", {TELEGRAM_CHAT})
    return FAKES[kind](**kwargs)


@dataclass
class Rig:
    """An adapter, the fake it talks to, an endpoint pointing at the fake, and a session."""

    kind: str
    fake: FakeVendor
    adapter: ChannelAdapter
    endpoint: Endpoint
    session: aiohttp.ClientSession

    async def send(self, part: Part):
        return await self.adapter.send(self.session, self.endpoint, part)

    async def send_message(self, message: Message) -> list[Any]:
        return [await self.send(p) for p in self.adapter.render(message)]


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
def make_rig(aiohttp_server: Any, client_session: aiohttp.ClientSession) -> RigFactory:  # noqa: F811
    async def make(kind: str, *, timeout: aiohttp.ClientTimeout | None = None, **fake_kwargs: Any) -> Rig:  # noqa: ASYNC109
        fake = fake_for(kind, **fake_kwargs)
        base = await fake.serve(aiohttp_server)
        adapter = adapter_for(kind, timeout=timeout)
        return Rig(kind, fake, adapter, endpoint_for(kind, base), client_session)

    return make


def summary_message(rows: int = 3, *, hostile: bool = False) -> Message:
    """A score summary like the real ones: text, a table with `rows` rows (first cell "R0001"…), bullets
    and a report link."""
    table = Table(
        ("指标", "分值", "得分", "得分率"),
        [(f"R{i:04d} 产出数量指标第{i}项", "5", "4.5", "90.00%") for i in range(1, rows + 1)],
    )
    text = "本期得分 96.5 分，等级 优。"
    if hostile:
        text += "\n<script>alert('x')</script> **bold** _it_ [evil](javascript:alert(1)) <@all> <!channel> `code` | a & b"
    return Message(
        "绩效评价汇总 2026-11",
        (Text(text), table, Bullets(["未回复单位：3 家", "未确认拨款：2 笔"])),
        Link("https://jixiao.example/r/abc?x=1&y=2", "完整报告"),
    )


def part_text(kind: str, part: Part) -> str:
    """The user-visible text of a rendered part."""
    p = part.payload
    if kind == "wecom":
        return p["markdown_v2"]["content"]
    if kind == "dingtalk":
        return p["markdown"]["text"]
    if kind == "feishu":
        return p["card"]["header"]["title"]["content"] + "\n" + p["card"]["elements"][0]["content"]
    if kind in ("telegram", "slack", "console"):
        return p["text"]
    if kind == "webhook":
        return p["text"]
    if kind == "email":
        return p["text"] + p["html"]
    raise AssertionError(kind)
