"""Form posts as real phones send them: bodies in several TCP segments, chunked bodies, caps.

These tests talk to the test server through a raw socket (``asyncio.open_connection`` with
``TCP_NODELAY``), so each piece of the body leaves as its own segment, with a pause between the
pieces. The pauses are the input under test (a slow mobile uplink), not a wait for readiness.
"""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from store.answers import list_responses
from store.db import SessionMaker
from store.models import PaymentConfirmation, Response
from tests.bot.conftest import Launched, page_form

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}
#: A long Chinese comment (the questionnaire's limit is 500 characters): ~4.5 KB urlencoded.
COMMENT = ("建议进一步简化后补助类项目申报材料，缩短审核周期，及时公开评审结果。" * 16)[:500]


async def _raw_post(
    client: TestClient,
    path: str,
    pieces: list[bytes],
    *,
    pauses_ms: list[float],
    chunked: bool = False,
    extra_headers: str = "",
) -> tuple[int, bytes]:
    """POST ``pieces`` (the body, or chunked-encoding frames) over one raw connection, each
    piece its own TCP segment with a pause before it; return (status, whole response)."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {sum(map(len, pieces))}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"{length}\r\n{extra_headers}Connection: close\r\n\r\n"
    ).encode()
    writer.write(head)
    await writer.drain()
    try:
        for piece, pause in zip(pieces, pauses_ms, strict=True):
            await asyncio.sleep(pause / 1000)
            writer.write(piece)
            await writer.drain()
    except ConnectionError:  # the server may answer (413) and close before the rest is sent
        pass
    response = await reader.read()
    writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response


def _split(body: bytes, parts: int, rng: random.Random) -> list[bytes]:
    """``body`` cut at ``parts - 1`` random places (also inside a %XX escape)."""
    cuts = sorted(rng.sample(range(1, len(body)), parts - 1))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


async def _stored_suggestions(sm: SessionMaker, launched: Launched) -> dict[str, Any]:
    async with sm() as session:
        records = await list_responses(session, launched.project_id, launched.campaign_id)
    return {r.unit_key: r.answers.get("suggestion") for r in records}


async def test_answers_sent_in_several_segments_with_pauses_are_stored_whole(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    rng = random.Random(7)
    units = ["u001", "u002", "u003", "u004", "u005", "u006"]
    sent: dict[str, str] = {}
    for i, unit in enumerate(units):
        token = launched.tokens[unit]
        fields = await page_form(app_client, token)
        comment = f"{i}:{COMMENT}"[:500]
        body = urlencode({**fields, **GOOD, "q_suggestion": comment}).encode()
        pieces = _split(body, 2 + i % 4, rng)
        pauses = [0.0] + [rng.choice([2, 20, 80, 200]) for _ in pieces[1:]]
        status, response = await _raw_post(app_client, f"/l/{token}/answers", pieces, pauses_ms=pauses)
        assert status == 303, response[:300]
        sent[unit] = comment
    assert await _stored_suggestions(sessionmaker, launched) == sent


async def test_a_chunked_body_in_segments_is_read_whole(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u009"]
    fields = await page_form(app_client, token)
    body = urlencode({**fields, **GOOD, "q_suggestion": COMMENT}).encode()
    frames = [b"%x\r\n%s\r\n" % (len(p), p) for p in _split(body, 3, random.Random(3))] + [b"0\r\n\r\n"]
    status, response = await _raw_post(
        app_client, f"/l/{token}/answers", frames, pauses_ms=[0, 50, 150, 20], chunked=True
    )
    assert status == 303, response[:300]
    assert await _stored_suggestions(sessionmaker, launched) == {"u009": COMMENT}


async def test_a_ten_megabyte_chunked_body_is_refused_with_413_and_nothing_is_stored(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u010"]
    fields = await page_form(app_client, token)
    start = urlencode({**fields, **GOOD}).encode() + b"&q_suggestion="
    filler = b"x" * (1024 * 1024)
    frames = [b"%x\r\n%s\r\n" % (len(start), start)]
    frames += [b"%x\r\n%s\r\n" % (len(filler), filler)] * 10 + [b"0\r\n\r\n"]
    status, _ = await _raw_post(
        app_client, f"/l/{token}/answers", frames, pauses_ms=[0.0] * len(frames), chunked=True
    )
    assert status == 413
    async with sessionmaker() as session:
        stored = select(func.count()).select_from(Response).where(Response.source == "link")
        assert await session.scalar(stored) == 0
        assert await session.scalar(select(func.count()).select_from(PaymentConfirmation)) == 0


async def test_a_body_shorter_than_its_content_length_stores_nothing(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    """A client that goes away half-way (Content-Length promised more) stores no cut answer."""
    token = launched.tokens["u011"]
    fields = await page_form(app_client, token)
    body = urlencode({**fields, **GOOD, "q_suggestion": COMMENT}).encode()
    server = app_client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        (
            f"POST /l/{token}/answers HTTP/1.1\r\nHost: {server.host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[: len(body) // 2]
    )
    await writer.drain()
    writer.write_eof()  # half-close: the rest never comes
    await reader.read()
    writer.close()
    # The next request through the same app is served (the handler has finished either way).
    assert (await app_client.get(f"/l/{token}")).status == 200
    assert await _stored_suggestions(sessionmaker, launched) == {}
