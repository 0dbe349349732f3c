"""``jixiao db``: schema upgrades and backups.

- ``jixiao db upgrade`` brings the schema to the latest migration.
- ``jixiao db backup [PATH]`` copies the database while the service keeps running. SQLite: the
  online backup API (a consistent snapshot even with writers active; WAL content included), then
  an integrity check of the copy. PostgreSQL: ``pg_dump --format=custom`` when it is installed
  (restore with ``pg_restore --clean --dbname …``), otherwise the command is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.context import CommandError, Context


def register(sub: Any) -> None:
    p = sub.add_parser("db", help="数据库迁移与备份 / database schema and backups")
    ps = p.add_subparsers(dest="db_command", required=True)
    up = ps.add_parser("upgrade", help="升级到最新结构 / migrate to head")
    up.set_defaults(handler=upgrade)
    bk = ps.add_parser(
        "backup",
        help="在线备份 / online backup (SQLite backup API; PostgreSQL pg_dump)",
        description="Copy the database while the service runs. Default PATH: "
        "<data dir>/backups/jixiao-<UTC time>.db (SQLite) or .dump (PostgreSQL).",
    )
    bk.add_argument("path", nargs="?", help="where to write the backup (must not exist)")
    bk.add_argument(
        "--print-command",
        action="store_true",
        help="PostgreSQL: only print the pg_dump command / 只打印 pg_dump 命令",
    )
    bk.set_defaults(handler=backup)


async def upgrade(args: argparse.Namespace, ctx: Context) -> int:
    await ctx.sessionmaker()  # migrates on first use
    print("数据库已是最新结构 / schema is at head", file=ctx.out)
    return 0


def _default_path(ctx: Context, suffix: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return ctx.settings.data_dir / "backups" / f"jixiao-{stamp}{suffix}"


async def backup(args: argparse.Namespace, ctx: Context) -> int:
    from store.faults import sqlite_path

    url = ctx.settings.db_url
    source = sqlite_path(url)
    if source is None and url.startswith("sqlite"):
        raise CommandError("内存数据库无法备份 / an in-memory database cannot be backed up")
    if source is not None:
        target = Path(args.path) if args.path else _default_path(ctx, ".db")
        _check_target(target)
        pages = await asyncio.to_thread(backup_sqlite, source, target)
        print(
            f"已备份 / backed up: {source} → {target} ({target.stat().st_size:,} bytes, {pages} pages, "
            "integrity ok)",
            file=ctx.out,
        )
        return 0
    target = Path(args.path) if args.path else _default_path(ctx, ".dump")
    command, env = pg_dump_command(url, target)
    shown = " ".join(shlex.quote(c) for c in command)
    if args.print_command or shutil.which(command[0]) is None:
        why = "" if args.print_command else "（未找到 pg_dump / pg_dump not found on PATH）"
        print(f"# {why}PGPASSWORD 通过环境变量传入 / pass the password in PGPASSWORD", file=ctx.out)
        print(shown, file=ctx.out)
        return 0
    _check_target(target)
    done = await asyncio.to_thread(
        subprocess.run, command, env={**os.environ, **env}, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise CommandError(f"pg_dump 失败 / pg_dump failed: {done.stderr.strip()[:500]}")
    target.chmod(0o600)
    print(f"已备份 / backed up with pg_dump: {target} ({target.stat().st_size:,} bytes)", file=ctx.out)
    return 0


def _check_target(target: Path) -> None:
    if target.exists():
        raise CommandError(f"备份文件已存在 / backup file already exists: {target}")
    target.parent.mkdir(parents=True, exist_ok=True)


def backup_sqlite(source: Path, target: Path) -> int:
    """Online copy of ``source`` into a new file ``target`` (mode 0600) with sqlite3's backup API,
    then ``PRAGMA integrity_check`` on the copy. Returns the page count. Runs in a thread."""
    if not source.exists():
        raise CommandError(f"数据库不存在 / database not found: {source}")
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=1024)  # steps of 1,024 pages: writers are not blocked for long
        dst.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
    finally:
        dst.close()
        src.close()
    if check != "ok":
        raise CommandError(f"备份校验失败 / backup integrity check failed: {check}")
    return pages


def pg_dump_command(url: str, target: Path) -> tuple[list[str], dict[str, str]]:
    """The ``pg_dump`` argv for ``url`` (custom format into ``target``) and the environment it
    needs (the password goes in ``PGPASSWORD``, never on the command line)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    command = ["pg_dump", "--format=custom", "--no-owner", f"--file={target}"]
    if u.host:
        command.append(f"--host={u.host}")
    if u.port:
        command.append(f"--port={u.port}")
    if u.username:
        command.append(f"--username={u.username}")
    command.append(f"--dbname={u.database}")
    env = {"PGPASSWORD": u.password} if u.password else {}
    return command, env
