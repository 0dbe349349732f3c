"""The unit page in a real headless Chromium on a phone-sized screen, with and without JavaScript.

Skipped when ``/usr/bin/chromium`` is absent. The app is the real one, served on 127.0.0.1 by the
aiohttp test server behind ``app_client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from store.db import SessionMaker
from store.models import PaymentConfirmation, Response
from tests.bot.conftest import Launched

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def _answer_and_confirm(page: Any, base: str, url: str, *, screenshot: Path | None) -> None:
    await page.goto(base + url)
    assert "乌鲁木齐" in await page.locator("h1").inner_text()
    if screenshot:
        await page.screenshot(path=str(screenshot), full_page=False)
    # Answer every scale question by its visible label (the whole row is the tap target).
    for key, choice in (("guide", 1), ("review", 2), ("funds", 1), ("overall", 1)):
        await page.locator(f"#q-{key}-{choice}").check()
    await page.get_by_label("您对项目管理还有哪些意见和建议？").fill("<b>希望</b>简化流程")
    await page.get_by_role("button", name="提交问卷").click()
    await page.wait_for_url("**?done=answers*")
    done = page.locator("#done")
    assert "已提交，谢谢" in await done.inner_text()
    assert "<b>希望</b>简化流程" in await done.inner_text()  # shown as text, not markup

    # Confirm the first disbursement, with an amount that differs.
    card = page.locator("section[id^=pay-]").first
    await card.get_by_label("已收到，金额如下").check()
    await card.get_by_label("到账日期").fill("2023-02-21")
    await card.get_by_label("到账金额（元）").fill("155,000.00")
    await card.get_by_role("button").click()
    await page.wait_for_url("**?done=pay-*")
    text = await page.locator("#done").inner_text()
    assert "已提交，谢谢" in text and "155,000.00 元" in text and "与拨付金额不一致" in text


async def _stored(sm: SessionMaker, launched: Launched, key: str) -> tuple[int, int]:
    unit_id = launched.unit_ids[key]
    async with sm() as session:
        r = len(
            (
                await session.execute(
                    select(Response).where(Response.unit_id == unit_id, Response.source == "link")
                )
            ).all()
        )
        c = len(
            (
                await session.execute(
                    select(PaymentConfirmation).where(PaymentConfirmation.unit_id == unit_id)
                )
            ).all()
        )
    return r, c


async def test_a_unit_answers_and_confirms_on_a_phone(
    browser: Any, app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, tmp_path: Path
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True, has_touch=True
    )
    try:
        page = await context.new_page()
        base = str(app_client.make_url("")).rstrip("/")
        await _answer_and_confirm(page, base, launched.url("u001"), screenshot=tmp_path / "unit-page.png")
        # The page fits the phone: nothing wider than the viewport.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
    finally:
        await context.close()
    assert await _stored(sessionmaker, launched, "u001") == (1, 1)


async def test_the_same_flow_works_with_javascript_disabled(
    browser: Any, app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", java_script_enabled=False
    )
    try:
        page = await context.new_page()
        base = str(app_client.make_url("")).rstrip("/")
        await _answer_and_confirm(page, base, launched.url("u002"), screenshot=None)
        # A validation error round trip without JavaScript: the message appears by the field.
        card = page.locator("section[id^=pay-]").first
        await card.get_by_label("已收到，金额如下").check()
        await card.get_by_label("到账金额（元）").fill("-1")
        await card.get_by_role("button").click()
        errors = await page.locator("section[id^=pay-] p.err").all_inner_texts()
        assert any("金额不能为负数" in e for e in errors)
    finally:
        await context.close()
    assert await _stored(sessionmaker, launched, "u002") == (1, 1)


async def test_a_refused_payment_reopens_at_that_form_with_every_message_without_javascript(
    browser: Any, app_client: TestClient, launched: Launched, tmp_path: Path
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", java_script_enabled=False
    )
    try:
        page = await context.new_page()
        base = str(app_client.make_url("")).rstrip("/")
        await page.goto(base + launched.url("u050"))
        card = page.locator("section[id^=pay-]").last
        section = await card.get_attribute("id")
        # (a date input only ever holds a valid date: the browser checks that part itself)
        await card.get_by_label("已收到，金额如下").check()
        await card.get_by_label("到账金额（元）").fill(" 12 3 ")
        await card.get_by_role("button").click()
        await page.wait_for_load_state()
        assert page.url.endswith(f"#{section}")
        errors = await page.locator(f"#{section} p.err").all_inner_texts()
        assert errors == ["有 2 处需要修改。", "请填写到账日期", "金额格式不正确，例如 12,345.67"]
        # The browser opened the page at that form, not at the top (where the "已提交" badge is).
        box = await page.locator(f"#{section}").bounding_box()
        assert box is not None and box["y"] < 844 and await page.evaluate("window.scrollY") > 0
        await page.screenshot(path=str(tmp_path / "payment-errors-390x844.png"))
    finally:
        await context.close()


async def test_after_closing_the_unit_reads_its_answers_on_a_phone(
    browser: Any,
    app_client: TestClient,
    sessionmaker: SessionMaker,
    launched: Launched,
    clock: Any,
    tmp_path: Path,
) -> None:
    from store.campaigns import close_campaign
    from store.db import transaction

    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True
    )
    try:
        page = await context.new_page()
        base = str(app_client.make_url("")).rstrip("/")
        await _answer_and_confirm(page, base, launched.url("u051"), screenshot=None)
        async with transaction(sessionmaker) as session:
            await close_campaign(session, launched.campaign_id, now=clock())
        await page.goto(base + launched.url("u051"))
        text = await page.locator("main").inner_text()
        assert "已截止" in text and "<b>希望</b>简化流程" in text and "155,000.00 元" in text
        assert await page.locator("form").count() == 0
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.screenshot(path=str(tmp_path / "closed-readonly-390x844.png"), full_page=True)
    finally:
        await context.close()
