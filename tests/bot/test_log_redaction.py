"""Personal link tokens and report tokens never reach a log line: not the error log, not
aiohttp's access log (as ``jixiao serve`` configures it), not a delivery attempt record."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from bot.app import create_app
from bot.channels.base import excerpt, redact
from bot.logs import JsonFormatter, RedactingAccessLogger, redact_tokens
from bot.report import sign_report
from config.settings import Settings
from store.db import SessionMaker
from tests.bot.conftest import TEST_SECRET, Launched, hidden_fields
from tests.conftest import Clock

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}


async def test_no_token_appears_in_the_error_log_or_the_access_log(
    caplog: pytest.LogCaptureFixture,
    settings: Settings,
    sessionmaker: SessionMaker,
    clock: Clock,
    launched: Launched,
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(settings, sessionmaker=sessionmaker, clock=clock, channels={}, start_workers=False)
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)  # as ``jixiao serve`` does
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    token = launched.tokens["u003"]
    report = sign_report(TEST_SECRET.encode(), "urumqi-ip-2023", clock() + timedelta(days=3))
    secrets = [token, report, report.split(".")[-1]]
    try:
        async with aiohttp.ClientSession() as http:
            page = await (
                await http.get(f"{base}/l/{token}", headers={"Referer": f"{base}/l/{token}"})
            ).text()
            fields = hidden_fields(page, f"/l/{token}/answers")
            posted = await http.post(
                f"{base}/l/{token}/answers", data={**fields, **GOOD}, allow_redirects=False
            )
            assert posted.status == 303
            assert (await http.get(f"{base}/r/{report}")).status == 200
            wrong = token[:-1] + ("y" if token.endswith("x") else "x")  # a token may end in "x" itself
            assert (await http.get(f"{base}/l/{wrong}")).status == 404
            # Break the database under the running app: the next link request is a logged 500.
            async with sessionmaker() as session, session.begin():
                await session.execute(text("ALTER TABLE link RENAME TO link_gone"))
            assert (await http.get(f"{base}/l/{token}?done=pay-28")).status == 500
    finally:
        await runner.cleanup()
    access = [r for r in caplog.records if r.name == "aiohttp.access"]
    errors = [r for r in caplog.records if r.name == "jixiao.http"]
    assert len(access) >= 5 and errors, "the test must see both logs"
    assert any("/l/***" in r.getMessage() for r in access)
    assert "GET /l/***" in errors[0].getMessage()
    formatter = JsonFormatter()
    for record in caplog.records:
        line = formatter.format(record) + record.getMessage() + repr(getattr(record, "__dict__", {}))
        for secret in secrets:
            assert secret not in line, f"{record.name}: {record.getMessage()}"


@pytest.mark.parametrize(
    "raw",
    [
        "GET /l/{t} HTTP/1.1",
        "POST /l/{t}/pay/28",
        "https://jixiao.example.cn/l/{t}?done=answers#done",
        '{"text": "请打开 http://127.0.0.1:8080/l/{t} 填写"}',
        "/r/urumqi-ip-2023.1790000000.{t}/table.xlsx",
    ],
)
def test_the_one_redaction_rule_removes_tokens_from_paths_urls_and_attempt_excerpts(raw: str) -> None:
    token = "Qm9ndXNUb2tlbkZvclRlc3RzT25seTAx"
    text_ = raw.replace("{t}", token)
    for cleaned in (redact_tokens(text_), redact(text_), excerpt(text_)):
        assert token not in cleaned and "***" in cleaned


def test_an_access_logger_line_keeps_the_shape_but_not_the_token(caplog: Any) -> None:
    from aiohttp.test_utils import make_mocked_request

    token = "Qm9ndXNUb2tlbkZvclRlc3RzT25seTAx"
    request = make_mocked_request("GET", f"/l/{token}?done=answers", headers={"Referer": f"/l/{token}"})
    response = web.Response(status=200)
    logger = logging.getLogger("test.access")
    caplog.set_level(logging.INFO, logger="test.access")
    RedactingAccessLogger(logger, '%r %s "%{Referer}i"').log(request, response, 0.01)
    assert caplog.records[-1].getMessage() == 'GET /l/***?done=answers HTTP/1.1 200 "/l/***"'
