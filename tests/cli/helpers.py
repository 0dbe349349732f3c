"""In-process CLI runs for definition tests: ``jixiao …`` with captured output on a SQLite file."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from cli.main import main
from tests.conftest import REPO

DEMO = REPO / "config" / "projects" / "zipingbiao-demo"


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run ``jixiao ARGS`` in this process (sync test only) against ``tmp_path``'s SQLite file."""
    out, err = io.StringIO(), io.StringIO()
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    code = main(["--database-url", db, "--data-dir", str(tmp_path), *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def demo_copy(tmp_path: Path, edit: dict[str, str] | None = None, name: str = "demo") -> Path:
    """A copy of the 自评表 demo project with textual replacements ``{old: new}`` in project.toml."""
    target = tmp_path / name
    shutil.copytree(DEMO, target)
    toml = target / "project.toml"
    text = toml.read_text(encoding="utf-8")
    for old, new in (edit or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    toml.write_text(text, encoding="utf-8")
    return target
