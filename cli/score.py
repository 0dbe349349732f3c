"""``jixiao score CODE [--format table|markdown|json|xlsx] [--output FILE]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cli.context import CommandError, Context


def register(sub: Any) -> None:
    p = sub.add_parser("score", help="按已存数据计算并输出评分表 / compute and print the score table")
    p.add_argument("code", help="project code")
    p.add_argument("--format", choices=("table", "markdown", "json", "xlsx"), default="table")
    p.add_argument("--output", "-o", type=Path, help="write to this file (required for xlsx)")
    p.set_defaults(handler=score)


async def score(args: argparse.Namespace, ctx: Context) -> int:
    if args.format == "xlsx" and args.output is None:
        raise CommandError("xlsx 格式需要 --output 文件名 / --format xlsx needs --output FILE")
    from scoring.report import markdown_table, text_table, xlsx_bytes

    computed = await _compute_and_keep(args.code, ctx)
    title = f"{computed.project.name}（{computed.project.year}）绩效评价评分表"
    if args.format == "xlsx":
        args.output.write_bytes(xlsx_bytes(computed.table, title))
        print(f"已写入 {args.output} / written", file=ctx.out)
        return 0
    if args.format == "json":
        text = json.dumps(computed.document, ensure_ascii=False, indent=2)
    elif args.format == "markdown":
        text = markdown_table(computed.table, title)
    else:
        text = text_table(computed.table, title)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        print(text, file=ctx.out)
    return 0


async def _compute_and_keep(code: str, ctx: Context) -> Any:
    """The table of ``code``, kept as a snapshot (trigger ``cli``) when it differs from the
    latest one — :func:`scheduler.recompute.recompute`'s contract.

    On an up-to-date SQLite file the inputs are read with the stdlib ``sqlite3`` and scored
    without importing SQLAlchemy or the table classes (most of the command's time,
    bench/README.md "CLI start-up"), and a changed table is kept with the same rule and INSERT
    statement as the ORM's (:func:`store.lite.keep_snapshot_sqlite`). Otherwise (PostgreSQL, a
    schema to migrate, no file yet) the ORM recompute runs."""
    reader = ctx.lite_reader()
    if reader is None:
        from scheduler.recompute import recompute

        return (await recompute(await ctx.sessionmaker(), code, now=ctx.now(), trigger="cli")).computed
    from scheduler.computed import compute_on_sqlite
    from store.lite import keep_snapshot_sqlite, keeps_snapshot, sqlite_snapshot_values

    try:
        computed, latest = compute_on_sqlite(reader, code)
    finally:
        reader.close()
    if keeps_snapshot(latest, computed.fingerprint):
        values = sqlite_snapshot_values(
            project_id=computed.project.id,
            definition_version=computed.version,
            computed_at=ctx.now(),
            total=computed.table.total,
            grade=computed.table.grade,
            fingerprint=computed.fingerprint,
            trigger="cli",
            table=computed.document,
        )
        keep_snapshot_sqlite(ctx.db_url, values, synchronous=ctx.settings.sqlite_synchronous)
    return computed
