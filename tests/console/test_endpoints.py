"""Console: an admin adds a coordinator chat endpoint for a project (kind, address, the NAME of the
variable holding its secret); it is then listed and selectable in the summary-schedule form. Bad
input is shown at its field with nothing stored; coordinators get 403, another project's admin 404;
the addition is audited; a variable the server lacks is reported on the page."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from store.access import Grants
from store.db import SessionMaker, transaction
from store.errors import Conflict
from store.models import AuditEntry, ChannelEndpoint, Project, Schedule
from store.outbox import add_coordinator_endpoint
from tests.console.conftest import A, Accounts, B, form_csrf, login

FORM = f"/console/p/{A}/schedules/endpoint"
VAR = "JIXIAO_TEST_CONSOLE_WECOM_KEY"


async def _endpoints(sessionmaker: SessionMaker) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(ChannelEndpoint))).scalar_one())


async def test_an_admin_adds_a_wecom_endpoint_and_chooses_it_for_a_summary(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VAR, raising=False)
    assert (await login(app_client, "admin")).status == 303
    schedules = await (await app_client.get(f"/console/p/{A}/schedules")).text()
    assert f'href="{FORM}"' in schedules  # reached from the schedule form's endpoint list
    token = await form_csrf(app_client, FORM)
    resp = await app_client.post(FORM, data={"csrf": token, "kind": "wecom", "address": "财政局协调群",
                                             "env": VAR, "name": "财政局协调群"}, allow_redirects=False)  # fmt: skip
    assert resp.status == 303, await resp.text()
    async with sessionmaker() as session:
        ep = (
            await session.execute(select(ChannelEndpoint).where(ChannelEndpoint.address == "财政局协调群"))
        ).scalar_one()
        a = (await session.execute(select(Project).where(Project.code == A))).scalar_one()
        [entry] = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "endpoint.add"))
        ).scalars()
    assert ep.kind == "wecom" and ep.config == {"key_env": VAR} and ep.project_id == a.id
    assert entry.actor.endswith("admin") and entry.project_id == a.id and entry.object == f"endpoint:{ep.id}"
    assert entry.detail["config"] == {"key_env": VAR}
    # the result page: which endpoint, and that this server lacks the variable (not refused)
    html = await (await app_client.get(resp.headers["Location"])).text()
    assert 'id="added"' in html and 'id="env-unset"' in html and VAR in html
    monkeypatch.setenv(VAR, "not-a-real-key")
    html = await (await app_client.get(resp.headers["Location"])).text()
    assert 'id="added"' in html and 'id="env-unset"' not in html
    # listed in the summary-schedule form, and a summary schedule can be saved with it
    html = await (await app_client.get(f"/console/p/{A}/schedules")).text()
    assert f'name="ep_{ep.id}"' in html
    resp = await app_client.post(f"/console/p/{A}/schedules", allow_redirects=False,
                                 data={"csrf": token, "kind": "summarise", "cron": "17 9 * * 1",
                                       "timezone": "Asia/Shanghai", f"ep_{ep.id}": str(ep.id), "action": "save"})  # fmt: skip
    assert resp.status == 303, await resp.text()
    async with sessionmaker() as session:
        row = (await session.execute(select(Schedule))).scalar_one()
    assert row.params["endpoints"] == [
        {"kind": "wecom", "address": "财政局协调群", "name": "财政局协调群", "config": {"key_env": VAR}}
    ]
    # and on the endpoints page, with its state
    assert f'id="ep-{ep.id}"' in await (await app_client.get("/console/endpoints")).text()


@pytest.mark.parametrize(
    ("lang", "data", "field", "text"),
    [
        (
            "zh",
            {"kind": "webhook", "address": "ftp://example.org/hook", "env": "HOOK_SECRET"},
            "address",
            "http://",
        ),
        ("en", {"kind": "wecom", "address": "协调群", "env": ""}, "env", "environment variable"),
        ("zh", {"kind": "wecom", "address": "协调群", "env": "not a name"}, "env", "环境变量名"),
        ("en", {"kind": "wecom", "address": "", "env": "JIXIAO_WECOM_KEY"}, "address", "required"),
        # a webhook is never sent unsigned: its variable must be set (the API's rule, config.definition)
        (
            "en",
            {"kind": "webhook", "address": "https://example.org/hook", "env": "UNSET_HOOK"},
            "env",
            "not set",
        ),
    ],
)
async def test_bad_input_is_shown_at_its_field_and_nothing_is_stored(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker,
    lang: str, data: dict[str, str], field: str, text: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    monkeypatch.delenv("UNSET_HOOK", raising=False)
    assert (await login(app_client, "admin")).status == 303
    before = await _endpoints(sessionmaker)
    token = await form_csrf(app_client, FORM)
    resp = await app_client.post(f"{FORM}?lang={lang}", data={"csrf": token, **data})
    html = await resp.text()
    assert resp.status == 400
    m = re.search(rf'<p class="field-error" id="e-{field}-err"[^>]*>([^<]*)</p>', html)
    assert m and text in m.group(1), html
    assert f'id="e-{field}" name="{field}"' in html and 'aria-invalid="true"' in html
    if lang == "en":
        assert not re.search(r"[\u4e00-\u9fff]", m.group(1))
    assert await _endpoints(sessionmaker) == before
    async with sessionmaker() as session:
        assert (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "endpoint.add"))
        ).first() is None


async def test_a_coordinator_gets_403_and_another_projects_admin_404(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker
) -> None:
    data = {"kind": "wecom", "address": "协调群", "env": "JIXIAO_WECOM_KEY"}
    assert (await login(app_client, "coord")).status == 303
    token = await form_csrf(app_client, f"/console/p/{A}")
    assert (await app_client.get(FORM)).status == 403
    assert (await app_client.post(FORM, data={"csrf": token, **data})).status == 403
    await app_client.post("/console/logout", data={"csrf": token})
    assert (await login(app_client, "b-admin")).status == 303
    token = await form_csrf(app_client, f"/console/p/{B}/schedules")
    assert (await app_client.get(FORM)).status == 404
    assert (await app_client.post(FORM, data={"csrf": token, **data})).status == 404
    assert not await _has(sessionmaker, "协调群")
    # in their own project it works, and the endpoint is listed in B's schedule form
    resp = await app_client.post(f"/console/p/{B}/schedules/endpoint", data={"csrf": token, **data},
                                 allow_redirects=False)  # fmt: skip
    assert resp.status == 303 and await _has(sessionmaker, "协调群")
    assert "协调群" in await (await app_client.get(f"/console/p/{B}/schedules")).text()


async def test_an_address_another_project_holds_is_refused_not_taken_over(
    app_client: TestClient, accounts: Accounts, sessionmaker: SessionMaker
) -> None:
    async with transaction(sessionmaker) as session:
        ids = dict((await session.execute(select(Project.code, Project.id))).all())
        await add_coordinator_endpoint(session, project_id=ids[B], grants=Grants(False, frozenset({ids[B]})),
                                       kind="wecom", address="协调群", env_name="B_KEY")  # fmt: skip
    with pytest.raises(Conflict) as caught:
        async with transaction(sessionmaker) as session:
            await add_coordinator_endpoint(session, project_id=ids[A], grants=Grants(False, frozenset({ids[A]})),
                                           kind="wecom", address="协调群", env_name="A_KEY")  # fmt: skip
    assert caught.value.where == "address"
    async with sessionmaker() as session:
        ep = (
            await session.execute(select(ChannelEndpoint).where(ChannelEndpoint.address == "协调群"))
        ).scalar_one()
    assert ep.config == {"key_env": "B_KEY"} and ep.project_id == ids[B]


async def _has(sessionmaker: SessionMaker, address: str) -> bool:
    async with sessionmaker() as session:
        q = select(ChannelEndpoint).where(ChannelEndpoint.address == address)
        return (await session.execute(q)).first() is not None
