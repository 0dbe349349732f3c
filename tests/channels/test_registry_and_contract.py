"""Registry, console channel, the shared contract and redaction."""

from __future__ import annotations

import io

import aiohttp
import pytest

from bot.channels import KINDS, Endpoint, Outcome, adapter_for, build_adapters, redact
from bot.channels.base import ChannelAdapter, parse_retry_after
from tests.channels.conftest import SECRET, WECOM_KEY, summary_message


def test_build_adapters_returns_one_adapter_per_kind_with_base_url_overrides() -> None:
    adapters = build_adapters({"wecom": "http://127.0.0.1:9/"})
    assert (
        set(adapters)
        == set(KINDS)
        == {"wecom", "dingtalk", "feishu", "telegram", "slack", "webhook", "email", "console"}
    )
    assert all(isinstance(a, ChannelAdapter) and a.kind == k for k, a in adapters.items())
    assert adapters["wecom"].base_for(Endpoint("wecom", "x")) == "http://127.0.0.1:9"
    assert adapters["dingtalk"].base_for(Endpoint("dingtalk", "x")) == "https://oapi.dingtalk.com"
    assert adapters["wecom"].base_for(Endpoint("wecom", "x", base_url="http://h:1")) == "http://h:1"


def test_unknown_kinds_are_refused_with_the_known_list() -> None:
    with pytest.raises(ValueError, match="known kinds: wecom"):
        adapter_for("fax")
    with pytest.raises(ValueError, match="unknown kinds"):
        build_adapters({"fax": "http://x"})


@pytest.mark.parametrize("kind", KINDS)
def test_budgets_never_exceed_the_vendor_caps(kind: str) -> None:
    adapter = adapter_for(kind)
    for cap in adapter.vendor_caps:
        same = [b for b in adapter.limits if b.scope == cap.scope and b.per_seconds >= cap.per_seconds]
        assert same, f"{kind}: no budget covers cap {cap}"
        assert min(b.count / b.per_seconds for b in same) <= cap.count / cap.per_seconds


def test_the_penalties_match_the_vendors_throttle_windows() -> None:
    penalties = {k: adapter_for(k).default_penalty_s for k in ("wecom", "dingtalk", "feishu")}
    assert penalties == {"wecom": 65.0, "dingtalk": 600.0, "feishu": 60.0}


async def test_the_console_channel_prints_the_plain_text_and_is_always_ok(
    client_session: aiohttp.ClientSession,
) -> None:
    stream = io.StringIO()
    adapter = adapter_for("console", stream=stream)
    (part,) = adapter.render(summary_message())
    result = await adapter.send(client_session, Endpoint("console", "local"), part)
    assert result.outcome is Outcome.OK
    out = stream.getvalue()
    assert "绩效评价汇总 2026-11" in out and "R0003 产出数量指标第3项" in out and "完整报告: https://" in out


def test_endpoint_repr_hides_credentials() -> None:
    endpoint = Endpoint("dingtalk", "ops", {"access_token": "tok-abcdef", "secret": SECRET, "chat": "g1"})
    shown = repr(endpoint)
    assert "tok-abcdef" not in shown and SECRET not in shown and "'chat': 'g1'" in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
        ),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1&sign=xyz%3D",
            "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=1&sign=***",
        ),
        (
            "POST https://api.telegram.org/bot123456:AAH-token_x/sendMessage",
            "POST https://api.telegram.org/bot***/sendMessage",
        ),
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/services/***"),
        (
            "https://open.feishu.cn/open-apis/bot/v2/hook/a-b-c",
            "https://open.feishu.cn/open-apis/bot/v2/hook/***",
        ),
        ('{"sign": "abc=", "secret": "s"}', '{"sign": "***", "secret": "***"}'),
    ],
)
def test_redact_removes_credential_shaped_text(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_removes_known_secrets_in_raw_and_url_encoded_forms() -> None:
    secret = "a+b/c=d secret"
    assert redact(f"x {secret} y a%2Bb%2Fc%3Dd%20secret z", [secret]) == "x *** y *** z"


@pytest.mark.parametrize(
    ("value", "seconds"), [("3", 3.0), (7, 7.0), ("-1", 0.0), (None, None), ("soon", None)]
)
def test_retry_after_values_are_parsed_as_seconds(value: object, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds  # type: ignore[arg-type]
