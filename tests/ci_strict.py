"""In CI (``CI=true``) a missing dependency is an error, not a silent skip.

On a developer's machine the browser tests skip without Chromium and the PostgreSQL half of the
suite is absent without ``JIXIAO_TEST_PG_URL``: convenient. In CI the same absence would let a whole
class of tests vanish while the run stays green, so there:

- the session refuses to start unless PostgreSQL's URL is set and Chromium, LibreOffice (``soffice``,
  for the document tests) and ``pdftoppm`` are installed (``.ci/run`` installs them);
- any test that still skips is reported as failed, with the skip's reason.

tests/conftest.py imports these hooks; tests/test_ci_strict.py runs pytest on small files to prove it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright launches it by this path


def in_ci() -> bool:
    """True when the environment says it is CI (GitHub, GitLab and most runners set CI=true)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing_dependencies() -> list[str]:
    """What CI needs and this machine lacks, each with how to get it."""
    missing = []
    if not os.environ.get("JIXIAO_TEST_PG_URL"):
        missing.append("JIXIAO_TEST_PG_URL (PostgreSQL for the store tests; .ci/run sets it)")
    if not (CHROMIUM.exists() or shutil.which("chromium")):
        missing.append("chromium (apt-get install chromium; the browser tests)")
    for tool, package in (("soffice", "libreoffice-writer-nogui"), ("pdftoppm", "poppler-utils")):
        if not shutil.which(tool):
            missing.append(f"{tool} (apt-get install {package}; the document tests)")
    return missing


def pytest_sessionstart(session: pytest.Session) -> None:
    if in_ci() and (missing := missing_dependencies()):
        raise pytest.UsageError(
            "CI=true but these test dependencies are missing, so their tests would be skipped "
            "silently:\n  - " + "\n  - ".join(missing)
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), where every test dependency must be present: {reason}"
    return report
