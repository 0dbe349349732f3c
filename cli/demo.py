"""``jixiao demo``: the whole loop on one machine, in about a minute, on a throw-away database.

1. a fresh temporary data directory (SQLite, its own secret) with the example project loaded;
2. every unit's channel pointed at a local stand-in for the chat apps (``cli.demo_inbox``: a
   receiver of jixiao's signed webhooks), so no invitation fails for want of a vendor account;
3. the service started (``jixiao serve``'s app: pages, API, outbox worker, scheduler);
4. a campaign created and launched — the outbox delivers one invitation per unit;
5. simulated units (``cli.demo_unit``) open their links and answer over ``--seconds``: the
   questionnaire, and each payment confirmed (or now and then disputed), through the real pages;
6. a recompute and a summary run through the scheduler's own fire path, the summary delivered
   to the stand-in group chat;
7. the addresses to look at printed: the console, three personal links still unanswered, the
   signed report, the group chat — then it keeps serving until Ctrl+C (``--exit`` stops).

Every step goes through the same store functions and HTTP paths as real use; the demo only
plays the people.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.context import Context, progress_enabled, transaction

if TYPE_CHECKING:
    from store.db import SessionMaker

PROJECT = "urumqi-ip-2023"
SECRET_ENV = "JIXIAO_DEMO_WEBHOOK_SECRET"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="一分钟看完整流程（临时数据库）/ the whole loop in a minute, on a throw-away database",
    )
    p.add_argument("--seconds", type=float, default=60.0, help="how long simulated answers keep arriving")
    p.add_argument("--share", type=float, default=0.7, help="share of units that answer (0–1, default 0.7)")
    p.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    p.add_argument("--seed", type=int, default=2023, help="random seed of the simulated answers")
    p.add_argument("--exit", action="store_true", help="stop after the loop instead of serving until Ctrl+C")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory afterwards")
    p.set_defaults(handler=demo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Progress:
    """Progress for a person at a terminal (rich bars) or plain lines for logs and pipes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rich: Any = None
        if progress_enabled(ctx.err):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=ctx.err),
            )
            self.rich.start()

    def step(self, text: str) -> None:
        (self.rich.console.print if self.rich else lambda t: print(t, file=self.ctx.err, flush=True))(
            f"• {text}"
        )

    def bar(self, text: str, total: int) -> Callable[[int], None]:
        """A bar for ``total`` items; returns ``update(done)``."""
        if self.rich is not None:
            task = self.rich.add_task(text, total=total)
            return lambda done: self.rich.update(task, completed=done)
        shown = {-1}

        def update(done: int) -> None:
            tenth = done * 10 // max(total, 1)
            if tenth not in shown:
                shown.add(tenth)
                print(f"  {text}: {done}/{total}", file=self.ctx.err, flush=True)

        return update

    def stop(self) -> None:
        if self.rich is not None:
            self.rich.stop()


