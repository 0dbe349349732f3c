"""The console in a real headless Chromium: the journeys of an admin and a coordinator.

Screenshots at 390×844 (phone) and 1280×800 (desktop) are saved under the test's tmp dir
(``shots/``) for people to look at. Skipped when ``/usr/bin/chromium`` is absent. Like every
database test, each journey runs on SQLite and, when ``JIXIAO_TEST_PG_URL`` is set, on PostgreSQL
(the ``db_url`` fixture's backends).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.channels.registry import build_adapters
from config.settings import Settings
from store.db import SessionMaker, transaction
from store.models import ChannelEndpoint, Project
from tests.conftest import Clock
from tests.console.conftest import PASSWORD, A, Accounts, B
from tests.fakes.vendors import WeComFake

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

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


@pytest.fixture
async def wecom(aiohttp_server: Any) -> WeComFake:
    fake = WeComFake(keys={"robot-key-1"})
    await fake.serve(aiohttp_server)
    return fake


@pytest.fixture
async def console(
    aiohttp_client: Any,
    settings: Settings,
    sessionmaker: SessionMaker,
    clock: Clock,
    example_project: Project,
    wecom: WeComFake,
) -> TestClient:
    """The real app (recompute wired in, WeCom adapter pointed at the fake), on 127.0.0.1.
    The clock is real time here: the browser and the server must agree on session ages."""
    from bot.app import create_app
    from scheduler.recompute import recompute

    clock.now = datetime.now(UTC)

    async def recompute_now(code: str, *, now: Any, trigger: str = "api") -> Any:
        return await recompute(sessionmaker, code, now=now, trigger=trigger)

    app = create_app(
        settings, sessionmaker=sessionmaker, clock=lambda: datetime.now(UTC), start_workers=False,
        channels=build_adapters({"wecom": wecom.base_url}), run_now={"recompute": recompute_now},
    )  # fmt: skip
    client = await aiohttp_client(app)
    settings.public_url = str(client.make_url("")).rstrip("/")
    return client


async def _login(page: Any, base: str, name: str) -> None:
    await page.goto(f"{base}/console/")
    await page.get_by_label("用户名").fill(name)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{base}/console/")


async def _shots(browser: Any, base: str, name: str, paths: list[str], out: Path) -> None:
    """Screenshot ``paths`` at phone and desktop size, logged in as ``name``."""
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        ctx = await browser.new_context(viewport=size, locale="zh-CN")
        page = await ctx.new_page()
        await _login(page, base, name)
        for p in paths:
            await page.goto(base + p)
            slug = p.strip("/").replace("/", "_") or "projects"
            # the phone's first screen as a person sees it, and the whole page on a desktop
            await page.screenshot(path=str(out / f"{name}-{slug}-{label}.png"), full_page=label == "desktop")
        await ctx.close()


async def test_an_admin_runs_a_campaign_and_a_unit_answers_from_its_exported_link(
    browser: Any, console: TestClient, accounts: Accounts, tmp_path: Path
) -> None:
    base = str(console.make_url("")).rstrip("/")
    out = tmp_path / "shots"
    out.mkdir()
    ctx = await browser.new_context(viewport=DESKTOP, locale="zh-CN", accept_downloads=True)
    page = await ctx.new_page()
    await _login(page, base, "admin")
    assert A in await page.locator("#projects").inner_text()

    # create and launch a campaign
    await page.goto(f"{base}/console/p/{A}/campaigns")
    await page.get_by_label("名称").fill("2023年度满意度调查（控制台）")
    await page.get_by_role("button", name="新建活动").click()
    await page.wait_for_url("**/campaigns/*")
    # before launch, the page names the units whose channel secrets are not set, and which variable
    warning = await page.locator("#missing-secrets").inner_text()
    assert "个单位的渠道缺少密钥环境变量" in warning and "JIXIAO_" in warning
    await page.screenshot(path=str(out / "admin-prelaunch-desktop.png"), full_page=True)
    await page.get_by_role("button", name="发起").click()  # refused without the explicit tick
    assert "done=launched" not in page.url
    await page.get_by_label("仍然发起（其余单位照常发送）").check()
    await page.get_by_role("button", name="发起").click()
    await page.wait_for_url("**?done=launched")
    assert await page.locator('#funnel b[data-k="invited"]').inner_text() == "121"
    assert await page.locator('#funnel b[data-k="answered"]').inner_text() == "0"
    campaign_url = page.url.split("?")[0]
    await page.screenshot(path=str(out / "admin-campaign-desktop.png"), full_page=True)

    # export the links as CSV and open one in a second browser (the unit's phone)
    async with page.expect_download() as info:
        await page.get_by_role("link", name="导出全部链接 CSV").click()
    download = await info.value
    text = (await asyncio.to_thread(Path(await download.path()).read_bytes)).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 121
    first = next(r for r in rows if r["单位编码 unit"] == "u001")
    assert first["链接 link"].startswith(f"{base}/l/")

    unit_ctx = await browser.new_context(viewport=PHONE, locale="zh-CN")
    unit = await unit_ctx.new_page()
    await unit.goto(first["链接 link"])
    for key, choice in (("guide", 4), ("review", 4), ("funds", 4), ("overall", 4)):
        await unit.locator(f"#q-{key}-{choice}").check()
    await unit.get_by_role("button", name="提交问卷").click()
    await unit.wait_for_url("**?done=answers*")
    await unit_ctx.close()

    # the funnel moved, and a recompute changes the history (answer rate and the chart)
    await page.goto(campaign_url)
    assert await page.locator('#funnel b[data-k="opened"]').inner_text() == "1"
    assert await page.locator('#funnel b[data-k="answered"]').inner_text() == "1"
    await page.locator("#state").select_option("answered")
    await page.get_by_role("button", name="搜索").click()
    assert "u001" in await page.locator("#units").inner_text()

    await page.goto(f"{base}/console/p/{A}")
    before = await page.locator(".legend").inner_text()
    await page.get_by_role("button", name="立即重新计算").click()
    await page.wait_for_url("**?done=recomputed")
    after = await page.locator(".legend").inner_text()
    assert before != after  # 问卷回收率 and the satisfaction share changed with the new answer

    # the unit's link page: URL, QR code (SVG), and the responses with question labels
    await page.goto(f"{campaign_url}/units/u001")
    assert await page.locator("#qr svg").count() == 1
    assert (await page.locator("#link").input_value()) == first["链接 link"]
    await page.goto(f"{campaign_url}/responses")
    header = await page.locator("#responses thead").inner_text()
    assert "您对项目申报指南的清晰程度是否满意？" in header and "guide" not in header  # labels, not keys
    await ctx.close()

    await _shots(
        browser, base, "admin", ["/console/", f"/console/p/{A}", campaign_url.replace(base, "")], out
    )
    assert len(list(out.glob("*.png"))) >= 7


async def test_an_admin_re_enables_an_endpoint_and_test_sends_to_the_vendor(
    browser: Any,
    console: TestClient,
    accounts: Accounts,
    sessionmaker: SessionMaker,
    wecom: WeComFake,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("JIXIAO_TEST_WECOM_KEY", "robot-key-1")
    async with transaction(sessionmaker) as session:
        ep = ChannelEndpoint(kind="wecom", address="group-robot-1", name="协调群机器人",
                             config={"key_env": "JIXIAO_TEST_WECOM_KEY"},
                             disabled_at=datetime.now(UTC), disabled_reason="93000 invalid webhook url")  # fmt: skip
        session.add(ep)
        await session.flush()
        ep_id = ep.id
    base = str(console.make_url("")).rstrip("/")
    ctx = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await ctx.new_page()
    await _login(page, base, "admin")
    await page.goto(f"{base}/console/endpoints")
    row = page.locator(f"#ep-{ep_id}")
    assert "已停用" in await row.inner_text() and "93000" in await row.inner_text()
    await page.screenshot(path=str(tmp_path / "endpoints-phone.png"), full_page=True)
    await row.get_by_role("button", name="重新启用").click()
    await page.wait_for_url("**done=enabled*")
    assert await page.locator(f"#ep-{ep_id}").get_attribute("data-state") == "ok"
    async with page.expect_navigation():
        await page.locator(f"#ep-{ep_id}").get_by_role("button", name="测试发送").click()
    assert "发送成功" in await page.locator("#test-result").inner_text()
    assert len(wecom.delivered) == 1 and "测试" in str(wecom.delivered[0].json)
    await ctx.close()


async def test_a_coordinator_sees_its_project_on_a_phone_but_no_other_project_and_no_secret(
    browser: Any, console: TestClient, accounts: Accounts, sessionmaker: SessionMaker, tmp_path: Path
) -> None:
    from tests.bot.conftest import launch_example_campaign

    async with sessionmaker() as session:
        project = (await session.execute(select(Project).where(Project.code == A))).scalar_one()
    launched = await launch_example_campaign(sessionmaker, project, datetime.now(UTC))
    base = str(console.make_url("")).rstrip("/")
    ctx = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await ctx.new_page()
    await _login(page, base, "coord")
    listing = await page.locator("main").inner_text()
    assert A in listing and B not in listing
    resp = await page.goto(f"{base}/console/p/{B}")
    assert resp is not None and resp.status == 404
    campaign = f"{base}/console/p/{A}/campaigns/{launched.campaign_id}"
    await page.goto(campaign)
    html = await page.content()
    assert "/l/" not in html and all(t not in html for t in launched.tokens.values())
    assert await page.locator("#units").count() == 1
    for path in (f"{campaign}/units/u001", f"{campaign}/links.csv", f"{base}/console/endpoints"):
        resp = await page.goto(path)
        assert resp is not None and resp.status == 403, path
    await page.goto(f"{base}/console/p/{A}")
    await page.screenshot(path=str(tmp_path / "coord-project-phone.png"), full_page=True)
    await ctx.close()


async def test_a_bad_cron_shows_its_error_next_to_the_field(
    browser: Any, console: TestClient, accounts: Accounts, tmp_path: Path
) -> None:
    base = str(console.make_url("")).rstrip("/")
    ctx = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await ctx.new_page()
    await _login(page, base, "admin")
    await page.goto(f"{base}/console/p/{A}/schedules")
    await page.get_by_label("cron（分 时 日 月 周）").fill("7 25 * * *")
    await page.get_by_role("button", name="预览").click()
    field = page.get_by_label("cron（分 时 日 月 周）")
    assert await field.get_attribute("aria-invalid") == "true"
    assert "0-23" in await page.locator("#s-cron-err").inner_text()
    await page.screenshot(path=str(tmp_path / "schedule-bad-cron-phone.png"), full_page=False)
    await field.fill("17 9 * * 1-5")
    await page.get_by_role("button", name="预览").click()
    assert await page.locator("#preview li").count() == 5
    await page.get_by_role("button", name="保存").click()
    await page.wait_for_url("**done=saved")
    assert "17 9 * * 1-5" in await page.locator("#schedules").inner_text()
    await ctx.close()


async def test_an_admin_adds_a_coordinator_chat_from_the_schedule_form_on_a_phone(
    browser: Any, console: TestClient, accounts: Accounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIXIAO_TEST_HOOK_SECRET", raising=False)
    monkeypatch.delenv("JIXIAO_TEST_COORD_KEY", raising=False)
    base = str(console.make_url("")).rstrip("/")
    ctx = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await ctx.new_page()
    await _login(page, base, "admin")
    await page.goto(f"{base}/console/p/{A}/schedules")
    await page.get_by_role("link", name="添加协调人群聊端点").click()
    await page.wait_for_url("**/schedules/endpoint")
    # choosing another kind reloads the page with that kind's hint (console.js)
    async with page.expect_navigation():
        await page.get_by_label("渠道", exact=True).select_option("webhook")
    assert "http://" in await page.locator("#e-address-hint").inner_text()
    async with page.expect_navigation():
        await page.get_by_label("渠道", exact=True).select_option("wecom")
    await page.get_by_label("地址").fill("财政局协调群")
    await page.get_by_role("button", name="添加", exact=True).click()
    env = page.get_by_label("环境变量名")
    assert await env.get_attribute("aria-invalid") == "true"
    assert "环境变量名" in await page.locator("#e-env-err").inner_text()
    await page.screenshot(path=str(tmp_path / "endpoint-missing-env-phone.png"), full_page=True)
    await env.fill("JIXIAO_TEST_COORD_KEY")
    await page.get_by_role("button", name="添加", exact=True).click()
    await page.wait_for_url("**added=*")
    assert "JIXIAO_TEST_COORD_KEY" in await page.locator("#env-unset").inner_text()
    await page.get_by_role("link", name="去设置汇总计划").click()
    assert await page.locator("#s-endpoints").get_by_label("wecom · 财政局协调群").count() == 1
    await ctx.close()


async def test_a_csv_import_with_a_bad_row_is_previewed_row_by_row_and_nothing_is_stored(
    browser: Any, console: TestClient, accounts: Accounts, tmp_path: Path
) -> None:
    base = str(console.make_url("")).rstrip("/")
    bad = tmp_path / "units.csv"
    await asyncio.to_thread(
        bad.write_bytes, "key,name,channel_kind\nn001,新单位甲,console\nn002,,console\n".encode("gbk")
    )
    ctx = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
    page = await ctx.new_page()
    await _login(page, base, "admin")
    await page.goto(f"{base}/console/p/{A}/import")
    await page.get_by_label("文件（CSV 或 XLSX；UTF-8、GBK/GB18030、UTF-16 均可）").set_input_files(str(bad))
    await page.get_by_role("button", name="预览").click()
    problems = await page.locator("#problems").inner_text()
    assert "3" in problems and "name" in problems
    assert "1 行有错误" in await page.locator("#import-error").inner_text()
    await page.screenshot(path=str(tmp_path / "import-bad-row-desktop.png"), full_page=True)
    await page.goto(f"{base}/console/p/{A}/units?q=n001")
    assert await page.locator('tr[data-unit="n001"]').count() == 0
    await ctx.close()


async def test_an_admin_connects_a_group_chat_and_switches_the_console_to_english(
    browser: Any, console: TestClient, accounts: Accounts, sessionmaker: SessionMaker, tmp_path: Path
) -> None:
    from store.chats import record_seen

    async with transaction(sessionmaker) as session:
        await record_seen(session, "telegram", "-1001234567890", now=datetime.now(UTC), title="乌鲁木齐绩效评价工作群",
                          text="/score@jixiao_bot", sender="王科长")  # fmt: skip
    base = str(console.make_url("")).rstrip("/")
    out = tmp_path / "shots"
    out.mkdir()
    ctx = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await ctx.new_page()
    await _login(page, base, "admin")
    await page.goto(f"{base}/console/chats")
    row = page.locator('tr[data-chat="telegram:-1001234567890"]')
    assert "乌鲁木齐绩效评价工作群" in await row.inner_text() and "未连接" in await row.inner_text()
    await page.screenshot(path=str(out / "chats-before-phone.png"), full_page=True)
    await row.get_by_label("所属项目").select_option(A)
    await row.get_by_role("button", name="连接").click()
    await page.wait_for_url("**done=connected*")
    assert "已连接" in await page.locator(".flash").inner_text()
    assert A in await page.locator('tr[data-chat="telegram:-1001234567890"]').inner_text()
    await page.screenshot(path=str(out / "chats-connected-phone.png"), full_page=True)

    # the header's switch turns every page English, and the choice stays
    await page.locator("#lang-switch").click()
    await page.wait_for_url("**lang=en*")
    assert await page.locator("h1").inner_text() == "Group chats"
    await page.goto(f"{base}/console/p/{A}/campaigns")
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.get_by_role("button", name="New campaign").count() == 1
    await ctx.close()

    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        ctx = await browser.new_context(viewport=size, locale="en-US")  # Accept-Language: English
        page = await ctx.new_page()
        await page.goto(f"{base}/console/")
        await page.get_by_label("User name").fill("admin")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(f"{base}/console/")
        for p in ("/console/chats", f"/console/p/{A}", f"/console/p/{A}/schedules", "/console/outbox"):
            await page.goto(base + p)
            slug = p.strip("/").replace("/", "_")
            await page.screenshot(path=str(out / f"en-{slug}-{label}.png"), full_page=label == "desktop")
        await ctx.close()
    await _shots(
        browser, base, "admin", ["/console/chats", f"/console/p/{A}/schedules", "/console/outbox"], out
    )
