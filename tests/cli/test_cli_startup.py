"""The CLI answers at once: building the parser loads no database, web or data-frame code, the
schema check is one query, and every command finds the same well-known data directory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.schedules import KINDS as CLI_KINDS
from cli.serve import public_url_for
from config.settings import Settings, default_data_dir

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "alembic", "pandas", "aiohttp", "pydantic_settings", "openpyxl", "apscheduler")


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_building_the_parser_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from cli.main import build_parser\n"
        "build_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported while building the parser: {out.stdout.strip()}"


def test_help_is_printed_without_loading_settings(tmp_path: Path) -> None:
    env = {**os.environ, "JIXIAO_TIMEZONE": "Not/AZone"}  # settings would refuse this if loaded
    result = _run(["--help"], env, REPO)
    assert result.returncode == 0, result.stderr
    assert "COMMAND" in result.stdout and "serve" in result.stdout


def test_schedule_kinds_in_the_parser_are_the_stores() -> None:
    from store.schedules import KINDS

    assert CLI_KINDS == KINDS


def test_data_dir_defaults_to_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("JIXIAO_DATA_DIR", raising=False)
    assert default_data_dir() == tmp_path / "jixiao"
    assert Settings().data_dir == tmp_path / "jixiao"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local" / "share" / "jixiao"


def test_commands_from_any_directory_share_one_database_and_a_new_one_is_announced(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIXIAO_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["PYTHONPATH"] = str(REPO)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    first = _run(["project", "load", str(REPO / "config" / "projects" / "zipingbiao-demo")], env, REPO)
    assert first.returncode == 0, first.stderr
    db = tmp_path / "xdg" / "jixiao" / "jixiao.db"
    assert db.exists()
    assert f"creating a new database: {db}" in first.stderr

    second = _run(["project", "list"], env, elsewhere)
    assert second.returncode == 0, second.stderr
    assert "zipingbiao-demo" in second.stdout
    assert "new database" not in second.stderr
    assert not (elsewhere / "data").exists()


@pytest.mark.parametrize(
    ("env", "host", "port", "url", "warns"),
    [
        ({}, "127.0.0.1", 9000, "http://127.0.0.1:9000", False),
        ({}, "0.0.0.0", 8081, "http://127.0.0.1:8081", False),
        ({"public_url": "http://127.0.0.1:8080"}, "127.0.0.1", 9000, "http://127.0.0.1:8080", True),
        ({"public_url": "https://jx.example.cn"}, "127.0.0.1", 8080, "https://jx.example.cn", True),
        ({"public_url": "http://127.0.0.1:9000"}, "127.0.0.1", 9000, "http://127.0.0.1:9000", False),
    ],
)
def test_links_follow_the_served_address_unless_a_public_url_is_configured(
    env: dict[str, str], host: str, port: int, url: str, warns: bool, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, **env)  # type: ignore[arg-type]
    got, warning = public_url_for(settings, host, port)
    assert got == url
    assert (warning is not None) == warns


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_long_steps_show_a_spinner_to_a_person_and_nothing_to_a_pipe(tmp_path: Path) -> None:
    from cli.context import Context

    settings = Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        ctx = Context(settings=settings, out=io.StringIO(), err=stream)
        with ctx.working("正在导入 units.csv"):
            pass
    assert "正在导入 units.csv" in terminal.getvalue()
    assert pipe.getvalue() == ""