async def demo(args: argparse.Namespace, ctx: Context) -> int:
    if not 0 < args.share <= 1:
        from cli.context import CommandError

        raise CommandError("--share 应在 0 到 1 之间 / --share must be in (0, 1]")
    data_dir = Path(tempfile.mkdtemp(prefix="jixiao-demo-"))
    progress = Progress(ctx)
    try:
        return await _run(args, ctx, data_dir, progress)
    finally:
        progress.stop()
        await ctx.close()
        if args.keep:
            print(f"数据目录已保留 / data kept in {data_dir}", file=ctx.err)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _run(args: argparse.Namespace, ctx: Context, data_dir: Path, progress: Progress) -> int:
    from aiohttp import web

    from cli.demo_inbox import Inbox
    from cli.entry import restore_normal_gc
    from cli.serve import EXAMPLE, build_app

    port = args.port or _free_port()
    base = f"http://127.0.0.1:{port}"
    ctx.settings = ctx.settings.model_copy(
        update={"data_dir": data_dir, "database_url": None, "public_url": base, "secret_key": None}
    )
    hook_secret = secrets.token_urlsafe(24)
    os.environ[SECRET_ENV] = hook_secret  # how every *_env channel secret reaches the worker
    inbox = Inbox(hook_secret.encode())
    inbox_runner = web.AppRunner(inbox.app())
    await inbox_runner.setup()
    inbox_port = _free_port()
    await web.TCPSite(inbox_runner, "127.0.0.1", inbox_port).start()
    inbox_url = f"http://127.0.0.1:{inbox_port}"

    progress.step(f"临时数据库 / throw-away database in {data_dir}")
    sm = await ctx.sessionmaker()
    n_units = await _load_example(ctx, sm, EXAMPLE, inbox_url)
    progress.step(f"示例项目已导入，{n_units} 个单位的渠道指向本地演示群 / example loaded, {n_units} units")
    password = await _demo_admin(ctx, sm)

    app = build_app(ctx.settings, sm)
    runner = web.AppRunner(app, shutdown_timeout=10)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    restore_normal_gc()  # the demo runs for minutes: the collector as usual (cli.entry)
    progress.step(f"服务已启动 / serving on {base}")
    try:
        campaign_id, links = await _launch(ctx, sm)
        update = progress.bar("邀请送达 invitations delivered", len(links))
        await inbox.wait_for(
            lambda: update(len(inbox.invitations)) or len(inbox.invitations) >= len(links), 60
        )
        update(len(inbox.invitations))

        answered = await _simulate_answers(args, ctx, sm, links, progress)
        schedules = await _schedules(ctx, sm, campaign_id, inbox_url)
        summary = await _recompute_and_summarise(ctx, sm, schedules, inbox)
        progress.step(
            "已重新计算得分并把汇总发到演示群 / recomputed, summary posted to the group"
            if summary
            else "汇总未送达演示群 / the summary did not arrive (see the log above)"
        )
        progress.stop()
        _print_addresses(ctx, base, inbox_url, links, answered, summary, password)
        if not args.exit:
            print("\n按 Ctrl+C 结束演示 / Ctrl+C to stop the demo", file=ctx.out, flush=True)
            await _until_interrupted()
    finally:
        await runner.cleanup()
        await inbox_runner.cleanup()
        os.environ.pop(SECRET_ENV, None)
    return 0


async def _load_example(ctx: Context, sm: SessionMaker, example: Path, inbox_url: str) -> int:
    """Load the example and point each unit at the local stand-in (signed generic webhook)."""
    from config.loader import load_definition
    from store.projects import load_project
    from store.units import list_units, update_unit

    async with transaction(sm) as session:
        result = await load_project(session, load_definition(example), now=ctx.now(), by="demo")
        project_id = result.project.id
        assert project_id is not None
        units = await list_units(session, project_id, active=True)
        for unit in units:
            await update_unit(
                session,
                project_id,
                unit.key,
                {
                    "channel_kind": "webhook",
                    "channel_address": f"{inbox_url}/unit/{unit.key}",
                    "channel_config": {"secret_env": SECRET_ENV},
                },
                now=ctx.now(),
            )
    return len(units)


async def _demo_admin(ctx: Context, sm: SessionMaker) -> str:
    """An admin account ``demo`` for the console, with a fresh random password (printed at the end)."""
    from store.accounts import create_account, hash_password

    password = secrets.token_urlsafe(9)
    hashed = await asyncio.to_thread(hash_password, password)  # argon2id: off the event loop
    async with transaction(sm) as session:
        await create_account(
            session, name="demo", role="admin", password_hash=hashed, all_projects=True, now=ctx.now()
        )
    return password


async def _launch(ctx: Context, sm: SessionMaker) -> tuple[int, dict[str, tuple[str, int]]]:
    """Create and launch a two-week campaign; each unit's personal URL and unit id, by unit key."""
    from bot.links import link_url
    from store.campaigns import create_campaign, get_link, launch_campaign, link_status
    from store.projects import get_project

    now = ctx.now()
    secret = ctx.settings.secret()
    async with transaction(sm) as session:
        project = await get_project(session, PROJECT)
        assert project.id is not None
        campaign = await create_campaign(
            session,
            project.id,
            name="演示：满意度调查与资金确认",
            opens_at=now - timedelta(minutes=1),
            closes_at=now + timedelta(days=14),
            # No quiet hours: the stand-in group chat is on this machine, and a demo started after
            # 22:00 Beijing time would otherwise hold every invitation until 08:00 (0/121 delivered).
            policy={"quiet_hours": None},
            now=now,
        )
        assert campaign.id is not None
        await launch_campaign(
            session, campaign.id, secret=secret, public_url=ctx.settings.public_url, now=now
        )
        links = {}
        for row in await link_status(session, campaign.id):
            link = await get_link(session, row.link_id)
            links[row.unit_key] = (link_url(ctx.settings.public_url, secret, link), row.unit_id)
    return campaign.id, links


