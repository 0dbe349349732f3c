"""``config.location`` (the CLI's database URL without pydantic) finds exactly the data directory
and database URL that ``Settings`` finds, whatever mix of overrides, environment variables (in
any case) and ``.env`` entries names them — the same lookup written once for pydantic-settings and
once without it, so a test holds them together."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from config.location import locate
from config.settings import Settings

#: where a value comes from: nowhere, the environment (as written, or in lower case), the .env
#: file, both (the environment wins), or the command line (--database-url / --data-dir)
SOURCES = ("none", "env", "env-lower", "dotenv", "env+dotenv", "override")


def _arrange(
    source: str, name: str, value: str, monkeypatch: pytest.MonkeyPatch, dotenv: list[str], overrides: dict
) -> None:
    key = f"JIXIAO_{name.upper()}"
    if source in ("env", "env+dotenv"):
        monkeypatch.setenv(key, value)
    if source == "env-lower":
        monkeypatch.setenv(key.lower(), value)
    if source in ("dotenv", "env+dotenv"):
        dotenv.append(f"{key}={value}{'-from-dotenv' if source == 'env+dotenv' else ''}")
    if source == "override":
        overrides[name] = value


@pytest.mark.parametrize(("dir_source", "url_source"), list(itertools.product(SOURCES, SOURCES)))
def test_the_cli_finds_the_database_the_settings_find(
    dir_source: str, url_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.upper().startswith("JIXIAO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    dotenv: list[str] = ["# a comment", "JIXIAO_TIMEZONE=Asia/Urumqi"]
    overrides: dict[str, str] = {}
    _arrange(dir_source, "data_dir", str(tmp_path / "data"), monkeypatch, dotenv, overrides)
    _arrange(
        url_source, "database_url", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", monkeypatch, dotenv, overrides
    )
    (tmp_path / ".env").write_text("\n".join(dotenv) + "\n", encoding="utf-8")
    settings = Settings(**overrides)  # type: ignore[arg-type]
    assert locate(overrides) == (settings.data_dir, settings.db_url)


def test_an_empty_database_url_means_the_default_file_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JIXIAO_DATABASE_URL", "")
    monkeypatch.setenv("JIXIAO_DATA_DIR", str(tmp_path / "d"))
    settings = Settings()
    assert (
        locate()
        == (settings.data_dir, settings.db_url)
        == (
            tmp_path / "d",
            f"sqlite+aiosqlite:///{(tmp_path / 'd' / 'jixiao.db').resolve()}",
        )
    )
