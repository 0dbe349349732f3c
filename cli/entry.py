"""The ``jixiao`` console script and ``python -m cli``: :func:`cli.main.main` with the cyclic
garbage collector held back while a short-lived command runs.

Why: a command imports tens of thousands of objects (SQLAlchemy, pydantic models, the table
classes) that live until the process ends. With the default thresholds the collector scans that
growing heap again and again during the imports (≈ 0.25 s of a ``jixiao score``), and once more
at interpreter shutdown (≈ 0.3 s) — for nothing, since none of it is garbage. So the entry point
raises the thresholds before anything is imported (young collections still run, every 100,000
allocations, so a command that makes garbage in a loop stays bounded) and freezes the heap before
exit, which leaves the final collections nothing to scan.

:func:`cli.main.main` itself does not touch the collector: tests call it in-process. A
long-running command (``jixiao serve``, ``jixiao demo``) calls :func:`restore_normal_gc` once it
has started (through ``cli.serve.freeze_startup_objects``), so a server collects as usual.
"""

from __future__ import annotations

import gc

#: Thresholds while a command starts (gen0 allocations, gen1 and gen2 multipliers): the oldest
#: generation is in effect never collected before exit.
STARTUP_THRESHOLDS = (100_000, 50, 1000)

#: The thresholds found before :func:`run` raised them; None when they are not raised (a test
#: calling ``main`` in-process, or after :func:`restore_normal_gc`).
_normal: tuple[int, int, int] | None = None


def run() -> int:
    """Run the command line (``sys.argv``) and return its exit status."""
    global _normal
    _normal = gc.get_threshold()
    gc.set_threshold(*STARTUP_THRESHOLDS)
    try:
        from cli.main import main

        return main()
    finally:
        # whatever is alive now lives until exit: out of the shutdown collections' way
        gc.freeze()


def restore_normal_gc() -> None:
    """Give a long-running command the thresholds the process started with (no-op unless
    :func:`run` raised them)."""
    global _normal
    if _normal is not None:
        gc.set_threshold(*_normal)
        _normal = None
