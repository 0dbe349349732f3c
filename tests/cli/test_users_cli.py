"""``jixiao user create|list|passwd|disable|grant`` against a temporary SQLite database: the
password comes from stdin (never an argument), is stored as argon2id, and changes are audited."""

from __future__ import annotations

import asyncio
import io
import sys
from io import StringIO
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.main import main
from store.accounts import verify_password
from store.db import create_engine, make_sessionmaker
from store.models import Account, AuditEntry
from tests.conftest import EXAMPLE_PROJECT

CODE = "urumqi-ip-2023"


class Cli:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
        self.args = ["--database-url", self.url, "--data-dir", str(tmp_path)]
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        out, err = StringIO(), StringIO()
        code = main([*self.args, *argv], out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def rows(self, model: type) -> list:
        async def fetch() -> list:
            engine = create_engine(self.url)
            try:
                async with make_sessionmaker(engine)() as session:
                    return list((await session.execute(select(model))).scalars())
            finally:
                await engine.dispose()

        return asyncio.run(fetch())


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    run = Cli(tmp_path, monkeypatch)
    assert run("project", "load", str(EXAMPLE_PROJECT))[0] == 0
    return run


def test_the_first_admin_is_created_with_a_password_from_stdin_hashed_with_argon2id(cli: Cli) -> None:
    code, out, err = cli(
        "user", "create", "alice", "--role", "admin", "--all-projects", stdin="correct horse battery\n"
    )
    assert code == 0, err
    [row] = cli.rows(Account)
    assert row.password_hash.startswith("$argon2id$")
    assert "correct horse" not in row.password_hash
    assert verify_password(row.password_hash, "correct horse battery")
    code, out, _ = cli("user", "list")
    assert "alice" in out and "admin" in out and "projects *" in out
    [entry] = cli.rows(AuditEntry)
    assert entry.action == "user.create" and entry.object == "user:alice"


def test_the_password_is_not_an_argument_and_a_short_one_is_refused(cli: Cli) -> None:
    with pytest.raises(SystemExit):
        cli("user", "create", "bob", "--role", "admin", "--password", "x" * 12)
    code, _, err = cli("user", "create", "bob", "--role", "coordinator", "--project", CODE, stdin="short\n")
    assert code == 1 and "10" in err
    assert cli.rows(Account) == []


def test_an_account_must_name_its_projects_and_a_coordinator_cannot_see_all(cli: Cli) -> None:
    code, _, err = cli("user", "create", "bob", "--role", "coordinator", stdin="long enough pw\n")
    assert code == 1 and "--project" in err
    code, _, err = cli(
        "user", "create", "bob", "--role", "coordinator", "--all-projects", stdin="long enough pw\n"
    )
    assert code == 1 and "only admins" in err
    code, _, err = cli(
        "user", "create", "bob", "--role", "coordinator", "--project", "ghost", stdin="long enough pw\n"
    )
    assert code == 1 and "ghost" in err
    code, out, _ = cli(
        "user", "create", "bob", "--role", "coordinator", "--project", CODE, stdin="long enough pw\n"
    )
    assert code == 0 and CODE in out


def test_passwd_replaces_the_hash_and_disable_marks_the_account(cli: Cli) -> None:
    cli("user", "create", "carol", "--role", "admin", "--all-projects", stdin="first password 1\n")
    code, _, err = cli("user", "passwd", "carol", stdin="second password 2\n")
    assert code == 0, err
    [row] = cli.rows(Account)
    assert verify_password(row.password_hash, "second password 2")
    assert not verify_password(row.password_hash, "first password 1")
    assert cli("user", "disable", "carol")[0] == 0
    assert "disabled" in cli("user", "list")[1]
    code, _, err = cli("user", "passwd", "nobody", stdin="whatever pw 12\n")
    assert code == 1 and "no such user" in err
    actions = [e.action for e in cli.rows(AuditEntry)]
    assert actions == ["user.create", "user.passwd", "user.disable"]