async def _simulate_answers(
    args: argparse.Namespace,
    ctx: Context,
    sm: SessionMaker,
    links: dict[str, tuple[str, int]],
    progress: Progress,
) -> set[str]:
    """Units answer at random moments spread over ``--seconds``; the keys of those that did."""
    import aiohttp

    from cli.demo_unit import Payment, answer_link
    from scoring.money import yuan
    from store.projects import get_project
    from store.units import list_disbursements

    rng = random.Random(args.seed)
    keys = sorted(links)
    chosen = sorted(rng.sample(keys, max(1, round(len(keys) * args.share))))
    async with transaction(sm) as session:
        project = await get_project(session, PROJECT)
        rows = await list_disbursements(session, project.id)  # type: ignore[arg-type]
    payments: dict[int, dict[int, Payment]] = {}
    today = ctx.now().astimezone(ctx.settings.tz).date()
    for d, unit in rows:
        received = min(d.paid_on + timedelta(days=2), today)
        payments.setdefault(unit.id, {})[d.id] = Payment(  # type: ignore[index]
            d.id,  # type: ignore[arg-type]
            yuan(d.amount_fen),
            received.isoformat(),
        )
    loop = asyncio.get_running_loop()
    start = loop.time()
    moments = sorted(rng.uniform(0, args.seconds) for _ in chosen)
    update = progress.bar("单位作答 units answering", len(chosen))
    done: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for n, (key, at) in enumerate(zip(chosen, moments, strict=True)):
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            url, unit_id = links[key]
            outcome = await answer_link(http, url, payments.get(unit_id, {}), rng)
            if outcome["answered"]:
                done.add(key)
            update(n + 1)
    return done


async def _schedules(ctx: Context, sm: SessionMaker, campaign_id: int, inbox_url: str) -> dict[str, int]:
    """The schedules an admin would set: recompute, a weekday summary to the group, reminders.

    Minutes avoid :00 and :30 (Feishu asks bots not to post exactly on the hour)."""
    from store.schedules import create_schedule

    group = [{"kind": "webhook", "address": f"{inbox_url}/group", "config": {"secret_env": SECRET_ENV}}]
    specs = {
        "recompute": dict(cron="*/15 * * * *"),
        "summarise": dict(cron="7 9 * * 1-5", params={"endpoints": group}),
        "remind": dict(cron="17 10 * * 1-5", campaign_id=campaign_id),
    }
    out = {}
    async with transaction(sm) as session:
        for kind, spec in specs.items():
            row = await create_schedule(session, kind=kind, project=PROJECT, by="demo", now=ctx.now(), **spec)  # type: ignore[arg-type]
            out[kind] = row.id  # type: ignore[assignment]
    return out


async def _recompute_and_summarise(
    ctx: Context, sm: SessionMaker, schedules: dict[str, int], inbox: Any
) -> Any:
    """Fire recompute and summarise now through the scheduler's claim-and-run path."""
    from scheduler.service import JobDeps, default_runner, execute_fire

    deps = JobDeps(secret=ctx.settings.secret(), public_url=ctx.settings.public_url)
    runner = default_runner(sm, deps)
    for kind in ("recompute", "summarise"):
        _, status = await execute_fire(sm, runner, schedules[kind], ctx.now(), clock=ctx.now, force=True)
        if status != "ok":
            print(f"  {kind}: {status}", file=ctx.err)
    await inbox.wait_for(lambda: bool(inbox.group), 30)
    return inbox.group[-1] if inbox.group else None


def _print_addresses(
    ctx: Context,
    base: str,
    inbox_url: str,
    links: dict[str, tuple[str, int]],
    answered: set[str],
    summary: dict[str, Any] | None,
    password: str,
) -> None:
    out = ctx.out
    if summary:
        print(f"\n{summary.get('title', '')}\n{summary.get('text', '')}", file=out)
    print("\n看一看 / have a look:", file=out)
    print(
        f"  管理控制台 console      {base}/console/  （用户 user demo，密码 password {password}）", file=out
    )
    if summary and summary.get("link"):
        print(f"  完整报告 full report     {summary['link']['url']}", file=out)
    print(f"  演示群聊 group chat      {inbox_url}/", file=out)
    pending = [k for k in sorted(links) if k not in answered][:3]
    for key in pending:
        print(f"  单位链接 unit link {key}: {links[key][0]}", file=out)
    out.flush()


async def _until_interrupted() -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
