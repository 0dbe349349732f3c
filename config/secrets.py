"""Channel secrets: where ``*_env`` references are resolved, and how credential-bearing channel
addresses are shown.

Secrets never live in project files, schedule params or the database: a channel config key
``X_env`` names an environment variable whose value becomes ``X`` at send time
(``secret_env = "JIXIAO_HOOK_SECRET"`` → ``secret``). :func:`secret_environment` is the ONE
place such names are looked up: the process environment, over the values of the ``.env`` file
that :class:`config.settings.Settings` also reads (so a secret put in ``.env`` works for every
``*_env`` reference, exactly like a ``JIXIAO_*`` setting).

Some addresses are credentials themselves (a Slack incoming-webhook URL, a Feishu hook URL, a
WeCom or DingTalk robot URL with its key): :func:`redact_address` is how every API response shows
them, whatever the caller's role.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from config.location import ENV_FILE

REDACTED = "***"

_SECRET_WORDS = ("secret", "token", "password", "passwd", "key", "sign", "credential")

#: Hosts whose webhook URL path (after the given prefix) or query is the credential.
_VENDOR_HOOKS = {
    "hooks.slack.com": "/services/",
    "open.feishu.cn": "/open-apis/bot/v2/hook/",
    "open.larksuite.com": "/open-apis/bot/v2/hook/",
    "qyapi.weixin.qq.com": "/cgi-bin/webhook/send",
    "oapi.dingtalk.com": "/robot/send",
}


def secret_environment(env_file: str | Path | None = ENV_FILE) -> dict[str, str]:
    """Names → values for ``*_env`` lookups: the ``.env`` file's entries, overridden by the
    process environment (the same precedence as the settings)."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values  # here: redaction (schedule list) needs no .env reader

        values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    values.update(os.environ)
    return values


def missing_env(name: str, env: Mapping[str, str] | None = None) -> bool:
    """True when the variable ``name`` is unset or empty (in the environment and ``.env``)."""
    env = secret_environment() if env is None else env
    return not env.get(name, "")


def looks_secret(config_key: str) -> bool:
    """A config key whose value would be a credential (``key``, ``secret``, ``token`` …)."""
    lowered = config_key.lower()
    return not lowered.endswith("_env") and any(word in lowered for word in _SECRET_WORDS)


def redact_address(address: str) -> str:
    """``address`` as it may be shown: a vendor webhook URL keeps its host and fixed path but
    not the credential part; any other URL loses its password and the values of secret-looking
    query parameters. Plain addresses (emails, chat ids, labels) are unchanged."""
    if not address.lower().startswith(("http://", "https://")):
        return address
    try:
        parts = urlsplit(address)
        host = (parts.hostname or "").lower()
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", f":{REDACTED}@")
    prefix = _VENDOR_HOOKS.get(host)
    if prefix is not None:
        path = prefix + REDACTED if parts.path.startswith(prefix) and prefix.endswith("/") else parts.path
        query = REDACTED if parts.query else ""
        return urlunsplit((parts.scheme, netloc, path, query, ""))
    query = urlencode(
        [(k, REDACTED if looks_secret(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_channel(channel: Mapping[str, Any]) -> dict[str, Any]:
    """A ``{kind, address, config, …}`` mapping as it may be shown: address redacted, config
    values under secret-looking keys replaced (``*_env`` names are not secrets and stay)."""
    out = dict(channel)
    if isinstance(out.get("address"), str):
        out["address"] = redact_address(out["address"])
    if isinstance(out.get("config"), Mapping):
        out["config"] = {
            k: (REDACTED if looks_secret(str(k)) else (redact_address(v) if isinstance(v, str) else v))
            for k, v in out["config"].items()
        }
    return out
