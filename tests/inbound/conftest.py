"""Fixtures for the two-way bot: the real app with every vendor's inbound bot configured (secrets
in an injected environment), the example project, a fake vendor cloud receiving the replies, and
a delivery worker the test runs by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot import keys
from bot.app import create_app
from bot.inbound.handle import ENV
from bot.outbox import DeliveryWorker
from config.settings import Settings
from store.chats import connect_chat
from store.db import SessionMaker, transaction
from store.models import Project
from tests.bot.conftest import TEST_SECRET, example_project  # noqa: F401  (fixture re-exported)
from tests.conftest import Clock
from tests.fakes.inbound import VendorCloud
from tests.waits import within

CODE = "urumqi-ip-2023"

ENV_VALUES = {
    "TG_SECRET": "tg-webhook-secret_1",
    "TG_TOKEN": "123456:TEST-token",
    "FS_SECRET": "feishu-app-secret",
    "FS_VERIFY": "feishu-verification-token",
    "FS_ENCRYPT": "feishu-encrypt-key",
    "DT_SECRET": "dingtalk-app-secret",
    "WC_TOKEN": "wecom-token",
    "WC_AES": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "WC_CORP_SECRET": "wecom-corp-secret",
    "SL_SECRET": "slack-signing-secret",
    "SL_BOT": "xoxb-test",
}

INBOUND = {
    "telegram": {"secret_token_env": "TG_SECRET", "token_env": "TG_TOKEN", "username": "jixiao_bot"},
    "feishu": {
        "app_id": "cli_test",
        "app_secret_env": "FS_SECRET",
        "verification_token_env": "FS_VERIFY",
        "encrypt_key_env": "FS_ENCRYPT",
    },
    "dingtalk": {"app_secret_env": "DT_SECRET"},
    "wecom": {
        "token_env": "WC_TOKEN",
        "encoding_aes_key_env": "WC_AES",
        "corp_id": "ww-corp",
        "corp_secret_env": "WC_CORP_SECRET",
        "agent_id": "1000002",
    },
    "slack": {"signing_secret_env": "SL_SECRET", "bot_token_env": "SL_BOT"},
}


@pytest.fixture
async def cloud(aiohttp_server: Any) -> VendorCloud:
    fake = VendorCloud()
    await fake.serve(aiohttp_server)
    return fake


@pytest.fixture
def inbound_settings(tmp_path: Path, cloud: VendorCloud) -> Settings:
    return Settings(
        data_dir=tmp_path,
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        public_url="http://127.0.0.1",
        load_example=False,
        inbound=INBOUND,
        channel_base_urls={v: cloud.base_url for v in ("telegram", "feishu", "dingtalk", "wecom", "slack")},
    )


@dataclass
class Bot:
    """The app under test, its client, and a way to deliver what it enqueued."""

    client: TestClient
    sessionmaker: SessionMaker
    clock: Clock
    cloud: VendorCloud
    worker: DeliveryWorker
    project: Project

    async def deliver(self) -> int:
        """Run the delivery worker until nothing is due; returns rows claimed."""
        return await within(
            self.worker.run_until_idle(),
            "the delivery worker sends what is due",
            state=lambda: self.worker.stats,
        )

    async def connect(self, vendor: str, chat_id: str, code: str = CODE) -> None:
        async with transaction(self.sessionmaker) as session:
            await connect_chat(session, vendor, chat_id, code, now=self.clock(), by="test")


@pytest.fixture
async def bot(
    aiohttp_client: Any,
    inbound_settings: Settings,
    sessionmaker: SessionMaker,
    clock: Clock,
    cloud: VendorCloud,
    example_project: Project,  # noqa: F811
) -> AsyncIterator[Bot]:
    app = create_app(
        inbound_settings, sessionmaker=sessionmaker, clock=clock, channels={}, start_workers=False
    )
    app[ENV] = dict(ENV_VALUES)
    client = await aiohttp_client(app)

    async def virtual_sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)  # rate-limit waits pass on the test clock, instantly

    async with aiohttp.ClientSession() as http:
        worker = DeliveryWorker(
            sessionmaker, app[keys.CHANNELS], http, clock=clock, env=ENV_VALUES, sleep=virtual_sleep
        )
        yield Bot(client, sessionmaker, clock, cloud, worker, example_project)
