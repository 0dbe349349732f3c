"""Console: a new definition version is uploaded, previewed (what would change) without storing
anything, then confirmed; a broken file lists its located problems."""

from __future__ import annotations

import io
import re
import zipfile

import aiohttp
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from store.db import SessionMaker
from store.models import Project
from tests.conftest import EXAMPLE_PROJECT
from tests.console.conftest import A, Accounts, form_csrf, login


def _zip(toml: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("project.toml", toml)
        for f in EXAMPLE_PROJECT.glob("*.csv"):
            z.writestr(f.name, f.read_bytes())
    return buf.getvalue()


async def _version(sm: SessionMaker) -> int:
    async with sm() as session:
        return (await session.execute(select(Project.current_version).where(Project.code == A))).scalar_one()


async def test_a_changed_definition_is_previewed_then_loaded_and_a_broken_one_is_located(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker
) -> None:
    assert (await login(app_client, "admin")).status == 303
    token = await form_csrf(app_client, f"/console/p/{A}/definition")
    toml = (EXAMPLE_PROJECT / "project.toml").read_text(encoding="utf-8")
    changed = toml.replace('name = "资金到位率"', 'name = "资金到位率（调整）"', 1)
    assert changed != toml
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    form.add_field("files", _zip(changed), filename="definition.zip", content_type="application/zip")
    resp = await app_client.post(f"/console/p/{A}/definition", data=form)
    html = await resp.text()
    assert resp.status == 200, html[-2000:]
    assert 'id="preview"' in html and "v2" in html and "名称变化：资金到位率 → 资金到位率（调整）" in html
    assert await _version(sessionmaker) == 1  # the preview stored nothing

    payload = re.search(r'name="payload" value="([^"]+)"', html)
    assert payload
    form = aiohttp.FormData()
    for k, v in (("csrf", token), ("payload", payload.group(1)), ("confirm", "1")):
        form.add_field(k, v)
    resp = await app_client.post(f"/console/p/{A}/definition", data=form, allow_redirects=False)
    assert resp.status == 303
    assert await _version(sessionmaker) == 2

    broken = toml.replace("weight = 6", "weight = -6", 1)
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    form.add_field("files", _zip(broken), filename="definition.zip", content_type="application/zip")
    resp = await app_client.post(f"/console/p/{A}/definition", data=form)
    html = await resp.text()
    assert resp.status == 400 and 'id="problems"' in html, html[html.find("<main>") :][:1500]
    assert await _version(sessionmaker) == 2
