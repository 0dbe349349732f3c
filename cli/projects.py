"""``jixiao project validate|load|list``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli.context import Context, transaction


def register(sub: Any) -> None:
    p = sub.add_parser("project", help="项目定义：校验、导入、列表 / project definitions")
    ps = p.add_subparsers(dest="project_command", required=True)
    v = ps.add_parser("validate", help="校验项目定义文件（报告全部问题）/ validate a definition")
    v.add_argument("path", type=Path, help="project directory or .toml file")
    v.set_defaults(handler=validate)
    ld = ps.add_parser("load", help="导入或更新项目（同一编码生成新版本）/ load a definition")
    ld.add_argument("path", type=Path)
    ld.add_argument("--by", default="cli", help="who loads it (recorded)")
    ld.add_argument(
        "--dry-run",
        action="store_true",
        help="只显示将要做的改动，不保存 / show what would change, store nothing",
    )
    ld.set_defaults(handler=load)
    ls = ps.add_parser("list", help="列出项目 / list projects")
    ls.set_defaults(handler=list_)


async def validate(args: argparse.Namespace, ctx: Context) -> int:
    from config.loader import load_definition
    from config.narrative import load_narrative

    encodings: dict[str, str] = {}
    defn = load_definition(args.path, encodings=encodings)
    narrative = load_narrative(args.path, indicator_keys=[i.key for i in defn.indicators])
    if narrative is not None:
        print(f"✓ narrative.toml：{len(narrative.indicators)} 个指标说明 / narrative valid", file=ctx.out)
    print(
        f"✓ {defn.project.code} {defn.project.name}: {len(defn.indicators)} 个指标, {len(defn.units)} 个单位, "
        f"{len(defn.disbursements)} 笔拨付 — 校验通过 / valid",
        file=ctx.out,
    )
    _print_encodings(encodings, ctx)
    return 0


def _print_encodings(encodings: dict[str, str], ctx: Context) -> None:
    """One line naming each file read and the encoding found (so a GBK file is no surprise)."""
    if encodings:
        files = "，".join(f"{name} {label}" for name, label in encodings.items())
        print(f"编码 / encodings: {files}", file=ctx.out)


async def load(args: argparse.Namespace, ctx: Context) -> int:
    from config.loader import load_definition
    from config.narrative import load_narrative
    from store.narrative import save_narrative
    from store.projects import load_project

    encodings: dict[str, str] = {}
    defn = load_definition(args.path, encodings=encodings)
    # The narrative beside the definition is checked before anything is stored, and saved in the
    # same transaction: a bad narrative.toml leaves the project as it was (and a dry run stores
    # neither).
    narrative = load_narrative(args.path, indicator_keys=[i.key for i in defn.indicators])
    narrative_revision: int | None = None
    try:
        async with transaction(await ctx.sessionmaker()) as session:
            result = await load_project(session, defn, now=ctx.now(), by=args.by)
            if narrative is not None:
                record, changed = await save_narrative(
                    session, result.project, narrative, now=ctx.now(), by=args.by
                )
                narrative_revision = record.revision if changed else None
            if args.dry_run:
                raise _DryRun(result)
    except _DryRun as dry:
        result = dry.result
    _print_encodings(encodings, ctx)
    for change in result.unit_changes:
        print(change.describe(), file=ctx.out)
    if args.dry_run:
        print(
            f"试运行：以上改动未保存（将为第 {result.version} 版）/ dry run: nothing stored"
            if result.created_version
            else f"{result.code} 第 {result.version} 版内容相同 / unchanged (dry run)",
            file=ctx.out,
        )
        return 0
    if result.created_version:
        print(
            f"已导入 {result.code} 第 {result.version} 版 / loaded version {result.version}: "
            f"单位 +{result.units_added} ~{result.units_updated} -{result.units_deactivated}, "
            f"拨付 {result.disbursements}, 导入问卷 {result.responses_imported}",
            file=ctx.out,
        )
    else:
        print(f"{result.code} 第 {result.version} 版内容相同，未改动 / unchanged", file=ctx.out)
    if narrative_revision is not None:
        print(
            f"说明文本 narrative.toml 已保存为第 {narrative_revision} 稿 / narrative revision {narrative_revision}",
            file=ctx.out,
        )
    for note in result.notes:
        print(note, file=ctx.out)
    return 0


class _DryRun(Exception):
    """Raised inside the transaction so that a dry run's load is rolled back."""

    def __init__(self, result: Any) -> None:
        self.result = result


async def list_(args: argparse.Namespace, ctx: Context) -> int:
    projects: list[Any]
    reader = ctx.lite_reader()
    if reader is not None:  # SQLite, up to date: no ORM needed (same statement)
        try:
            projects = reader.projects()
        finally:
            reader.close()
    else:
        from store.projects import list_projects

        async with transaction(await ctx.sessionmaker()) as session:
            projects = await list_projects(session)
    for p in projects:
        print(f"{p.code}\tv{p.current_version}\t{p.year}\t{p.name}", file=ctx.out)
    return 0
