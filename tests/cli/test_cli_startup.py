"""The CLI answers at once: building the parser loads no database, web or data-frame code, the
schema check is one query, and every command finds the same well-known data directory."""

from __future__ import annotations

import asyncio
import io
import json
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


#: What a read command on an up-to-date SQLite database must not load (store.lite reads it; the
#: database URL is found by config.location, so the pydantic settings are not built either).
ORM = ("sqlalchemy", "aiosqlite", "store.models", "store.db", "config.definition", "pandas", "alembic",
       "pydantic", "pydantic_settings")  # fmt: skip


def _cli(db_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIXIAO_")}
    env.update(JIXIAO_DATABASE_URL=db_url, JIXIAO_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _loaded_after(db_url: str, data_dir: Path, *args: str) -> tuple[str, list[str]]:
    """Run ``jixiao ARGS`` in a fresh interpreter; its output and which :data:`ORM` modules it loaded."""
    code = (
        "import sys, io\n"
        "from cli.main import main\n"
        "out = io.StringIO()\n"
        f"assert main({list(args)!r}, out=out) == 0\n"
        "sys.stdout.write(out.getvalue())\n"
        f"sys.stderr.write(','.join(m for m in {ORM!r} if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIXIAO_")}
    env.update(JIXIAO_DATABASE_URL=db_url, JIXIAO_DATA_DIR=str(data_dir))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout, [m for m in done.stderr.strip().split(",") if m]


async def test_read_commands_on_sqlite_load_no_orm_and_print_what_the_orm_path_prints(
    db_url: str, tmp_path: Path
) -> None:
    """``project list`` and ``schedule list`` read an up-to-date SQLite file with the stdlib
    (store.lite); the ORM path (PostgreSQL, or a database to migrate) prints the same."""
    load = _cli(db_url, tmp_path, "project", "load", str(REPO / "config" / "projects" / "urumqi-ip-2023"))
    assert load.returncode == 0, load.stderr
    added = _cli(db_url, tmp_path, "schedule", "add", "recompute", "urumqi-ip-2023", "0 9 * * 1-5",
                 "--params", '{"endpoints": [{"kind": "slack", "address": "https://hooks.slack.com/services/T0/B0/s3cr3t"}]}')  # fmt: skip
    assert added.returncode == 0, added.stderr
    paused = _cli(
        db_url, tmp_path, "schedule", "add", "summarise", "urumqi-ip-2023", "0 18 * * 5", "--paused"
    )
    assert paused.returncode == 0, paused.stderr
    for args in (("project", "list"), ("schedule", "list", "--json"), ("schedule", "list"),
                 ("schedule", "list", "--project", "nope")):  # fmt: skip
        out, loaded = _loaded_after(db_url, tmp_path, *args)
        if db_url.startswith("sqlite"):
            assert loaded == [], (args, loaded)
        from cli.context import Context

        # the ORM path in this process, on the same database
        buf, err = io.StringIO(), io.StringIO()
        from cli.main import main

        original = Context.lite_reader
        Context.lite_reader = lambda self: None  # type: ignore[method-assign]
        try:
            code = await asyncio.to_thread(
                main, ["--database-url", db_url, "--data-dir", str(tmp_path), *args], out=buf, err=err
            )
        finally:
            Context.lite_reader = original  # type: ignore[method-assign]
        assert code == 0, err.getvalue()
        assert out == buf.getvalue(), args
    listed = json.loads(_loaded_after(db_url, tmp_path, "schedule", "list", "--json")[0])
    assert [s["kind"] for s in listed] == ["recompute", "summarise"]
    assert "s3cr3t" not in json.dumps(listed)  # a credential in an address is redacted on this path too
    assert listed[0]["next_fire_times"] and listed[1]["next_fire_times"] == []
    assert listed[0]["created_at"].endswith("+00:00")


def test_a_sqlite_database_to_migrate_or_missing_takes_the_normal_path(tmp_path: Path) -> None:
    from store.lite import open_sqlite

    db = tmp_path / "old.db"
    assert open_sqlite(f"sqlite+aiosqlite:///{db}") is None  # no file: the normal path creates it
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('0001_initial_schema')")
    assert open_sqlite(f"sqlite+aiosqlite:///{db}") is None  # an older schema: migrate first
    assert open_sqlite("postgresql+asyncpg://u@h/db") is None


def test_main_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    """Tests (and anything embedding the CLI) call ``main`` in-process: only the console script
    (cli.entry) changes the collector's settings."""
    import gc

    from cli.main import main

    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    code = main(["--database-url", db, "project", "list"], out=io.StringIO(), err=io.StringIO())
    assert code == 0
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before


def test_the_console_script_holds_the_collector_back_until_a_server_has_started(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    probe = (
        "import gc, sys\n"
        "normal = gc.get_threshold()\n"
        "import cli.entry\n"
        f"sys.argv = ['jixiao', '--database-url', {db!r}, 'project', 'list']\n"
        "code = cli.entry.run()\n"
        "print(code, gc.get_threshold() == cli.entry.STARTUP_THRESHOLDS, gc.get_freeze_count() > 0)\n"
        "from cli.serve import freeze_startup_objects\n"
        "freeze_startup_objects()  # what jixiao serve calls once it serves\n"
        "print(gc.get_threshold() == normal)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["0 True True", "True"]


def test_the_installed_command_and_python_m_cli_go_through_the_entry_wrapper() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"jixiao": "cli.entry:run"}
    assert "from cli.entry import run" in (REPO / "cli" / "__main__.py").read_text(encoding="utf-8")
