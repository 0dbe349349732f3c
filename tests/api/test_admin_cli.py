"""The admin CLI (``jixiao token|campaign|import|override``) against a temporary SQLite database."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import EXAMPLE_PROJECT

CODE = "urumqi-ip-2023"


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.args = [
            "--database-url",
            f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
            "--data-dir",
            str(tmp_path),
        ]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        out, err = StringIO(), StringIO()
        code = main([*self.args, *argv], out=out, err=err)
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    assert run("project", "load", str(EXAMPLE_PROJECT))[0] == 0
    return run


def test_a_token_is_printed_once_listed_without_its_value_and_revoked(cli: Cli) -> None:
    code, out, _ = cli("token", "create", "--name", "ops", "--role", "admin", "--all-projects")
    assert code == 0
    token = out.strip().splitlines()[-1]
    assert token.startswith("jx_") and len(token) >= 40
    code, out, _ = cli("token", "list")
    assert code == 0 and "ops" in out and "admin" in out and token not in out
    code, out, _ = cli("token", "revoke", "1")
    assert code == 0 and "revoked" in out
    assert "revoked" in cli("token", "list")[1]
    code, _, err = cli("token", "revoke", "99")
    assert code == 1 and "no such token" in err


def test_a_token_must_name_its_projects_and_only_admins_see_every_project(cli: Cli) -> None:
    code, _, err = cli("token", "create", "--name", "ops", "--role", "admin")
    assert code == 1 and "--project" in err and "--all-projects" in err
    code, _, err = cli("token", "create", "--name", "c", "--role", "coordinator", "--all-projects")
    assert code == 1 and "only an admin token" in err
    code, _, err = cli("token", "create", "--name", "c", "--role", "coordinator", "--project", "ghost")
    assert code == 1 and "ghost" in err
    code, out, _ = cli("token", "create", "--name", "c", "--role", "coordinator", "--project", CODE)
    assert code == 0 and CODE in out
    assert f"projects {CODE}" in cli("token", "list")[1]


def test_a_campaign_is_created_launched_reported_and_closed(cli: Cli) -> None:
    code, out, err = cli("campaign", "create", CODE, "--name", "满意度调查", "--opens", "2020-01-01T00:00+08:00",
                         "--closes", "2099-01-01T00:00+08:00", "--units", "u001,u002")  # fmt: skip
    assert code == 0, err
    assert "campaign 1 created" in out
    code, out, _ = cli("campaign", "launch", "1")
    assert code == 0 and "2 links" in out
    code, out, _ = cli("campaign", "status", "1")
    assert code == 0 and "u001" in out and "u002" in out and "u003" not in out
    assert cli("campaign", "close", "1")[0] == 0
    assert "[closed]" in cli("campaign", "status", "1")[1]


def test_bad_campaign_input_exits_1_with_a_clear_message(cli: Cli) -> None:
    code, _, err = cli("campaign", "create", CODE, "--name", "x", "--opens", "2020-01-01T00:00", "--closes", "2099-01-01T00:00+08:00")  # fmt: skip
    assert code == 1 and "offset" in err
    code, _, err = cli("campaign", "create", CODE, "--name", "x", "--opens", "2020-01-01T00:00+08:00", "--closes", "2099-01-01T00:00+08:00", "--units", "ghost")  # fmt: skip
    assert code == 1 and "ghost" in err


def test_an_import_with_bad_rows_lists_every_row_and_imports_nothing(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "pay.csv"
    bad.write_text(
        "unit,amount,date\nu001,1.001,2023-09-01\nu002,5,2023-09-01\nghost,1,2023-09-01\n", encoding="utf-8"
    )
    code, _, err = cli("import", "disbursements", CODE, str(bad))
    assert code == 1
    assert "pay.csv:2" in err and "pay.csv:4" in err and "pay.csv:3" not in err
    good = tmp_path / "units.csv"
    good.write_text("key,name\nu500,新增单位\n", encoding="utf-8")
    code, out, _ = cli("import", "units", CODE, str(good), "--dry-run")
    assert code == 0 and "created 1" in out
    code, out, _ = cli("import", "units", CODE, str(good))
    assert code == 0 and "created 1" in out
    code, out, _ = cli("import", "units", CODE, str(good))
    assert "unchanged 1" in out
    assert cli("import", "units", CODE, str(tmp_path / "missing.csv"))[0] == 1


def test_an_override_needs_a_valid_score_and_reason(cli: Cli) -> None:
    from config.loader import load_definition

    key = next(i.key for i in load_definition(EXAMPLE_PROJECT).indicators if i.weight >= 2)
    code, out, err = cli("override", "set", CODE, key, "1.5", "--reason", "现场核查")
    assert code == 0, err
    assert "override set" in out
    code, _, err = cli("override", "set", CODE, key, "abc", "--reason", "x")
    assert code == 1 and "not a number" in err
    code, _, err = cli("override", "set", CODE, key, "999", "--reason", "x")
    assert code == 1 and "weight" in err
    code, _, err = cli("override", "set", CODE, "nope", "1", "--reason", "x")
    assert code == 1 and "no such indicator" in err
    assert cli("override", "clear", CODE, key, "--reason", "复核")[0] == 0
    assert cli("override", "clear", CODE, key, "--reason", "复核")[0] == 1
