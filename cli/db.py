"""``jixiao db upgrade``: bring the schema to the latest migration."""

from __future__ import annotations

import argparse
from typing import Any

from cli.context import Context


def register(sub: Any) -> None:
    p = sub.add_parser("db", help="数据库迁移 / database schema")
    ps = p.add_subparsers(dest="db_command", required=True)
    up = ps.add_parser("upgrade", help="升级到最新结构 / migrate to head")
    up.set_defaults(handler=upgrade)


async def upgrade(args: argparse.Namespace, ctx: Context) -> int:
    await ctx.sessionmaker()  # migrates on first use
    print("数据库已是最新结构 / schema is at head", file=ctx.out)
    return 0
