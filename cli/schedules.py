"""``jixiao schedule list|add|set|pause|resume|remove|run-now|runs``.

Schedules are rows in the database; a running ``jixiao serve`` notices every change within a
few seconds (it polls the table), so nothing needs a restart. ``run-now`` runs the job in this
process and prints its result (the claim row still guarantees it runs once).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.context import CommandError, Context, transaction

#: Schedule kinds (the store validates them again; kept here so building the parser imports no
#: database code). tests/cli/test_cli_startup.py checks it equals ``store.schedules.KINDS``.
KINDS: tuple[str, ...] = ("launch", "remind", "close", "recompute", "summarise")


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"不是有效的 JSON / not valid JSON: {exc}") from exc


def register(sub: Any) -> None:
    p = sub.add_parser("schedule", help="定时计划 / schedules")
    s = p.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")

    ls = s.add_parser("list", help="列出计划 / list schedules")
    ls.add_argument("--project", help="only this project code")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=list_cmd)

    add = s.add_parser("add", help="新增计划 / add a schedule")
    add.add_argument("kind", choices=KINDS)
    add.add_argument("project", help="project code")
    add.add_argument("cron", help='5-field cron, e.g. "0 9 * * 1-5" (quote it)')
    add.add_argument("--campaign", type=int, help="campaign id (launch/remind/close)")
    add.add_argument("--timezone", help="IANA timezone (default: the project's)")
    add.add_argument(
        "--grace", type=int, default=3600, help="seconds a missed fire may still run (default 3600)"
    )
    add.add_argument(
        "--params", type=_json_arg, help='JSON, e.g. \'{"endpoints": [{"kind": "wecom", "address": "g1"}]}\''
    )
    add.add_argument("--paused", action="store_true", help="create it paused")
    add.add_argument("--by", default="cli", help="who is making the change (audit log)")
    add.set_defaults(handler=add_cmd)

    st = s.add_parser("set", help="修改计划 / change a schedule")
    st.add_argument("id", type=int)
    st.add_argument("--cron")
    st.add_argument("--timezone")
    st.add_argument("--grace", type=int)
    st.add_argument("--campaign", type=int)
    st.add_argument("--params", type=_json_arg)
    st.add_argument("--by", default="cli")
    st.set_defaults(handler=set_cmd)

    for name, handler, zh in (
        ("pause", pause_cmd, "暂停"),
        ("resume", resume_cmd, "恢复"),
        ("remove", remove_cmd, "删除"),
    ):
        c = s.add_parser(name, help=f"{zh}计划 / {name} a schedule")
        c.add_argument("id", type=int)
        c.add_argument("--by", default="cli")
        c.set_defaults(handler=handler)

    rn = s.add_parser("run-now", help="立即执行一次 / run once now, in this process")
    rn.add_argument("id", type=int)
    rn.set_defaults(handler=run_now_cmd)

    runs = s.add_parser("runs", help="执行记录 / recent runs")
    runs.add_argument("id", type=int)
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(handler=runs_cmd)


def _print(ctx: Context, data: dict[str, Any]) -> None:
    nxt = ", ".join(t[5:16].replace("T", " ") for t in data["next_fire_times"]) or "（已暂停 paused）"
    state = "启用" if data["enabled"] else "暂停"
    campaign = f" campaign={data['campaign_id']}" if data["campaign_id"] else ""
    print(
        f"#{data['id']} {data['kind']:<9} {data['project']}{campaign}  “{data['cron']}” {data['timezone']}  "
        f"{state}  grace={data['grace_seconds']}s  next: {nxt}",
        file=ctx.out,
    )


def _kinds() -> tuple[str, ...]:
    from bot.channels.registry import KINDS as CHANNEL_KINDS

    return CHANNEL_KINDS


async def list_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from store.schedule_view import schedule_json

    rows: list[tuple[Any, str]]
    reader = ctx.lite_reader()
    if reader is not None:  # SQLite, up to date: no ORM needed (same statement)
        try:
            rows = list(reader.schedules(project=args.project))
        finally:
            reader.close()
    else:
        from store.schedules import list_schedules

        sm = await ctx.sessionmaker()
        async with sm() as session, session.begin():
            rows = list(await list_schedules(session, project=args.project))
    items = [schedule_json(s, code, now=ctx.now()) for s, code in rows]
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2), file=ctx.out)
    elif not items:
        print("没有计划 / no schedules", file=ctx.out)
    for item in [] if args.json else items:
        _print(ctx, item)
    return 0


async def _show(ctx: Context, schedule: Any) -> None:
    from store.schedules import project_code, schedule_json

    sm = await ctx.sessionmaker()
    async with sm() as session, session.begin():
        code = await project_code(session, schedule)
    _print(ctx, schedule_json(schedule, code, now=ctx.now()))


async def add_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from store.schedules import create_schedule

    sm = await ctx.sessionmaker()
    async with transaction(sm) as session:
        row = await create_schedule(
            session,
            kind=args.kind,
            project=args.project,
            cron=args.cron,
            campaign_id=args.campaign,
            timezone=args.timezone,
            enabled=not args.paused,
            grace_seconds=args.grace,
            params=args.params,
            by=args.by,
            now=ctx.now(),
            known_kinds=_kinds(),
        )
    await _show(ctx, row)
    return 0


async def set_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from store.schedules import update_schedule

    changes: dict[str, Any] = {}
    for attr, key in (("cron", "cron"), ("timezone", "timezone"), ("grace", "grace_seconds"), ("campaign", "campaign_id"), ("params", "params")):  # fmt: skip
        if getattr(args, attr) is not None:
            changes[key] = getattr(args, attr)
    if not changes:
        raise CommandError(
            "没有要修改的内容 / nothing to change (give --cron, --timezone, --grace, --campaign or --params)"
        )
    sm = await ctx.sessionmaker()
    async with transaction(sm) as session:
        row = await update_schedule(
            session, args.id, changes=changes, by=args.by, now=ctx.now(), known_kinds=_kinds()
        )
    await _show(ctx, row)
    return 0


async def _toggle(args: argparse.Namespace, ctx: Context, enabled: bool) -> int:
    from store.schedules import set_enabled

    sm = await ctx.sessionmaker()
    async with transaction(sm) as session:
        row = await set_enabled(session, args.id, enabled, by=args.by, now=ctx.now())
    await _show(ctx, row)
    return 0


async def pause_cmd(args: argparse.Namespace, ctx: Context) -> int:
    return await _toggle(args, ctx, False)


async def resume_cmd(args: argparse.Namespace, ctx: Context) -> int:
    return await _toggle(args, ctx, True)


async def remove_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from store.schedules import remove_schedule

    sm = await ctx.sessionmaker()
    async with transaction(sm) as session:
        await remove_schedule(session, args.id, by=args.by, now=ctx.now())
    print(f"已删除计划 #{args.id} / removed", file=ctx.out)
    return 0


async def run_now_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from scheduler.service import JobDeps, default_runner, execute_fire
    from store.errors import StoreError
    from store.schedules import list_runs, run_json

    sm = await ctx.sessionmaker()
    deps = JobDeps(secret=ctx.settings.secret(), public_url=ctx.settings.public_url)
    run_id, status = await execute_fire(
        sm, default_runner(sm, deps), args.id, ctx.now(), clock=ctx.now, force=True
    )
    if status == "skipped":
        raise StoreError(f"计划不存在：{args.id}", f"no such schedule: {args.id}", where="schedule")
    async with sm() as session, session.begin():
        runs = [r for r in await list_runs(session, args.id, limit=20) if r.id == run_id]
    data = run_json(runs[0]) if runs else {"id": run_id, "status": status}
    print(json.dumps(data, ensure_ascii=False, indent=2), file=ctx.out)
    return 0 if data.get("status") == "ok" else 1


async def runs_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from store.schedules import list_runs

    sm = await ctx.sessionmaker()
    async with sm() as session, session.begin():
        runs = await list_runs(session, args.id, limit=args.limit)
    for r in runs:
        err = f"  {r.error.splitlines()[0][:120]}" if r.error else ""
        print(f"{r.fire_time.isoformat()}  {r.status:<9}{err}", file=ctx.out)
    if not runs:
        print("没有执行记录 / no runs", file=ctx.out)
    return 0
