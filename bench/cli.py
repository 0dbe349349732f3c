"""How long a ``jixiao`` command takes from the shell: ``--help``, and read commands on an
up-to-date SQLite database (``score``, ``schedule list``, ``project list``), each run in a fresh
process; then ``score`` when the table changed since the last snapshot (an override is set
before each run, untimed), which also writes a snapshot through the ORM.

    .venv/bin/python -m bench.cli [--runs 7]

Prints the median and the fastest wall time of ``--runs`` runs per command and the median CPU
time (user + system of the child process: on a shared, busy machine this is the steadier figure,
since waiting for a core is not counted), then the five slowest imports of ``score``
(``python -X importtime``), so a regression names its cause. Asserts nothing.

The children run with Python's bytecode cache as a user's shell has it: ``PYTHONDONTWRITEBYTECODE``
is removed from their environment, so the untimed ``project load`` leaves the checkout's modules
compiled (an editable install has no ``.pyc`` until first use; compiling the ~30 modules a
command imports from source costs ≈ 0.1–0.2 s on every run of an environment that sets it).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CODE = "urumqi-ip-2023"
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("score", CODE),
    ("schedule", "list"),
    ("project", "list"),
)
#: ``score`` after the table changed: before run i, this override (alternating 3 and 4 points)
CHANGE = ("override", "set", CODE, "decision.basis")


def _jixiao(args: tuple[str, ...], env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *extra, "-m", "cli", *args], env=env, cwd=REPO, capture_output=True, text=True
    )


def _slowest_imports(env: dict[str, str], args: tuple[str, ...], n: int = 5) -> list[tuple[int, str]]:
    """(cumulative µs, module) of the top-level imports that cost most."""
    err = _jixiao(args, env, "-X", "importtime").stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if cumulative.isdigit() and not name.startswith(" ") and "." not in name.strip():
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jixiao-bench-cli-") as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("JIXIAO_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env["XDG_DATA_HOME"] = tmp
        example = REPO / "config" / "projects" / "urumqi-ip-2023"
        loaded = _jixiao(("project", "load", str(example)), env)
        if loaded.returncode:
            raise SystemExit(loaded.stderr)
        print(
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {opts.runs} runs, fresh process each"
        )
        print(f"{'command':<38}{'median s':>10}{'fastest s':>11}{'CPU s':>8}")
        for args, changed in [(c, False) for c in COMMANDS] + [(("score", CODE), True)]:
            times, cpu = [], []
            _jixiao(args, env)  # untimed: compiles what it imports; the first score keeps a snapshot
            for i in range(opts.runs):
                if changed:
                    _jixiao((*CHANGE, str(3 + i % 2), "--reason", "bench"), env)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                done = _jixiao(args, env)
                times.append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
                if done.returncode:
                    raise SystemExit(f"jixiao {' '.join(args)} failed: {done.stderr}")
            label = "jixiao " + " ".join(args) + (" (changed)" if changed else "")
            print(
                f"{label:<38}{statistics.median(times):>10.2f}{min(times):>11.2f}"
                f"{statistics.median(cpu):>8.2f}"
            )
        print("\nslowest top-level imports of `jixiao score`:")
        for micros, name in _slowest_imports(env, ("score", "urumqi-ip-2023")):
            print(f"  {micros / 1e6:6.2f} s  {name}")


if __name__ == "__main__":
    main()
