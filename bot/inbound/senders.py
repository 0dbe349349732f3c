"""Outbox adapters for replies to chat commands (one per vendor reply path).

Replies are outbox rows like every other message, so they get the same rate caps, retries,
attempt records and dedupe. Rendering reuses each vendor's summary adapter (a reply looks like a
summary); only the request differs:

- ``telegram_bot``: ``sendMessage`` with the bot token to the group (the Telegram adapter as is).
- ``feishu_app``: ``POST /open-apis/im/v1/messages?receive_id_type=chat_id`` with a cached
  ``tenant_access_token`` (``/open-apis/auth/v3/tenant_access_token/internal``); a rejected token
  is dropped and fetched again once.
- ``dingtalk_session``: the message's ``sessionWebhook`` (no token or signature; valid until
  ``sessionWebhookExpiredTime``, which becomes the row's ``not_after``).
- ``wecom_aibot``: the message's ``response_url`` (usable once, for 1 hour), so the reply is one
  request: it is cut to one part.
- ``slack_response``: a slash command's ``response_url`` (``response_type: in_channel``).
- ``slack_bot``: ``chat.postMessage`` with the bot token (``app_mention`` events).

Per-message URLs arrive in the row's payload (``reply_to``, see ``bot.outbox.with_reply_target``)
and are checked against the vendor's hosts (or the configured base URL) before use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from bot.channels._http import HttpReply, dump_json, post_and_classify
from bot.channels._parts import heading_parts
from bot.channels._render import MarkdownFlavor, utf8_len
from bot.channels._vendor import classify_coded, errcode_classifier, header_retry_after
from bot.channels.base import ChannelAdapter, Endpoint, Outcome, Part, RateSpec, Result, excerpt, redact
from bot.channels.dingtalk import DingTalkAdapter
from bot.channels.dingtalk import classify as dingtalk_classify
from bot.channels.feishu import FeishuAdapter
from bot.channels.message import Message
from bot.channels.slack import SlackAdapter
from bot.channels.slack import classify as slack_webhook_classify
from bot.channels.telegram import TelegramAdapter

#: Hosts a per-message reply URL may point at, per kind (besides the configured base URL).
REPLY_HOSTS: dict[str, tuple[str, ...]] = {
    "dingtalk_session": ("oapi.dingtalk.com", "api.dingtalk.com"),
    "wecom_aibot": ("qyapi.weixin.qq.com",),
    "slack_response": ("hooks.slack.com",),
}


def reply_url_allowed(kind: str, url: str, base_url: str | None) -> bool:
    """Whether a vendor-supplied reply URL may be called: https on the vendor's host, or under the
    base URL configured for the vendor (tests, proxies)."""
    if base_url and url.startswith(base_url.rstrip("/") + "/"):
        return True
    parts = urlsplit(url)
    return parts.scheme == "https" and (parts.hostname or "") in REPLY_HOSTS.get(kind, ())


def _url_or_refusal(kind: str, endpoint: Endpoint, base_url: str | None) -> str | Result:
    url = str(endpoint.config.get("url", ""))
    if not url:
        return Result(Outcome.PERMANENT, vendor_msg="no reply URL in the message (reply_to.url)")
    if not reply_url_allowed(kind, url, base_url):
        return Result(
            Outcome.PERMANENT, vendor_msg=f"reply URL host {urlsplit(url).hostname!r} is not the vendor's"
        )
    return url


async def _post_to_reply_url(
    adapter: ChannelAdapter,
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    payload: dict[str, Any],
    classify: Any,
) -> Result:
    """POST ``payload`` to the endpoint's vendor reply URL (refused unless on the vendor's host)."""
    url = _url_or_refusal(adapter.kind, endpoint, endpoint.base_url or adapter.base_url)
    if isinstance(url, Result):
        return url
    return await post_and_classify(
        session,
        url,
        kind=adapter.kind,
        secrets=endpoint.secrets(),
        timeout=adapter.timeout,
        classify=classify,
        body=dump_json(payload),
    )


class TelegramBotAdapter(TelegramAdapter):
    """Replies in a Telegram group: the summary adapter, under its own kind (own endpoints)."""

    kind = "telegram_bot"


class DingTalkSessionAdapter(ChannelAdapter):
    kind = "dingtalk_session"
    default_base_url = "https://oapi.dingtalk.com"
    #: No limit is documented for sessionWebhook; the robot's 20/min (10-min penalty) is assumed.
    vendor_caps = (RateSpec(20, 60.0),)
    limits = (RateSpec(18, 60.0),)
    default_penalty_s = 600.0
    max_part_size = DingTalkAdapter.max_part_size
    size_unit = "bytes"

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        return DingTalkAdapter().render(message, dedupe_key=dedupe_key)

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        payload = dict(part.payload)
        at_user = endpoint.config.get("at_user")
        if at_user:
            payload["at"] = {"atUserIds": [str(at_user)]}
        return await _post_to_reply_url(self, session, endpoint, payload, dingtalk_classify)


#: WeCom's robot codes (bot.channels.wecom): 45009 throttled; 93000 invalid webhook url, 93004
#: robot disabled, 93008 not in chat. A used-up or expired response_url answers an error code too.
wecom_classify = errcode_classifier(rate_limited={45009}, permanent={93000, 93004, 93008, 93017, 40008})


#: Appended to a reply cut to one part (WeCom's response_url takes one request).
CUT_NOTE = "\n\n（内容过长，已截断：完整内容请用“报告”命令打开报告）"
#: WeCom markdown (v1: what response_url and app messages take) has no tables: rows become lists.
WECOM_FLAVOR = MarkdownFlavor(tables=False)
WECOM_MARKDOWN_BYTES = 4096 - len(CUT_NOTE.encode())


def wecom_markdown_parts(message: Message, *, dedupe_key: str | None) -> list[Part]:
    """``{"msgtype": "markdown", "markdown": {"content"}}`` parts of ≤ 4096 UTF-8 bytes."""
    return heading_parts(
        message,
        flavor=WECOM_FLAVOR,
        limit=WECOM_MARKDOWN_BYTES,
        cost=utf8_len,
        unit="bytes",
        sep="\n\n",
        payload=lambda t, text: {"msgtype": "markdown", "markdown": {"content": text}},
        dedupe_key=dedupe_key,
    )


class WeComAiBotAdapter(ChannelAdapter):
    kind = "wecom_aibot"
    default_base_url = "https://qyapi.weixin.qq.com"
    vendor_caps = (RateSpec(20, 60.0),)
    limits = (RateSpec(18, 60.0),)
    default_penalty_s = 65.0
    max_part_size = 4096
    size_unit = "bytes"

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        """One part only: ``response_url`` takes one request. A reply longer than one message
        keeps its first part, marked as cut."""
        parts = wecom_markdown_parts(message, dedupe_key=dedupe_key)
        if len(parts) == 1:
            return parts
        first = parts[0]
        text = first.payload["markdown"]["content"] + CUT_NOTE
        return [
            Part(
                {"msgtype": "markdown", "markdown": {"content": text}},
                1,
                1,
                utf8_len(text),
                "bytes",
                dedupe_key=dedupe_key,
            )
        ]

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        return await _post_to_reply_url(self, session, endpoint, part.payload, wecom_classify)


#: WeCom API token errors: fetch a new access_token once and retry.
WECOM_TOKEN_CODES = frozenset({40001, 40014, 42001})
wecom_app_classify = errcode_classifier(
    rate_limited={45009, 45033},
    permanent={60020, 81013, 40056, 301002, 40008, 44004, 40013, 40001, 40014, 42001},
    transient={-1},
)


class WeComAppAdapter(ChannelAdapter):
    """A self-built app's reply to the member who wrote to it: ``/cgi-bin/message/send`` with an
    ``access_token`` from ``/cgi-bin/gettoken`` (cached about 2 hours)."""

    kind = "wecom_app"
    default_base_url = "https://qyapi.weixin.qq.com"
    vendor_caps = (RateSpec(30, 60.0),)  # 30 messages a minute per member per app
    limits = (RateSpec(25, 60.0),)
    default_penalty_s = 65.0
    max_part_size = 4096
    size_unit = "bytes"

    def __init__(self, base_url: str | None = None, **kw: Any) -> None:
        super().__init__(base_url, **kw)
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        return wecom_markdown_parts(message, dedupe_key=dedupe_key)

    async def _token(
        self, session: aiohttp.ClientSession, base: str, corp_id: str, secret: str
    ) -> str | Result:
        cached = self._tokens.get((base, corp_id))
        if cached is not None and cached[1] > time.time() + 60:
            return cached[0]
        url = f"{base}/cgi-bin/gettoken?corpid={quote(corp_id, safe='')}&corpsecret={quote(secret, safe='')}"
        try:
            async with session.get(url, timeout=self.timeout) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Result(Outcome.TRANSIENT, vendor_msg=redact(f"gettoken: {type(exc).__name__}", (secret,)))
        if not isinstance(body, dict) or body.get("errcode") not in (0, None) or not body.get("access_token"):
            code = body.get("errcode") if isinstance(body, dict) else None
            outcome = Outcome.PERMANENT if code in (40013, 40001, 40091, 60020) else Outcome.TRANSIENT
            return Result(
                outcome, vendor_code=None if code is None else str(code), vendor_msg="gettoken refused"
            )
        token = str(body["access_token"])
        self._tokens[(base, corp_id)] = (token, time.time() + float(body.get("expires_in", 7200)))
        return token

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        corp_id, secret = str(endpoint.config.get("corp_id", "")), str(endpoint.config.get("corp_secret", ""))
        touser, agent = str(endpoint.config.get("touser", "")), str(endpoint.config.get("agent_id", ""))
        if not corp_id or not secret or not touser or not agent.isdigit():
            return Result(
                Outcome.PERMANENT,
                vendor_msg="wecom_app needs corp_id, corp_secret (corp_secret_env), agent_id and touser",
            )
        base = self.base_for(endpoint)
        result = Result(Outcome.TRANSIENT)
        for try_no in (1, 2):
            token = await self._token(session, base, corp_id, secret)
            if isinstance(token, Result):
                return token
            result = await post_and_classify(
                session,
                f"{base}/cgi-bin/message/send?access_token={quote(token, safe='')}",
                kind=self.kind,
                secrets=(*endpoint.secrets(), secret, token),
                timeout=self.timeout,
                classify=wecom_app_classify,
                body=dump_json({**part.payload, "touser": touser, "agentid": int(agent)}),
            )
            if try_no == 1 and _code_in(result, WECOM_TOKEN_CODES):
                self._tokens.pop((base, corp_id), None)
                continue
            return result
        return result


def _code_in(result: Result, codes: frozenset[int]) -> bool:
    try:
        return result.vendor_code is not None and int(result.vendor_code) in codes
    except ValueError:
        return False


def slack_response_classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
    """response_url answers ``ok`` (text) like a webhook, or ``{"ok": true}``."""
    if isinstance(reply.json, dict) and "ok" in reply.json:
        return _slack_api_classify(reply, secrets)
    return slack_webhook_classify(reply, secrets)


class SlackResponseAdapter(ChannelAdapter):
    kind = "slack_response"
    default_base_url = ""
    vendor_caps = (RateSpec(5, 1800.0),)  # a response_url takes at most 5 posts in 30 minutes
    limits = (RateSpec(1, 1.2),)
    default_penalty_s = 60.0
    max_part_size = SlackAdapter.max_part_size
    size_unit = "chars"

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        parts = SlackAdapter().render(message, dedupe_key=dedupe_key)
        return [
            Part(
                {**p.payload, "response_type": "in_channel"},
                p.index,
                p.total,
                p.size,
                p.unit,
                dedupe_key=p.dedupe_key,
            )
            for p in parts
        ]

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        return await _post_to_reply_url(self, session, endpoint, part.payload, slack_response_classify)


#: Slack Web API errors that no retry fixes.
SLACK_PERMANENT = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive",
     "token_revoked", "missing_scope", "invalid_blocks", "msg_too_long", "no_text", "expired_url", "used_url"}
)  # fmt: skip


def _slack_api_classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
    body = reply.json if isinstance(reply.json, dict) else {}
    error = str(body.get("error", "")) or None
    common: dict[str, Any] = {
        "http_status": reply.status,
        "vendor_code": error,
        "vendor_msg": error,
        "latency_ms": reply.latency_ms,
        "excerpt": excerpt(reply.text, secrets),
    }
    if reply.status == 429 or error == "ratelimited":
        return Result(
            Outcome.RATE_LIMITED, retry_after_s=header_retry_after(reply.headers, "Retry-After"), **common
        )
    if reply.status >= 500:
        return Result(Outcome.TRANSIENT, **common)
    if body.get("ok") is True:
        return Result(Outcome.OK, vendor_msg_id=str(body.get("ts") or "") or None, **common)
    if error in SLACK_PERMANENT or reply.status in (400, 401, 403, 404, 410):
        return Result(Outcome.PERMANENT, **common)
    return Result(Outcome.TRANSIENT, **common)


class SlackBotAdapter(ChannelAdapter):
    kind = "slack_bot"
    default_base_url = "https://slack.com"
    vendor_caps = (RateSpec(1, 1.0),)  # chat.postMessage: about 1 per second per channel
    limits = (RateSpec(1, 1.2),)
    default_penalty_s = 30.0
    max_part_size = SlackAdapter.max_part_size
    size_unit = "chars"

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        return SlackAdapter().render(message, dedupe_key=dedupe_key)

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        token, channel = str(endpoint.config.get("token", "")), str(endpoint.config.get("channel", ""))
        if not token or not channel:
            return Result(
                Outcome.PERMANENT, vendor_msg="slack_bot needs 'token' (bot_token_env) and 'channel'"
            )
        return await post_and_classify(
            session,
            f"{self.base_for(endpoint)}/api/chat.postMessage",
            kind=self.kind,
            secrets=endpoint.secrets(),
            timeout=self.timeout,
            classify=_slack_api_classify,
            body=dump_json({**part.payload, "channel": channel}),
            headers={"Authorization": f"Bearer {token}"},
        )


#: Feishu OpenAPI codes: token invalid/expired (fetch a new one once), throttled, and errors no
#: retry fixes (bot not in the chat 230002, no permission 230027/99991672, bad params 230001).
FEISHU_TOKEN_CODES = frozenset({99991661, 99991663, 99991664, 99991668})
FEISHU_RATE_CODES = frozenset({99991400, 230020, 11232})
FEISHU_PERMANENT = frozenset({230001, 230002, 230006, 230027, 99991672, 10003, 10014})


class FeishuAppAdapter(ChannelAdapter):
    kind = "feishu_app"
    default_base_url = "https://open.feishu.cn"
    #: "5 QPS per group, shared by all bots in it" and 50/s per API.
    vendor_caps = (RateSpec(5, 1.0), RateSpec(50, 1.0, scope="global"))
    limits = (RateSpec(4, 1.0), RateSpec(40, 1.0, scope="global"))
    default_penalty_s = 60.0
    max_part_size = FeishuAdapter.max_part_size
    size_unit = "bytes"

    def __init__(self, base_url: str | None = None, **kw: Any) -> None:
        super().__init__(base_url, **kw)
        #: (base, app_id) → (tenant_access_token, expires at epoch seconds)
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def render(self, message: Message, *, dedupe_key: str | None = None) -> list[Part]:
        parts = FeishuAdapter().render(message, dedupe_key=dedupe_key)
        return [
            Part(
                {"msg_type": "interactive", "content": json.dumps(p.payload["card"], ensure_ascii=False)},
                p.index,
                p.total,
                p.size,
                p.unit,
                dedupe_key=p.dedupe_key,
            )
            for p in parts
        ]

    async def _token(
        self,
        session: aiohttp.ClientSession,
        base: str,
        app_id: str,
        app_secret: str,
        secrets: tuple[str, ...],
    ) -> str | Result:
        cached = self._tokens.get((base, app_id))
        if cached is not None and cached[1] > time.time() + 60:
            return cached[0]
        reply = await post_and_classify(
            session,
            f"{base}/open-apis/auth/v3/tenant_access_token/internal",
            kind=self.kind,
            secrets=secrets,
            timeout=self.timeout,
            classify=_feishu_token_classify,
            body=dump_json({"app_id": app_id, "app_secret": app_secret}),
        )
        if not reply.ok:
            return reply
        token, expire = reply.details.get("token", ""), float(reply.details.get("expire", "0") or 0)
        self._tokens[(base, app_id)] = (token, time.time() + expire)
        return token

    async def send(self, session: aiohttp.ClientSession, endpoint: Endpoint, part: Part) -> Result:
        app_id, app_secret = (
            str(endpoint.config.get("app_id", "")),
            str(endpoint.config.get("app_secret", "")),
        )
        chat_id = str(endpoint.config.get("chat_id", ""))
        if not app_id or not app_secret or not chat_id:
            return Result(
                Outcome.PERMANENT,
                vendor_msg="feishu_app needs app_id, app_secret (app_secret_env) and chat_id",
            )
        base = self.base_for(endpoint)
        secrets = (*endpoint.secrets(), app_secret)
        result = Result(Outcome.TRANSIENT)
        for try_no in (1, 2):
            token = await self._token(session, base, app_id, app_secret, secrets)
            if isinstance(token, Result):
                return token
            result = await post_and_classify(
                session,
                f"{base}/open-apis/im/v1/messages?receive_id_type=chat_id",
                kind=self.kind,
                secrets=(*secrets, token),
                timeout=self.timeout,
                classify=_feishu_message_classify,
                body=dump_json({**part.payload, "receive_id": chat_id}),
                headers={"Authorization": f"Bearer {token}"},
            )
            if try_no == 1 and _code_in(result, FEISHU_TOKEN_CODES):
                self._tokens.pop((base, app_id), None)  # the token was revoked or expired early
                continue
            return result
        return result


def _feishu_body(reply: HttpReply) -> Mapping[str, Any]:
    return reply.json if isinstance(reply.json, dict) else {}


def _feishu_token_classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
    body = _feishu_body(reply)
    result = classify_coded(
        reply,
        code=body.get("code"),
        message=body.get("msg"),
        secrets=secrets,
        rate_limited=FEISHU_RATE_CODES,
        permanent=frozenset({10003, 10014}),  # bad app_id / app_secret
    )
    if result.ok:
        token = str(body.get("tenant_access_token", ""))
        return Result(
            Outcome.OK if token else Outcome.TRANSIENT,
            http_status=reply.status,
            vendor_code="0",
            latency_ms=reply.latency_ms,
            excerpt=redact(result.excerpt, (*secrets, token)),
            details={"token": token, "expire": str(body.get("expire", 0))},
        )
    return result


def _feishu_message_classify(reply: HttpReply, secrets: tuple[str, ...]) -> Result:
    body = _feishu_body(reply)
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    return classify_coded(
        reply,
        code=body.get("code"),
        message=body.get("msg"),
        secrets=secrets,
        rate_limited=FEISHU_RATE_CODES,
        permanent=FEISHU_PERMANENT,
        retry_after_s=header_retry_after(reply.headers, "x-ogw-ratelimit-reset", "Retry-After"),
        msg_id=str(data.get("message_id") or "") or None,
    )


REPLY_ADAPTERS: tuple[type[ChannelAdapter], ...] = (
    TelegramBotAdapter,
    FeishuAppAdapter,
    DingTalkSessionAdapter,
    WeComAiBotAdapter,
    WeComAppAdapter,
    SlackResponseAdapter,
    SlackBotAdapter,
)

#: Which vendor's configured base URL (``channel_base_urls``) each reply kind uses.
BASE_OF = {
    "telegram_bot": "telegram",
    "feishu_app": "feishu",
    "dingtalk_session": "dingtalk",
    "wecom_aibot": "wecom",
    "wecom_app": "wecom",
    "slack_response": "slack",
    "slack_bot": "slack",
}


def reply_adapters(base_urls: Mapping[str, str] | None = None) -> dict[str, ChannelAdapter]:
    """One adapter per reply kind; ``base_urls`` are the channels' vendor overrides (by vendor)."""
    base_urls = base_urls or {}
    return {cls.kind: cls(base_urls.get(BASE_OF[cls.kind])) for cls in REPLY_ADAPTERS}
