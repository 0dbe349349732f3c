"""``jixiao bot chats|connect|disconnect`` and ``jixiao bot telegram set-webhook``.

Connecting a chat to a project is what lets people in that chat ask the bot about the project
(``store.chats``; the API and the console do the same). ``chats`` lists the chats the bot heard
from, with their first message, so the id need not be typed from memory.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.context import CommandError, Context
from config.chat_vendors import HINTS, VENDORS


def register(sub: Any) -> None:
    p = sub.add_parser("bot", help="群聊命令机器人 / chat-command bot")
    s = p.add_subparsers(dest="bot_command", required=True, metavar="ACTION")

    ls = s.add_parser("chats", help="列出群聊 / list chats seen and connected")
    state = ls.add_mutually_exclusive_group()
    state.add_argument("--connected", action="store_true", help="only connected chats")
    state.add_argument("--unconnected", action="store_true", help="only chats waiting to be connected")
    ls.add_argument("--vendor", choices=VENDORS)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=chats_cmd)

    con = s.add_parser("connect", help="连接群聊到项目 / connect a chat to a project")
    con.add_argument("vendor", choices=VENDORS)
    con.add_argument("chat_id", help="the vendor's chat id (see `jixiao bot chats`)")
    con.add_argument("project", help="project code")
    con.add_argument("--by", default="cli", help="who connects it (kept with the connection)")
    con.set_defaults(handler=connect_cmd)

    dis = s.add_parser("disconnect", help="断开群聊 / disconnect a chat")
    dis.add_argument("vendor", choices=VENDORS)
    dis.add_argument("chat_id")
    dis.add_argument("project", nargs="?", help="only from this project (default: from all)")
    dis.set_defaults(handler=disconnect_cmd)

    tg = s.add_parser("telegram", help="Telegram 设置 / Telegram setup")
    tgs = tg.add_subparsers(dest="telegram_command", required=True, metavar="ACTION")
    hook = tgs.add_parser("set-webhook", help="调用 setWebhook / register the webhook with Telegram")
    hook.add_argument("--public-url", help="default: JIXIAO_PUBLIC_URL")
    hook.set_defaults(handler=set_webhook_cmd)


async def chats_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from store.access import EVERYTHING
    from store.chats import list_chats
    from store.db import transaction

    sm = await ctx.sessionmaker()
    connected = True if args.connected else False if args.unconnected else None
    async with transaction(sm) as session:
        # the CLI runs on the server, with the database's own credentials: every chat
        rows = await list_chats(session, grants=EVERYTHING, connected=connected, vendor=args.vendor)
    if args.json:
        print(json.dumps([c.as_dict() for c in rows], ensure_ascii=False, indent=2), file=ctx.out)
        return 0
    if not rows:
        print("还没有群聊 / no chats yet", file=ctx.out)
    for c in rows:
        projects = ",".join(c.projects) or "未连接 / not connected"
        seen = c.last_seen_at.isoformat() if c.last_seen_at else "-"
        print(
            f"{c.vendor:<9}{c.chat_id}  {c.title or '-'}  [{projects}]  {seen}  {c.first_text[:40]}",
            file=ctx.out,
        )
    return 0


async def connect_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from store.chats import connect_chat
    from store.db import transaction

    sm = await ctx.sessionmaker()
    async with transaction(sm) as session:
        chat = await connect_chat(session, args.vendor, args.chat_id, args.project, now=ctx.now(), by=args.by)
    print(f"已连接 / connected: {chat.vendor} {chat.chat_id} → {', '.join(chat.projects)}", file=ctx.out)
    print(HINTS[args.vendor], file=ctx.out)
    return 0


async def disconnect_cmd(args: argparse.Namespace, ctx: Context) -> int:
    from store.chats import disconnect_chat
    from store.db import transaction

    sm = await ctx.sessionmaker()
    async with transaction(sm) as session:
        removed = await disconnect_chat(session, args.vendor, args.chat_id, args.project)
    print(f"已断开 {removed} 个连接 / disconnected {removed}", file=ctx.out)
    return 0


async def set_webhook_cmd(args: argparse.Namespace, ctx: Context) -> int:
    import aiohttp

    from bot.inbound.telegram import set_webhook
    from config.secrets import secret_environment

    env = secret_environment()
    names = ctx.settings.inbound.get("telegram")
    if not names:
        raise CommandError('未配置 Telegram 机器人 / JIXIAO_INBOUND has no "telegram" entry')
    missing = [k for k in ("token_env", "secret_token_env") if not env.get(names.get(k, ""), "")]
    if missing:
        raise CommandError(
            f"环境变量未设置 / environment variables not set: {', '.join(names.get(k, k) for k in missing)}"
        )
    base = ctx.settings.channel_base_urls.get("telegram", "https://api.telegram.org")
    public = args.public_url or ctx.settings.public_url
    async with aiohttp.ClientSession() as session:
        try:
            await set_webhook(
                session,
                token=env[names["token_env"]],
                public_url=public,
                secret_token=env[names["secret_token_env"]],
                base_url=base,
            )
        except (ValueError, aiohttp.ClientError) as exc:
            raise CommandError(f"setWebhook 失败 / failed: {exc}") from exc
    print(f"已设置 / webhook set: {public.rstrip('/')}/bot/telegram (allowed_updates: message)", file=ctx.out)
    return 0
