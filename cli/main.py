"""The ``jixiao`` command line. Entry point: :func:`main`.

Each command group lives in its own module with a ``register(subparsers)`` function; handlers
are ``async def handler(args, ctx) -> int``. Domain errors print their message (Chinese and
English) and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence
from typing import TextIO

from cli.context import CommandError, Context

#: Command group modules, in help order.
GROUPS = (
    "cli.serve",
    "cli.demo",
    "cli.projects",
    "cli.score",
    "cli.report",
    "cli.admin",
    "cli.users",
    "cli.schedules",
    "cli.bot",
    "cli.db",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jixiao", description="绩效评价证据采集与评分服务 / performance-evaluation evidence service"
    )
    parser.add_argument("--database-url", help="override JIXIAO_DATABASE_URL")
    parser.add_argument("--data-dir", help="override JIXIAO_DATA_DIR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in GROUPS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # group not written yet
                continue
            raise
        module.register(sub)
    return parser


async def _run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        return int(await args.handler(args, ctx) or 0)
    finally:
        await ctx.close()


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status (also used by tests with captured streams)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # --help and usage errors exit here, before anything heavy loads

    overrides = {}
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    # settings are built when a command first needs one beyond the database (Context.settings)
    ctx = Context(overrides=overrides, out=out or sys.stdout, err=err or sys.stderr)
    try:
        return asyncio.run(_run(args, ctx))
    except BrokenPipeError:
        # The reader went away (``jixiao … | head``): not an error worth a traceback.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if _is_user_error(exc):
            print(str(exc), file=ctx.err)
            return 1
        fault = _database_fault(exc)
        if fault is None:
            return _unexpected(exc, ctx)
        print(f"jixiao: {fault}", file=ctx.err)
        return 1
    except KeyboardInterrupt:
        return 130


def _unexpected(exc: BaseException, ctx: Context) -> int:
    """An error nobody wrote a message for: a short bilingual line and a reference; the traceback
    goes to ``<data_dir>/cli-errors.log`` under that reference (``JIXIAO_DEBUG=1`` re-raises)."""
    import os
    import traceback
    import uuid
    from datetime import UTC, datetime

    if os.environ.get("JIXIAO_DEBUG"):
        raise exc
    ref = uuid.uuid4().hex[:10]
    where = ctx.data_dir / "cli-errors.log"
    try:
        ctx.data_dir.mkdir(parents=True, exist_ok=True)
        with where.open("a", encoding="utf-8") as log:
            log.write(f"--- {datetime.now(UTC).isoformat()} ref={ref} argv={sys.argv[1:]}\n")
            log.write("".join(traceback.format_exception(exc)))
        logged = f"，详情见 {where} / details in {where}"
    except OSError:
        logged = ""
    print(
        f"内部错误（编号 {ref}）：{type(exc).__name__}，请将编号告知维护人员{logged}\n"
        f"internal error (ref {ref}): {type(exc).__name__}; please report the reference",
        file=ctx.err,
    )
    return 2


#: Errors that carry a message written for the person at the terminal, by module and class name.
#: Checked by name so that a command which never loads the definition loader or the store does
#: not import them just to be able to catch their errors (they can only be raised once loaded).
_USER_ERRORS = (("config.loader", "DefinitionError"), ("store.errors", "StoreError"))


def _database_fault(exc: BaseException) -> str | None:
    """A database fault (unreachable, read-only, disk full, locked) is the operator's to fix: one
    clear line, no traceback. None for anything else (a bug keeps its traceback). Only looked at
    when the store was loaded (a fault can only come from it)."""
    if "store.db" not in sys.modules:
        return None
    from store.faults import StoreUnavailable, classify_fault

    fault = exc.fault if isinstance(exc, StoreUnavailable) else classify_fault(exc)
    return None if fault is None else fault.one_line()


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, CommandError):
        return True
    for module_name, class_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, getattr(module, class_name)):
            return True
    return False


if __name__ == "__main__":
    raise SystemExit(main())
