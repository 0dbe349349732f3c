"""The full report behind a signed link: page, chart, downloads, expired/forged links, and the
page opened in headless Chromium."""

from __future__ import annotations

import io
import shutil
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.app import create_app
from bot.report import sign_report
from scheduler.recompute import recompute
from tests.scheduler.conftest import CODE, TEST_SECRET, answer, make_campaign, unit_ids

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
async def client(aiohttp_client, settings, sessionmaker, clock, project):
    app = create_app(settings, sessionmaker=sessionmaker, clock=clock, channels={}, start_workers=False)
    return await aiohttp_client(app)


@pytest.fixture
async def history(sessionmaker, project, clock):
    """Two snapshots: the example as loaded, then after three dissatisfied answers."""
    campaign = await make_campaign(sessionmaker, project, clock)
    first = await recompute(sessionmaker, CODE, now=clock())
    clock.advance(days=1)
    for unit in await unit_ids(sessionmaker, project, 3):
        await answer(sessionmaker, campaign.id, unit, now=clock())  # type: ignore[arg-type]
    second = await recompute(sessionmaker, CODE, now=clock())
    return first, second


def _path(clock, days: int = 14, code: str = CODE) -> str:
    return f"/r/{sign_report(TEST_SECRET, code, clock() + timedelta(days=days))}"


async def test_report_page_shows_the_table_explanations_warnings_and_chart(client, history, clock) -> None:
    resp = await client.get(_path(clock))
    assert resp.status == 200
    html = await resp.text()
    assert 'id="score-table"' in html and "项目承担单位满意度" in html
    assert "99.68" in html and "问卷覆盖率" in html
    # two renderings of the chart (phone and wide), four series each
    assert html.count('class="series"') == 8 and "<script" not in html
    assert "共 2 次评分，横轴时间为北京时间" in html  # the axis labels' zone is named
    assert "table.xlsx" in html and "responses.csv" in html and "confirmations.csv" in html


async def test_the_report_reads_on_a_phone_grouped_rows_a_narrow_chart_and_no_internal_notes(
    client, history, clock
) -> None:
    html = await (await client.get(_path(clock))).text()
    # 一级/二级 are group heading rows, not two narrow columns that wrap one character per line
    assert '<tr class="group"><th colspan="4" scope="colgroup">决策 · 项目立项</th></tr>' in html
    assert "<th>一级指标</th>" not in html
    # a chart drawn 360 units wide for phones (12-unit labels stay ~12 px on a 390 px screen)
    assert 'viewBox="0 0 360 220"' in html and 'font-size="12"' in html
    # series at the same value stay distinguishable (dash patterns and widths differ)
    assert 'stroke-dasharray="8 4"' in html and 'stroke-width="6"' in html
    # evaluators' internal references never reach readers
    assert "§7" not in html and "报告未给出分子分母" not in html


async def test_every_report_response_carries_the_unit_pages_csp_and_referrer_policy(
    client, history, clock
) -> None:
    from bot.links import SECURITY_HEADERS

    good = _path(clock)
    for path in (good, good + "/table.xlsx", good + "/responses.csv", "/r/forged.1.AAAA"):
        resp = await client.get(path)
        assert resp.status in (200, 404), path
        assert resp.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"], path
        assert resp.headers["Referrer-Policy"] == "no-referrer", path
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert "no-store" in resp.headers["Cache-Control"], path


async def test_expired_report_link_gets_a_friendly_page(client, history, clock) -> None:
    path = _path(clock, days=1)
    clock.advance(days=2)
    resp = await client.get(path)
    assert resp.status == 410
    assert "已过期" in await resp.text()


@pytest.mark.parametrize("tamper", ["code", "expiry", "signature", "garbage"])
async def test_forged_report_link_gets_a_friendly_page(client, history, clock, tamper: str) -> None:
    good = _path(clock)[3:]
    code, expiry, sig = good.split(".")
    bad = {
        "code": f"other-project.{expiry}.{sig}",
        "expiry": f"{code}.{int(expiry) + 86400}.{sig}",
        "signature": f"{code}.{expiry}.{'A' * 32}",
        "garbage": "<script>alert(1)",
    }[tamper]
    resp = await client.get(f"/r/{bad}")
    assert resp.status == 404
    text = await resp.text()
    assert "报告链接无效" in text and "<script>alert" not in text


async def test_xlsx_download_numbers_equal_the_json_score(client, history, clock) -> None:
    import pandas as pd

    _, second = history
    resp = await client.get(_path(clock) + "/table.xlsx")
    assert resp.status == 200
    frame = pd.read_excel(io.BytesIO(await resp.read()), sheet_name="评分表")
    doc = second.snapshot.table
    rows = frame[frame["一级指标"] != "合计"]
    assert list(rows["三级指标"]) == [r["name"] for r in doc["indicators"]]
    for got, want in zip(rows["得分"], doc["indicators"], strict=True):
        assert Decimal(str(got)).quantize(Decimal("0.01")) == Decimal(want["score"])
    total = frame[frame["一级指标"] == "合计"]["得分"].iloc[0]
    assert Decimal(str(total)).quantize(Decimal("0.01")) == Decimal(doc["total"]) == Decimal("99.68")


async def test_csv_downloads_are_utf8_with_bom_and_hold_the_raw_answers(client, history, clock) -> None:
    resp = await client.get(_path(clock) + "/responses.csv")
    assert resp.status == 200
    body = await resp.read()
    assert body.startswith("\ufeff".encode())
    text = body.decode("utf-8-sig")
    # Plain local times (a spreadsheet parses them); the header names the project's zone.
    assert text.splitlines()[0].startswith("单位代码,单位名称,版本,提交时间（北京时间）,满意度")
    assert text.count("非常不满意") >= 3
    answered = clock().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    assert [row.split(",")[3] for row in text.splitlines()[1:]].count(answered) == 3
    conf = await client.get(_path(clock) + "/confirmations.csv")
    body = await conf.read()
    assert body.startswith("\ufeff".encode())
    assert body.decode("utf-8-sig").splitlines()[0].endswith(",说明,提交时间（北京时间）")


@pytest.mark.browser
async def test_report_page_in_headless_chromium_draws_the_chart(
    aiohttp_server, settings, sessionmaker, clock, history
) -> None:
    if not shutil.which(CHROMIUM) and not __import__("os").path.exists(CHROMIUM):
        pytest.skip("chromium not installed")
    playwright = pytest.importorskip("playwright.async_api")
    app = create_app(settings, sessionmaker=sessionmaker, clock=clock, channels={}, start_workers=False)
    server = await aiohttp_server(app)
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        try:
            page = await browser.new_page(java_script_enabled=False)
            await page.goto(str(server.make_url(_path(clock))))
            chart = page.locator("svg#chart")
            box = await chart.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 50
            assert await page.locator("svg#chart polyline.series").count() == 4
            points = await page.locator('svg#chart polyline[data-name="总分"]').get_attribute("points")
            assert points is not None and len(points.split()) == 2  # two snapshots
            assert (await page.locator("#total-score").inner_text()) == "99.68"
        finally:
            await browser.close()
