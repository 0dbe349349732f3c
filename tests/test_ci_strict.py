"""CI=true turns skips and missing test dependencies into errors (tests/ci_strict.py).

Each test runs pytest in a subprocess on a tiny test file, with the hooks loaded as a plugin, and
reads its exit code and summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKIPPING = """
import pytest

def test_needs_a_browser():
    pytest.skip("chromium not installed")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
"""


def run_pytest(tmp_path: Path, *, ci: bool, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SKIPPING, encoding="utf-8")
    full_env = {k: v for k, v in os.environ.items() if k not in ("CI", "JIXIAO_TEST_PG_URL")}
    full_env.update({"PYTHONPATH": str(REPO), "CI": "true" if ci else "", **env})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_strict", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_outside_ci_a_skip_stays_a_skip(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, ci=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped, 1 xfailed" in proc.stdout


def test_in_ci_a_skip_is_a_failure_that_gives_the_reason(tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # stand-ins, so the session check passes on any machine
    tools.mkdir()
    for name in ("chromium", "soffice", "pdftoppm"):
        (tools / name).write_text("#!/bin/sh\n", encoding="utf-8")
        (tools / name).chmod(0o755)
    proc = run_pytest(
        tmp_path, ci=True, JIXIAO_TEST_PG_URL="postgresql+asyncpg://x@127.0.0.1/t", PATH=str(tools)
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 xfailed" in proc.stdout, "an expected failure is not a skip"
    assert "skipped in CI (CI=true)" in proc.stdout and "chromium not installed" in proc.stdout


def test_in_ci_a_missing_postgresql_url_or_tool_stops_the_session(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, ci=True, PATH=str(tmp_path))  # no soffice/pdftoppm on this PATH
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "JIXIAO_TEST_PG_URL" in proc.stderr
    assert "soffice" in proc.stderr and "pdftoppm" in proc.stderr
    assert "test_needs_a_browser" not in proc.stdout, "nothing ran"
