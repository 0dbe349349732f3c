"""Where jixiao's data lives — the data directory and the database URL — found without pydantic.

:class:`config.settings.Settings` builds every setting with pydantic-settings, whose import costs
≈ 0.1 s per command, most of what a read command (``project list``, ``schedule list``) does
otherwise. Those commands only need the database URL, so the CLI reads these two settings here
and builds the full settings only when a command uses one of the others.

The lookup is the one pydantic-settings does for ``Settings`` (``env_prefix="JIXIAO_"``, names
matched in any case, ``env_file=ENV_FILE``): keyword overrides win, then the process
environment, then the ``.env`` file, then the defaults; ``Settings.db_url`` calls
:func:`sqlite_url` for the default. ``tests/config/test_location.py`` checks that both give the
same URL and directory over every combination of sources.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The ``.env`` file (relative to the working directory), read by Settings and by secret lookups.
ENV_FILE = ".env"
PREFIX = "JIXIAO_"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/jixiao`` (``~/.local/share/jixiao``): one well-known place, whatever the
    current directory, so every ``jixiao`` command and ``jixiao serve`` find the same database."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "jixiao"


def sqlite_url(data_dir: Path) -> str:
    """The default database: ``jixiao.db`` in the data directory."""
    return f"sqlite+aiosqlite:///{(data_dir / 'jixiao.db').resolve()}"


def _sources(env_file: str | Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """``JIXIAO_*`` names (lower case) → values: the ``.env`` file's, overridden by the
    environment's. A ``.env`` name without a value is ignored."""
    found: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values  # only when there is a file to read

        found.update(
            (k.lower(), v) for k, v in dotenv_values(env_file, encoding="utf-8").items() if v is not None
        )
    found.update((k.lower(), v) for k, v in environ.items())
    return found


def locate(
    overrides: Mapping[str, object] | None = None,
    *,
    env_file: str | Path | None = ENV_FILE,
    environ: Mapping[str, str] | None = None,
) -> tuple[Path, str]:
    """(data directory, effective database URL) as ``Settings(**overrides)`` would give them
    (``data_dir``, ``db_url``)."""
    overrides = overrides or {}
    values = _sources(env_file, os.environ if environ is None else environ)
    data_dir = overrides.get("data_dir")
    if data_dir is None:
        data_dir = values.get(f"{PREFIX}data_dir".lower())
    directory = Path(data_dir) if data_dir is not None else default_data_dir()  # type: ignore[arg-type]
    url = overrides.get("database_url")
    if url is None:
        url = values.get(f"{PREFIX}database_url".lower())
    return directory, str(url) if url else sqlite_url(directory)
