"""Service settings, read from the environment (prefix ``JIXIAO_``) or an ``.env`` file.

Nothing here runs at import time: entry points call :func:`load_settings` once and pass the
result down. See ``config/example.env`` for every variable with its default.
"""

from __future__ import annotations

import os
import secrets
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.location import ENV_FILE, PREFIX, default_data_dir, sqlite_url


class Settings(BaseSettings):
    """All runtime configuration. Secrets are ``SecretStr`` so they never print or log."""

    # config.location reads data_dir and database_url the same way without pydantic (the CLI)
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=ENV_FILE, extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the SQLite file and generated secrets live ($XDG_DATA_HOME/jixiao by default).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite:///<data_dir>/jixiao.db. "
        "PostgreSQL: postgresql+asyncpg://user@host/db",
    )
    timezone: str = Field(
        default="Asia/Shanghai", description="Default display/schedule timezone (IANA name)."
    )
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base URL that recipients and coordinators open; personal links are built on it. "
        "Unset, `jixiao serve` uses the address it serves (http://HOST:PORT).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs report links and CSRF tokens. If unset, one is generated once into <data_dir>/secret_key.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed "
        "(e.g. 127.0.0.1/32,10.0.0.0/8). Empty: the TCP peer is the client.",
    )
    log_level: str = "INFO"
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = Field(
        default="FULL",
        description="SQLite PRAGMA synchronous. FULL (default): every commit is on disk before it is "
        "acknowledged, also across a power cut. NORMAL: survives a process crash, may lose the last "
        "commits on power loss (bench/README.md, 'SQLite durability').",
    )
    load_example: bool = Field(
        default=True, description="Load the bundled example project into an empty database on serve."
    )
    channel_base_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Override vendor API base URLs, e.g. {"telegram": "http://127.0.0.1:9000"} (tests, proxies).',
    )
    inbound: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Chat-command bots per vendor (telegram, feishu, dingtalk, wecom, slack): "
        "non-secret settings and the NAMES of the environment variables holding secrets (keys "
        'ending in _env), e.g. {"telegram": {"secret_token_env": "TG_WEBHOOK_SECRET", '
        '"token_env": "TG_BOT_TOKEN", "username": "jixiao_bot"}}. See README, "Asking the bot".',
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "jixiao@localhost"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"未知时区 unknown timezone: {value!r}") from exc
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ip_network(part.strip(), strict=False)
                except ValueError as exc:
                    raise ValueError(
                        f"JIXIAO_TRUSTED_PROXIES 中 {part.strip()!r} 不是 IP 地址或网段（CIDR）/ "
                        f"{part.strip()!r} in JIXIAO_TRUSTED_PROXIES is not an IP address or CIDR"
                    ) from exc
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """The parsed ``trusted_proxies`` (a bare address is a /32 or /128 network)."""
        return tuple(
            ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",") if p.strip()
        )

    @property
    def db_url(self) -> str:
        """The effective database URL (SQLite file under ``data_dir`` by default)."""
        if self.database_url:
            return self.database_url
        return sqlite_url(self.data_dir)

    def engine_options(self) -> dict[str, str]:
        """Keyword arguments for ``store.db.create_engine(s)`` that come from the settings."""
        return {"sqlite_synchronous": self.sqlite_synchronous}

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def secret(self) -> bytes:
        """The signing secret; generated (256 bits) and kept in ``data_dir`` when not configured."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Created owner-only from the first byte (no window where another user could read it);
            # O_EXCL: two processes starting together never overwrite each other's secret.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(32))
        return path.read_text().strip().encode()


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
