"""scripts/serve and scripts/test install into .venv only when pyproject.toml changed.

The install helper is run in a scratch folder against a stand-in ``.venv/bin/python`` that records
each pip call, so the test is fast and touches no real environment.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = "-c" ]; then echo "3.11.0 (fake)"; exit 0; fi
echo "$*" >> "$(dirname "$0")/../pip.log"
"""


def _ensure(folder: Path, extras: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'. scripts/_venv.sh && ensure_venv "{extras}"'],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )


def _pip_installs(folder: Path) -> list[str]:
    log = folder / ".venv" / "pip.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("-m pip install -e")]


def test_dependencies_are_installed_once_and_again_only_when_pyproject_changes(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)

    first = _ensure(tmp_path, "test")
    assert _pip_installs(tmp_path) == ["-m pip install -e .[test] --progress-bar on"]
    assert "installing .[test]" in first.stderr  # the person sees that a long step started

    _ensure(tmp_path, "test")
    _ensure(tmp_path, "")  # serve: the test install already covers the base dependencies
    assert len(_pip_installs(tmp_path)) == 1

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["y"]\n')
    _ensure(tmp_path, "")
    assert _pip_installs(tmp_path)[1:] == ["-m pip install -e . --progress-bar on"]
