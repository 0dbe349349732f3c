"""Console accounts on the command line: ``jixiao user create|list|passwd|disable|grant``.

``jixiao user create NAME --role admin --all-projects`` makes the first admin. The password is
never an argument (it would land in the shell history and in ``ps``): it is asked twice on a
terminal, or read from the first line of stdin (``--password-stdin``) for scripts.
Every change is written to the audit log with the actor ``cli:<os user>``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from cli.context import CommandError, Context, transaction


def register(sub: Any) -> None:
    u = sub.add_parser("user", help="控制台账号 / console accounts")
    us = u.add_subparsers(dest="user_command", required=True)
    c = us.add_parser("create", help="创建账号 / create an account")
    c.add_argument("name")
    c.add_argument("--role", required=True, choices=("admin", "coordinator"))
    c.add_argument("--project", action="append", default=[], metavar="CODE", help="grant a project (repeat)")
    c.add_argument("--all-projects", action="store_true", help="see every project (admins)")
    c.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    c.set_defaults(handler=user_create)
    ls = us.add_parser("list", help="列出账号 / list accounts")
    ls.set_defaults(handler=user_list)
    p = us.add_parser("passwd", help="修改密码（并注销其所有会话）/ change a password")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(handler=user_passwd)
    d = us.add_parser("disable", help="停用账号（并注销其所有会话）/ disable an account")
    d.add_argument("name")
    d.set_defaults(handler=user_disable)
    g = us.add_parser("grant", help="设置账号可访问的项目 / set an account's projects")
    g.add_argument("name")
    g.add_argument("--project", action="append", default=[], metavar="CODE", required=True)
    g.set_defaults(handler=user_grant)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment: still say where it came from
        return "cli"


def read_password(args: argparse.Namespace, ctx: Context) -> str:
    from store.accounts import check_password

    if args.password_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass("密码 / password: ")
        again = getpass.getpass("再输入一次 / again: ")
        if password != again:
            raise CommandError("两次输入的密码不一致 / the passwords differ")
    try:
        return check_password(password)
    except Exception as exc:
        raise CommandError(str(exc)) from None


async def user_create(args: argparse.Namespace, ctx: Context) -> int:
    from store.access import projects_by_codes, set_grants
    from store.accounts import check_name, check_role, create_account, hash_password
    from store.audit import record

    name = check_name(args.name)
    check_role(args.role)
    if args.all_projects and args.role != "admin":
        raise CommandError("只有管理员可以访问全部项目 / only admins may see every project (--all-projects)")
    if not args.project and not args.all_projects:
        raise CommandError(
            "请用 --project CODE 指定可访问的项目，或用 --all-projects（管理员）\n"
            "name the account's projects with --project CODE, or --all-projects (admins)"
        )
    password = read_password(args, ctx)
    hashed = await asyncio.to_thread(hash_password, password)
    now = ctx.now()
    async with transaction(await ctx.sessionmaker()) as session:
        projects = await projects_by_codes(session, args.project)
        row = await create_account(
            session, name=name, role=args.role, password_hash=hashed, all_projects=args.all_projects, now=now
        )
        assert row.id is not None
        await set_grants(session, account_id=row.id, project_ids=[p.id for p in projects if p.id], now=now)
        await record(session, actor=_actor(), action="user.create", now=now, object=f"user:{name}",
                     detail={"role": args.role, "projects": [p.code for p in projects], "all_projects": args.all_projects})  # fmt: skip
    scope = "全部项目 all projects" if args.all_projects else ", ".join(p.code for p in projects)
    print(f"已创建账号 {name}（{args.role}; {scope}）/ account created", file=ctx.out)
    return 0


async def user_list(args: argparse.Namespace, ctx: Context) -> int:
    from store.access import granted_codes
    from store.accounts import list_accounts

    async with transaction(await ctx.sessionmaker()) as session:
        rows = await list_accounts(session)
        scopes = {
            a.id: "*" if a.all_projects else (",".join(await granted_codes(session, account_id=a.id)) or "-")
            for a in rows
        }
    if not rows:
        print("没有账号 / no accounts", file=ctx.out)
    for a in rows:
        state = f"已停用 disabled {a.disabled_at.isoformat()}" if a.disabled_at else "有效 active"
        print(f"{a.name}\t{a.role}\tprojects {scopes[a.id]}\t{state}", file=ctx.out)
    return 0


async def user_passwd(args: argparse.Namespace, ctx: Context) -> int:
    from store.accounts import get_account, hash_password, set_password
    from store.audit import record

    async with transaction(await ctx.sessionmaker()) as session:
        await get_account(session, args.name)  # fail before asking for a password
    password = read_password(args, ctx)
    hashed = await asyncio.to_thread(hash_password, password)
    now = ctx.now()
    async with transaction(await ctx.sessionmaker()) as session:
        row = await get_account(session, args.name)
        await set_password(session, row, password_hash=hashed, now=now)
        await record(session, actor=_actor(), action="user.passwd", now=now, object=f"user:{row.name}")
    print(f"已修改 {row.name} 的密码，其会话已全部注销 / password changed, sessions ended", file=ctx.out)
    return 0


async def user_disable(args: argparse.Namespace, ctx: Context) -> int:
    from store.accounts import disable_account, get_account
    from store.audit import record

    now = ctx.now()
    async with transaction(await ctx.sessionmaker()) as session:
        row = await get_account(session, args.name)
        await disable_account(session, row, now=now)
        await record(session, actor=_actor(), action="user.disable", now=now, object=f"user:{row.name}")
    print(f"已停用账号 {row.name} / account disabled", file=ctx.out)
    return 0


async def user_grant(args: argparse.Namespace, ctx: Context) -> int:
    from store.access import projects_by_codes, set_grants
    from store.accounts import get_account
    from store.audit import record

    now = ctx.now()
    async with transaction(await ctx.sessionmaker()) as session:
        row = await get_account(session, args.name)
        projects = await projects_by_codes(session, args.project)
        assert row.id is not None
        await set_grants(session, account_id=row.id, project_ids=[p.id for p in projects if p.id], now=now)
        await record(session, actor=_actor(), action="user.grant", now=now, object=f"user:{row.name}",
                     detail={"projects": [p.code for p in projects]})  # fmt: skip
    print(f"{row.name} 可访问 / may see: {', '.join(p.code for p in projects)}", file=ctx.out)
    return 0
