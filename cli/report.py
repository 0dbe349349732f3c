"""``jixiao report CODE zipingbiao|baogao --format xlsx|docx [-o FILE]``: the deliverables.

Scores the project first (as ``jixiao score`` does, saving a snapshot when something changed),
then renders the document from that stored result, so the file shows exactly the numbers the
summaries and the report page show.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from cli.context import CommandError, Context, transaction

KINDS = ("zipingbiao", "baogao")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="生成自评表（附件1）或评价报告（附件3）/ render the 自评表 or the 评价报告",
        description="zipingbiao: 项目支出绩效自评表 (xlsx|docx); baogao: 绩效评价报告 (docx)",
    )
    p.add_argument("code", help="project code")
    p.add_argument("kind", choices=KINDS, help="zipingbiao（自评表）| baogao（评价报告）")
    p.add_argument("--format", choices=("xlsx", "docx"), default="docx")
    p.add_argument("--output", "-o", type=Path, help="file to write (default: CODE-YEAR-KIND.FORMAT here)")
    p.set_defaults(handler=report)


async def report(args: argparse.Namespace, ctx: Context) -> int:
    # imported here: building the parser must stay light (tests/cli/test_cli_startup.py)
    from bot.documents import DOCUMENTS, document, load_document_data
    from scheduler.recompute import recompute

    doc = document(args.kind, args.format)
    if doc is None:
        formats = sorted(d.format for d in DOCUMENTS.values() if d.kind == args.kind)
        raise CommandError(
            f"{args.kind} 没有 {args.format} 格式（可用：{'、'.join(formats)}）/ "
            f"{args.kind} is not available as {args.format} (use {', '.join(formats)})"
        )
    sessionmaker = await ctx.sessionmaker()
    await recompute(sessionmaker, args.code, now=ctx.now(), trigger="cli")
    async with transaction(sessionmaker) as session:
        data = await load_document_data(session, args.code)
    body = await asyncio.to_thread(doc.render, data)
    path = args.output or Path(doc.filename(args.code, data.year))
    path.write_bytes(body)
    print(f"已写入 {path}（{doc.title}，总分 {data.table.total}，{data.table.grade}）/ written", file=ctx.out)
    return 0
