"""Channel secrets through the API: schedule params refuse secrets written inline (name an
environment variable instead, like project files), a webhook whose secret variable is not set
is refused when a schedule or unit is written, and endpoint addresses that are credentials
themselves (Slack/Feishu/WeCom/DingTalk webhook URLs) are redacted for every role in every
response."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.outbox import endpoint_from_row
from config.secrets import secret_environment
from store.db import SessionMaker, transaction
from store.models import ChannelEndpoint
from tests.api.conftest import Api

CODE = "urumqi-ip-2023"
SLACK = "https://hooks.slack.com/services/T0001/B0002/SlackPathSecret42"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/feishu-hook-secret-uuid"
CREDENTIAL_PARTS = ("SlackPathSecret42", "feishu-hook-secret-uuid", "inline-robot-key")


def _summarise(endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "summarise", "project": CODE, "cron": "7 9 * * 1", "params": {"endpoints": endpoints}}


@pytest.mark.parametrize(
    ("endpoint", "where"),
    [
        ({"kind": "wecom", "address": "协调群", "config": {"key": "inline-robot-key"}}, "config"),
        ({"kind": "dingtalk", "address": "群", "config": {"access_token": "inline-robot-key"}}, "config"),
        ({"kind": "webhook", "address": "https://hooks.example.cn/x?token=inline-robot-key"}, "address"),
        ({"kind": "wecom", "address": "群", "config": {"key_env": "not an env name"}}, "config"),
    ],
)
async def test_schedule_params_refuse_secrets_written_inline(
    api: Api, endpoint: dict[str, Any], where: str
) -> None:
    status, body = await api.post("/api/schedules", json=_summarise([endpoint]))
    assert status == 400, body
    assert body["error"]["where"].startswith(f"params.endpoints[0].{where}")
    assert "_env" in body["error"]["message"] or "环境变量" in body["error"]["message"]


async def test_schedule_params_accept_a_secret_named_by_environment_variable(api: Api) -> None:
    ok = {"kind": "wecom", "address": "协调群", "config": {"key_env": "JIXIAO_WECOM_KEY"}}
    status, body = await api.post("/api/schedules", json=_summarise([ok]))
    assert status == 201, body
    assert body["data"]["params"]["endpoints"][0]["config"] == {"key_env": "JIXIAO_WECOM_KEY"}


async def test_a_webhook_whose_secret_variable_is_missing_is_refused_when_written(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JX_T_MISSING_HOOK_SECRET", raising=False)
    hook = {
        "kind": "webhook",
        "address": "https://hooks.example.cn/jixiao",
        "config": {"secret_env": "JX_T_MISSING_HOOK_SECRET"},
    }
    status, body = await api.post("/api/schedules", json=_summarise([hook]))
    # Well-formed, but this server lacks the variable: a conflict with its state, not bad syntax.
    assert status == 409 and body["error"]["where"] == "params.endpoints[0].config", body
    assert "JX_T_MISSING_HOOK_SECRET" in body["error"]["message_en"]
    unit = {
        "key": "hook-unit",
        "name": "回调单位",
        "channel_kind": "webhook",
        "channel_address": "https://hooks.example.cn/jixiao",
        "channel_config": {"secret_env": "JX_T_MISSING_HOOK_SECRET"},
    }
    status, body = await api.post(f"/api/projects/{CODE}/units", json=unit)
    assert status == 400 and "JX_T_MISSING_HOOK_SECRET" in body["error"]["message_en"], body
    assert body["error"]["details"][0]["field"] == "channel_config"
    monkeypatch.setenv("JX_T_MISSING_HOOK_SECRET", "now-it-is-set-0123456789")
    assert (await api.post("/api/schedules", json=_summarise([hook])))[0] == 201
    assert (await api.post(f"/api/projects/{CODE}/units", json=unit))[0] == 201


async def test_credential_addresses_are_redacted_for_coordinators_and_admins(
    api: Api, sessionmaker: SessionMaker
) -> None:
    endpoints = [
        {"kind": "slack", "address": SLACK},
        {"kind": "feishu", "address": FEISHU, "config": {"token_env": "JIXIAO_FEISHU_TOKEN"}},
    ]
    status, created = await api.post("/api/schedules", json=_summarise(endpoints))
    assert status == 201, created
    sid = created["data"]["id"]
    await api.patch(f"/api/schedules/{sid}", json={"cron": "17 9 * * 1"})  # a change log entry
    unit = {"key": "slack-unit", "name": "Slack 单位", "channel_kind": "slack", "channel_address": SLACK}
    assert (await api.post(f"/api/projects/{CODE}/units", json=unit))[0] == 201
    async with transaction(sessionmaker) as session:
        session.add(ChannelEndpoint(kind="slack", address=SLACK, name="协调群"))
    seen: list[str] = [json.dumps(created, ensure_ascii=False)]
    for role in ("coordinator", "admin"):
        for path in ("/api/schedules", f"/api/schedules/{sid}"):
            status, body = await api.get(path, token=role)
            assert status == 200, (role, path, body)
            seen.append(json.dumps(body, ensure_ascii=False))
    for path in (f"/api/projects/{CODE}/units", f"/api/projects/{CODE}/units/slack-unit", "/api/endpoints"):
        status, body = await api.get(path)
        if status != 405:
            assert status == 200, (path, body)
            seen.append(json.dumps(body, ensure_ascii=False))
    everything = "\n".join(seen)
    for secret in CREDENTIAL_PARTS:
        assert secret not in everything
    assert "https://hooks.slack.com/services/***" in everything  # still recognisable
    assert "https://open.feishu.cn/open-apis/bot/v2/hook/***" in everything
    assert "JIXIAO_FEISHU_TOKEN" in everything  # variable names are not secrets


def test_values_in_the_env_file_are_used_for_every_env_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JX_T_FILE_SECRET", raising=False)
    monkeypatch.setenv("JX_T_BOTH", "from-environment")
    (tmp_path / ".env").write_text(
        "JX_T_FILE_SECRET=from-dotenv-file\nJX_T_BOTH=from-dotenv-file\nJX_T_WECOM=wecom-from-file\n"
    )
    assert secret_environment()["JX_T_FILE_SECRET"] == "from-dotenv-file"
    assert secret_environment()["JX_T_BOTH"] == "from-environment"  # the environment wins
    hook = ChannelEndpoint(
        id=1, kind="webhook", address="https://hooks.example.cn/a", config={"secret_env": "JX_T_FILE_SECRET"}
    )
    robot = ChannelEndpoint(id=2, kind="wecom", address="群", config={"key_env": "JX_T_WECOM"})
    assert endpoint_from_row(hook).config["secret"] == "from-dotenv-file"
    assert endpoint_from_row(robot).config["key"] == "wecom-from-file"
