"""The console's two languages: every page rendered in Chinese (the default) and in English has
no phrase of the other language, apart from people's data (names, chat titles) and the Chinese
evaluation content marked ``lang="zh-CN"``; every phrase the templates and handlers translate has
an English entry; and the choice (``?lang=``, the header switch, Accept-Language) is remembered
in a cookie."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.console import i18n
from config.timefmt import ZONE_NAMES
from store.answers import question_labels
from store.chats import record_seen
from store.db import SessionMaker, transaction
from store.models import (
    AuditEntry,
    Campaign,
    ChannelEndpoint,
    OutboxMessage,
    Project,
    ScoreSnapshot,
    SeenChat,
    Unit,
)
from store.schedules import create_schedule
from tests.bot.conftest import Launched
from tests.conftest import Clock
from tests.console.conftest import A, Accounts, login

CONSOLE = Path(__file__).resolve().parents[2] / "bot" / "console"
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
#: "中文 / English" left inline (either order)
BILINGUAL = re.compile(r"[\u4e00-\u9fff）]\s*/\s+[A-Za-z]{2}|[A-Za-z]\s+/\s*[\u4e00-\u9fff]")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SHOWN_ATTRS = ("placeholder", "aria-label", "title", "alt", "data-label", "data-done")


class _Visible(HTMLParser):
    """The text a person reads or hears: text nodes and the attributes shown or spoken, without
    scripts, styles, hidden inputs and any element marked with its own ``lang``."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.stack: list[str] = []
        self.skip_at: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self.skip_at is None:
            if (a.get("lang") and tag != "html") or tag in ("script", "style"):
                if tag not in VOID:
                    self.skip_at = len(self.stack)
            else:
                self.parts += [str(a[k]) for k in SHOWN_ATTRS if a.get(k)]
                if tag == "input" and a.get("type") not in ("hidden", "file") and a.get("value"):
                    self.parts.append(str(a["value"]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID or tag not in self.stack:
            return
        while self.stack and self.stack.pop() != tag:
            pass
        if self.skip_at is not None and len(self.stack) <= self.skip_at:
            self.skip_at = None

    def handle_data(self, data: str) -> None:
        if self.skip_at is None:
            self.parts.append(data)


def visible_text(html: str) -> str:
    p = _Visible()
    p.feed(html)
    return " ".join(" ".join(p.parts).split())


async def _people_data(sm: SessionMaker) -> list[str]:
    """What people typed or loaded (names, titles, labels): shown as it is in both languages."""
    out: set[str] = set()
    async with sm() as session:
        for column in (Project.name, Unit.name, Campaign.name, ChannelEndpoint.name, SeenChat.title,
                       SeenChat.first_text, SeenChat.first_sender):  # fmt: skip
            out |= {v for v in (await session.execute(select(column))).scalars() if v}
        for table in (await session.execute(select(ScoreSnapshot.table))).scalars():
            for r in (table or {}).get("indicators", []):
                out |= {str(r.get(k) or "") for k in ("name", "level1", "level2")}
            out.add(str((table or {}).get("grade") or ""))  # the definition's grade names (优, 良 …)
        for detail in (await session.execute(select(AuditEntry.detail))).scalars():
            out |= {str(v) for v in (detail or {}).values()}
        for pid in (await session.execute(select(Project.id))).scalars():
            out |= set((await question_labels(session, pid)).values())
    return sorted((s for s in out if s), key=len, reverse=True)


@pytest.fixture
async def pages(
    accounts: Accounts, launched: Launched, sessionmaker: SessionMaker, clock: Clock
) -> list[str]:
    """Every console page, with something in each table."""
    async with transaction(sessionmaker) as session:
        s = await create_schedule(
            session, kind="summarise", project=A, cron="17 9 * * 1", by="test", now=clock()
        )
        await record_seen(
            session, "telegram", "-1001", now=clock(), title="评价工作群", text="/score", sender="王"
        )
        row = (await session.execute(select(OutboxMessage).limit(1))).scalar_one()
        row.status, row.last_error = "failed", "93000 invalid webhook url"
        ep = await session.get(ChannelEndpoint, row.endpoint_id)
        assert ep is not None
        ep.disabled_at, ep.disabled_reason = clock(), "93000 invalid webhook url"
    c = f"/console/p/{A}/campaigns/{launched.campaign_id}"
    return [
        "/console/", f"/console/p/{A}", f"/console/p/{A}/overview", f"/console/p/{A}/campaigns", c,
        f"{c}/units/u001", f"{c}/responses", f"/console/p/{A}/units", f"/console/p/{A}/units/new",
        f"/console/p/{A}/units/u001/edit", f"/console/p/{A}/payments", f"/console/p/{A}/schedules",
        f"/console/p/{A}/schedules/{s.id}", f"/console/p/{A}/schedules/endpoint", f"/console/p/{A}/import", f"/console/p/{A}/definition",
        "/console/endpoints", "/console/outbox?status=failed", "/console/audit", "/console/chats",
    ]  # fmt: skip


async def test_every_page_in_english_has_no_chinese_but_peoples_data(
    app_client: TestClient, pages: list[str], sessionmaker: SessionMaker
) -> None:
    assert (await login(app_client, "admin")).status == 303
    data = await _people_data(sessionmaker)
    problems = []
    for path in pages:
        resp = await app_client.get(path + ("&" if "?" in path else "?") + "lang=en")
        html = await resp.text()
        assert resp.status == 200, (path, html[:300])
        assert '<html lang="en">' in html
        text = visible_text(html)
        for s in data:
            text = text.replace(s, " ")
        if left := HAN.findall(text):
            problems.append((path, left[:8]))
        if m := BILINGUAL.search(text):
            problems.append((path, text[max(0, m.start() - 40) : m.end() + 40]))
    assert not problems, problems


async def test_every_page_in_chinese_has_no_english_phrase_of_the_catalogue(
    app_client: TestClient, pages: list[str]
) -> None:
    assert (await login(app_client, "admin")).status == 303
    english = sorted({v for v in i18n.EN.values() if " " in v.strip() and len(v) >= 10 and "{" not in v})
    problems = []
    for path in pages:
        resp = await app_client.get(path)
        html = await resp.text()
        assert resp.status == 200 and '<html lang="zh-CN">' in html, path
        text = visible_text(html)
        problems += [(path, e) for e in english if e in text]
        if m := BILINGUAL.search(text):
            problems.append((path, text[max(0, m.start() - 40) : m.end() + 40]))
    assert not problems, problems


async def test_the_login_page_speaks_both_languages(app_client: TestClient) -> None:
    zh = visible_text(await (await app_client.get("/console/login")).text())
    en = visible_text(await (await app_client.get("/console/login?lang=en")).text())
    assert "用户名" in zh and "User name" not in zh
    assert "User name" in en and not HAN.findall(en.replace("中文", ""))


def test_every_phrase_the_console_translates_has_an_english_entry() -> None:
    phrases: set[str] = set()
    for f in (CONSOLE / "templates").glob("*.html"):
        phrases |= set(re.findall(r"""_\(\s*"([^"]+)"|_\(\s*'([^']+)'""", f.read_text(encoding="utf-8"))[0:0])
        for a, b in re.findall(r"""\b_\(\s*"([^"]+)"|\b_\(\s*'([^']+)'""", f.read_text(encoding="utf-8")):
            phrases.add(a or b)
        # phrases listed in a template's tuples or dicts and translated through _(label)
        for literal in re.findall(r'"([^"]*[\u4e00-\u9fff][^"]*)"', f.read_text(encoding="utf-8")):
            if "{{" not in literal and "{%" not in literal:
                phrases.add(literal)
    for f in CONSOLE.glob("*.py"):
        for a, b in re.findall(r"""\bt\(\s*"([^"]+)"|\bt\(\s*'([^']+)'""", f.read_text(encoding="utf-8")):
            phrases.add(a or b)
    from bot.console.campaigns import DELIVERY_ZH, STATUS_ZH
    from bot.console.definition import UNIT_ACTION_ZH
    from bot.console.schedules import KIND_ZH
    from store.answers import LEDGER_STATE_ZH

    for table in (STATUS_ZH, DELIVERY_ZH, KIND_ZH, LEDGER_STATE_ZH, UNIT_ACTION_ZH, i18n.ROLE_ZH,
                  i18n.RUN_STATUS_ZH, i18n.OUTBOX_KIND_ZH):  # fmt: skip
        phrases |= set(table.values())
    phrases |= set(i18n.WEEKDAYS_ZH) | {v for v in ZONE_NAMES.values() if HAN.search(v)}
    phrases -= {"中文"}  # the switch's own label, in its own language
    missing = sorted(p for p in phrases if HAN.search(p) and p not in i18n.EN)
    assert not missing, missing


async def test_the_language_follows_accept_language_the_switch_and_is_remembered(
    app_client: TestClient, accounts: Accounts
) -> None:
    assert (await login(app_client, "admin")).status == 303
    html = await (await app_client.get("/console/")).text()
    assert '<html lang="zh-CN">' in html and "项目代码" in html  # Chinese by default
    html = await (await app_client.get("/console/", headers={"Accept-Language": "en-US,en;q=0.9"})).text()
    assert '<html lang="en">' in html and ">Code<" in html
    html = await (await app_client.get("/console/", headers={"Accept-Language": "zh-CN,en;q=0.5"})).text()
    assert '<html lang="zh-CN">' in html
    # the switch: a link to ?lang=en; following it sets the cookie, later pages stay English
    assert re.search(r'<a href="\?lang=en"[^>]*id="lang-switch"', html)
    resp = await app_client.get("/console/?lang=en")
    assert "jx_lang=en" in resp.headers.get("Set-Cookie", "")
    html = await (await app_client.get(f"/console/p/{A}/campaigns")).text()
    assert '<html lang="en">' in html and "New campaign" in html and "新建活动" not in html
    # the cookie beats the browser's Accept-Language, until switched back
    html = await (await app_client.get("/console/", headers={"Accept-Language": "zh-CN"})).text()
    assert '<html lang="en">' in html
    await app_client.get("/console/?lang=zh")
    html = await (await app_client.get(f"/console/p/{A}/campaigns")).text()
    assert '<html lang="zh-CN">' in html and "新建活动" in html
