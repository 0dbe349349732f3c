"""Admin essentials on the command line: tokens, campaigns, imports, overrides.

``jixiao token create --name NAME --role admin|coordinator`` is how the first admin token is made
(the API cannot create tokens without one). The plain token is printed once and never stored.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cli.context import CommandError, Context, transaction


def register(sub: Any) -> None:
    t = sub.add_parser("token", help="API 令牌 / API tokens")
    ts = t.add_subparsers(dest="token_command", required=True)
    c = ts.add_parser("create", help="创建令牌（只显示一次）/ create a token (shown once)")
    c.add_argument("--name", required=True)
    c.add_argument("--role", required=True, choices=("admin", "coordinator"))
    c.add_argument("--project", action="append", default=[], metavar="CODE",
                   help="grant a project (repeat for several); a token sees only its projects")  # fmt: skip
    c.add_argument("--all-projects", action="store_true", help="admin token that sees every project")
    c.set_defaults(handler=token_create)
    g = ts.add_parser("grant", help="设置令牌可访问的项目 / set a token's projects")
    g.add_argument("id", type=int)
    g.add_argument("--project", action="append", default=[], metavar="CODE", required=True)
    g.set_defaults(handler=token_grant)
    ls = ts.add_parser("list", help="列出令牌 / list tokens")
    ls.set_defaults(handler=token_list)
    r = ts.add_parser("revoke", help="吊销令牌 / revoke a token")
    r.add_argument("id", type=int)
    r.set_defaults(handler=token_revoke)

    cp = sub.add_parser("campaign", help="问卷活动 / campaigns")
    cs = cp.add_subparsers(dest="campaign_command", required=True)
    cc = cs.add_parser("create", help="新建活动（草稿）/ create a draft campaign")
    cc.add_argument("code", help="project code")
    cc.add_argument("--name", required=True)
    cc.add_argument("--opens", required=True, help="ISO datetime with offset, e.g. 2026-03-01T09:00+08:00")
    cc.add_argument("--closes", required=True, help="ISO datetime with offset")
    cc.add_argument("--units", help="comma-separated unit keys (default: every active unit)")
    cc.add_argument("--no-confirmations", action="store_true", help="do not ask for payment confirmations")
    cc.set_defaults(handler=campaign_create)
    for name, handler, text in (
        ("launch", campaign_launch, "发起活动 / launch"),
        ("close", campaign_close, "结束活动 / close"),
        ("status", campaign_status, "活动进度 / status per unit"),
    ):
        p = cs.add_parser(name, help=text)
        p.add_argument("id", type=int)
        p.set_defaults(handler=handler)

    ip = sub.add_parser("import", help="批量导入（CSV/XLSX，全部成功或全部不导入）/ bulk import")
    iss = ip.add_subparsers(dest="import_command", required=True)
    for name, text in (("units", "单位 / units"), ("disbursements", "拨付 / disbursements")):
        p = iss.add_parser(name, help=text)
        p.add_argument("code", help="project code")
        p.add_argument("file", type=Path, help=".csv or .xlsx")
        p.add_argument("--dry-run", action="store_true", help="check only, store nothing")
        p.set_defaults(handler=import_file, what=name)

    op = sub.add_parser("override", help="人工评分 / manual indicator scores")
    os_ = op.add_subparsers(dest="override_command", required=True)
    s = os_.add_parser("set", help="设置人工评分（须写明理由）/ set an override")
    s.add_argument("code")
    s.add_argument("key", help="indicator key")
    s.add_argument("score", help="points, e.g. 4.5")
    s.add_argument("--reason", required=True)
    s.add_argument("--by", default="cli")
    s.set_defaults(handler=override_set)
    w = os_.add_parser("clear", help="撤销人工评分 / withdraw an override")
    w.add_argument("code")
    w.add_argument("key")
    w.add_argument("--reason", required=True)
    w.add_argument("--by", default="cli")
    w.set_defaults(handler=override_clear)


# ---------------------------------------------------------------------------- tokens


async def token_create(args: argparse.Namespace, ctx: Context) -> int:
    from store.access import projects_by_codes
    from store.tokens import create_token

    if not args.project and not args.all_projects:
        raise CommandError(
            "请用 --project CODE 指定令牌可访问的项目，或用 --all-projects（仅管理员）\n"
            "name the token's projects with --project CODE, or --all-projects (admin only)"
        )
    async with transaction(await ctx.sessionmaker()) as session:
        projects = await projects_by_codes(session, args.project)
        row, plain = await create_token(
            session, name=args.name, role=args.role, now=ctx.now(),
            projects=[p.id for p in projects if p.id is not None], all_projects=args.all_projects,
        )  # fmt: skip
    scope = "全部项目 all projects" if args.all_projects else ", ".join(p.code for p in projects)
    print(f"已创建令牌 #{row.id} {row.name}（{row.role}; {scope}）/ token created. 请立即保存，之后无法再次查看 / "
          f"save it now, it is not shown again:", file=ctx.out)  # fmt: skip
    print(plain, file=ctx.out)
    return 0


async def token_list(args: argparse.Namespace, ctx: Context) -> int:
    from store.access import granted_codes
    from store.tokens import list_tokens

    async with transaction(await ctx.sessionmaker()) as session:
        rows = await list_tokens(session)
        scopes = {
            t.id: "*" if t.all_projects else (",".join(await granted_codes(session, token_id=t.id)) or "-")
            for t in rows
        }
    if not rows:
        print("没有令牌 / no tokens", file=ctx.out)
    for t in rows:
        state = f"已吊销 revoked {t.revoked_at.isoformat()}" if t.revoked_at else "有效 active"
        used = t.last_used_at.isoformat() if t.last_used_at else "-"
        print(f"{t.id}\t{t.name}\t{t.role}\tprojects {scopes[t.id]}\t{state}\tlast used {used}", file=ctx.out)
    return 0


async def token_grant(args: argparse.Namespace, ctx: Context) -> int:
    from store.access import projects_by_codes, set_grants
    from store.tokens import get_token

    async with transaction(await ctx.sessionmaker()) as session:
        row = await get_token(session, args.id)
        projects = await projects_by_codes(session, args.project)
        await set_grants(
            session, token_id=args.id, project_ids=[p.id for p in projects if p.id], now=ctx.now()
        )
    print(f"令牌 #{row.id} {row.name} 可访问 / may see: {', '.join(p.code for p in projects)}", file=ctx.out)
    return 0


async def token_revoke(args: argparse.Namespace, ctx: Context) -> int:
    from store.tokens import revoke_token

    async with transaction(await ctx.sessionmaker()) as session:
        row = await revoke_token(session, args.id, now=ctx.now())
    print(f"已吊销令牌 #{row.id} {row.name} / token revoked", file=ctx.out)
    return 0


# ---------------------------------------------------------------------------- campaigns


def _when(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{name}：时间格式错误 {text!r}（应为 ISO 8601，如 2026-03-01T09:00+08:00）/ "
                           f"{name}: invalid datetime {text!r}") from None  # fmt: skip
    if value.tzinfo is None:
        raise CommandError(
            f"{name}：时间须带时区，如 +08:00 / {name}: the datetime needs an offset such as +08:00"
        )
    return value


async def campaign_create(args: argparse.Namespace, ctx: Context) -> int:
    from store.campaigns import create_campaign
    from store.projects import get_project
    from store.units import find_unit

    opens, closes = _when(args.opens, "--opens"), _when(args.closes, "--closes")
    async with transaction(await ctx.sessionmaker()) as session:
        project = await get_project(session, args.code)
        assert project.id is not None
        unit_ids = None
        if args.units:
            unit_ids = []
            for key in (k.strip() for k in args.units.split(",") if k.strip()):
                unit = await find_unit(session, project.id, key)
                if unit is None:
                    raise CommandError(f"单位不存在：{key} / no such unit: {key}")
                unit_ids.append(unit.id)
        campaign = await create_campaign(
            session,
            project.id,
            name=args.name,
            opens_at=opens,
            closes_at=closes,
            unit_ids=unit_ids,
            ask_confirmations=not args.no_confirmations,
            now=ctx.now(),
        )
    print(f"已创建活动 #{campaign.id}（草稿）/ campaign {campaign.id} created (draft)", file=ctx.out)
    return 0


async def campaign_launch(args: argparse.Namespace, ctx: Context) -> int:
    from store.campaigns import launch_campaign

    with ctx.working(f"正在发起活动 #{args.id} / launching campaign {args.id} …"):
        async with transaction(await ctx.sessionmaker()) as session:
            result = await launch_campaign(session, args.id, secret=ctx.settings.secret(), now=ctx.now())
    print(f"活动 #{args.id} 已发起：新链接 {result.links_created} 个，待发送邀请 {result.invitations_enqueued} 条 / "
          f"launched: {result.links_created} links, {result.invitations_enqueued} invitations queued", file=ctx.out)  # fmt: skip
    return 0


async def campaign_close(args: argparse.Namespace, ctx: Context) -> int:
    from store.campaigns import close_campaign

    async with transaction(await ctx.sessionmaker()) as session:
        await close_campaign(session, args.id, now=ctx.now())
    print(f"活动 #{args.id} 已结束 / campaign closed", file=ctx.out)
    return 0


async def campaign_status(args: argparse.Namespace, ctx: Context) -> int:
    from store.campaigns import get_campaign, link_status

    async with transaction(await ctx.sessionmaker()) as session:
        campaign = await get_campaign(session, args.id)
        rows = await link_status(session, args.id)
    answered = sum(r.answered_at is not None for r in rows)
    confirmed = sum(r.confirmed_at is not None for r in rows)
    print(f"#{campaign.id} {campaign.name} [{campaign.status}] 链接 links {len(rows)}，已答 answered {answered}，"
          f"已确认 confirmed {confirmed}", file=ctx.out)  # fmt: skip
    for r in rows:
        marks = " ".join(
            f"{label}:{'✓' if value else '-'}"
            for label, value in (
                ("sent", r.sent_at),
                ("opened", r.opened_at),
                ("answered", r.answered_at),
                ("confirmed", r.confirmed_at),
            )  # fmt: skip
        )
        print(f"{r.unit_key}\t{r.unit_name}\t{marks}\treminders {r.reminder_count}", file=ctx.out)
    return 0


# ---------------------------------------------------------------------------- imports


class _DryRun(Exception):
    """Rolls the import's transaction back after it ran (``--dry-run``)."""

    def __init__(self, summary: Any) -> None:
        self.summary = summary


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise CommandError(f"找不到文件 {path} / file not found: {path}")
    return path.read_bytes()


