"""``jixiao demo`` runs the whole loop on one machine and prints where to look."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_invites_every_unit_collects_answers_and_posts_a_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIXIAO_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--seconds", "2", "--share", "0.5", "--exit"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # progress for a log reader: every invitation delivered, every chosen unit answered
    assert "invitations delivered: 121/121" in result.stderr
    assert "units answering: 60/60" in result.stderr or "units answering: 61/61" in result.stderr
    assert "summary posted" in result.stderr
    out = result.stdout
    assert "回收率" in out and "/ 已邀请 121" in out
    links = re.findall(r"unit link (u\d+): (http://127\.0\.0\.1:\d+/l/[A-Za-z0-9_-]{32})", out)
    assert len(links) == 3
    assert re.search(r"full report\s+http://127\.0\.0\.1:\d+/r/urumqi-ip-2023\.\d+\.", out)
    assert re.search(r"console\s+http://127\.0\.0\.1:\d+/console/\s+（用户 user demo，密码 password \S{12}）", out)
    # the throw-away data directory is removed and nothing was written to the user's data dir
    assert not list(tmp_path.glob("jixiao-demo-*"))
    assert not (tmp_path / "xdg" / "jixiao" / "jixiao.db").exists()
    # the service is gone with the demo: its links no longer answer
    try:
        urllib.request.urlopen(links[0][1], timeout=2)
    except OSError:
        pass
    else:
        raise AssertionError("the demo server still answers after --exit")
