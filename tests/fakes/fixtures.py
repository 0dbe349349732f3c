"""pytest fixtures around the fakes; import them into a conftest with
`from tests.fakes.fixtures import client_session, fake_smtp  # noqa: F401`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from .smtp import FakeSmtp


@pytest.fixture
async def client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """An outgoing aiohttp session, closed after the test."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def fake_smtp() -> Iterator[FakeSmtp]:
    """A running FakeSmtp on 127.0.0.1."""
    with FakeSmtp() as smtp:
        yield smtp