async def import_file(args: argparse.Namespace, ctx: Context) -> int:
    from config.tables import encoding_label
    from store.projects import get_project
    from store.units import ImportRejected, import_disbursements, import_units, read_table

    path: Path = args.file
    data = await asyncio.to_thread(_read_file, path)
    importer = import_units if args.what == "units" else import_disbursements
    try:
        with ctx.working(f"正在检查并导入 {path.name} / importing {path.name} …"):
            table = read_table(data)
            async with transaction(await ctx.sessionmaker()) as session:
                project = await get_project(session, args.code)
                assert project.id is not None
                summary = await importer(session, project.id, table, now=ctx.now())
                if args.dry_run:
                    raise _DryRun(summary)
    except _DryRun as dry:
        summary = dry.summary
    except ImportRejected as exc:
        lines = [f"{exc.zh} / {exc.en}"]
        lines += [f"  {path.name}:{p.row} {p.column}: {p.zh} / {p.en}" if p.row else f"  {p.zh} / {p.en}" for p in exc.problems]  # fmt: skip
        raise CommandError("\n".join(lines)) from None
    verb = "校验通过（未导入）/ checked, nothing stored" if args.dry_run else "已导入 / imported"
    print(f"{verb}: 新增 created {summary.created}，更新 updated {summary.updated}，未变 unchanged {summary.unchanged}", file=ctx.out)  # fmt: skip
    print(f"{path.name}: 编码 encoding {encoding_label(table.encoding)}", file=ctx.out)
    return 0


# ---------------------------------------------------------------------------- overrides


async def _indicator_weight(session: Any, project: Any, key: str) -> Decimal:
    from store.projects import get_definition

    for indicator in (await get_definition(session, project)).indicators:
        if indicator.key == key:
            return indicator.weight
    raise CommandError(f"指标不存在：{key} / no such indicator: {key}")


async def override_set(args: argparse.Namespace, ctx: Context) -> int:
    from store.projects import get_project
    from store.scores import set_override

    try:
        score = Decimal(args.score)
    except InvalidOperation:
        raise CommandError(f"分数 {args.score!r} 不是数字 / score {args.score!r} is not a number") from None
    if not score.is_finite() or score < 0 or score != score.quantize(Decimal("0.01")):
        raise CommandError(
            f"分数 {args.score} 应为不小于0、最多2位小数的数 / score must be ≥ 0 with at most 2 decimals"
        )
    if not args.reason.strip():
        raise CommandError("必须写明理由 / a reason is required")
    async with transaction(await ctx.sessionmaker()) as session:
        project = await get_project(session, args.code)
        weight = await _indicator_weight(session, project, args.key)
        if score > weight:
            raise CommandError(
                f"分数 {score} 超过指标 {args.key} 的分值 {weight} / score exceeds the weight {weight}"
            )
        await set_override(session, project.id, args.key, score=score, reason=args.reason.strip(), by=args.by, now=ctx.now())  # type: ignore[arg-type]  # fmt: skip
    print(f"已设置 {args.key} 人工评分 {score}（下次计算生效）/ override set, applies at the next recompute", file=ctx.out)  # fmt: skip
    return 0


async def override_clear(args: argparse.Namespace, ctx: Context) -> int:
    from store.projects import get_project
    from store.scores import active_overrides, set_override

    if not args.reason.strip():
        raise CommandError("必须写明理由 / a reason is required")
    async with transaction(await ctx.sessionmaker()) as session:
        project = await get_project(session, args.code)
        await _indicator_weight(session, project, args.key)
        if args.key not in await active_overrides(session, project.id):  # type: ignore[arg-type]
            raise CommandError(f"指标 {args.key} 没有生效中的人工评分 / no active override for {args.key}")
        await set_override(session, project.id, args.key, score=None, reason=args.reason.strip(), by=args.by, now=ctx.now())  # type: ignore[arg-type]  # fmt: skip
    print(f"已撤销 {args.key} 的人工评分 / override withdrawn", file=ctx.out)
    return 0
