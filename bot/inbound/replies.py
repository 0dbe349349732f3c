"""What the bot answers to each chat command: a platform-neutral ``Message`` built from the same
data and helpers as the scheduled summaries (``bot.summary``), rendered per platform by the
channel adapters exactly like a summary.

A reply never carries a secret or a personal link: the only link is the signed, expiring report
link that the summaries also carry (it opens the project's report, not any unit's page).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.channels.message import Block, Bullets, Link, Message, Table, Text
from bot.inbound.commands import COMMANDS, help_lines
from bot.report import yuan
from bot.summary import (
    Names,
    SummaryData,
    changes,
    deviations,
    gather_summary,
    report_token_url,
    table_rows,
)
from scoring.report import HEADERS, pct
from store.chats import last_summary_snapshot_id
from store.db import SessionMaker
from store.models import Project

#: Names shown before "等（另 N 家）" in 未填/未确认 replies.
FIRST_N = 10
#: Days a report link in a reply stays valid (the summaries' default too).
REPORT_DAYS = 14


def _names(group: Names) -> str:
    shown = "、".join(group.names)
    more = group.count - len(group.names)
    return shown + (f" 等（另 {more} 家）" if more > 0 else "")


def unconnected_message(vendor: str, chat_id: str) -> Message:
    """The one line an unconnected chat gets: what is wrong and how an admin fixes it."""
    return Message(
        title="本群尚未连接绩效项目",
        blocks=(
            Text(
                "本群尚未连接任何绩效评价项目：请管理员在控制台“群聊”中选择本群连接项目，"
                f"或运行 jixiao bot connect {vendor} {chat_id} <项目代码>。"
                " / This chat is not connected to a project: an admin connects it in the console "
                "or with `jixiao bot connect`."
            ),
        ),
    )


def help_message(projects: list[Project], *, unknown: str = "") -> Message:
    """The commands, and which projects this chat is connected to."""
    blocks: list[Block] = []
    if unknown:
        blocks.append(Text(f"未识别的命令：{unknown}"))
    blocks.append(Text("可用命令（在群里 @机器人 后输入，或直接发送斜杠命令）："))
    blocks.append(Bullets(help_lines()))
    connected = "、".join(f"{p.name}（{p.code}）" for p in projects) or "无"
    blocks.append(Text(f"本群连接的项目：{connected}"))
    return Message(title="绩效机器人帮助", blocks=tuple(blocks))


def _no_snapshot(project: Project) -> list[Block]:
    return [Text(f"项目：{project.name}（{project.code}）\n尚未计算得分（还没有评分快照）。")]


def _score_blocks(data: SummaryData, computed_at: str) -> list[Block]:
    snap = data.snapshot
    blocks: list[Block] = [
        Text(
            f"项目：{data.project_name}（{data.project_code}）\n"
            f"总分 {snap.get('total')}，等级 {snap.get('grade')}（评分时间 {computed_at}）"
        ),
        Table(HEADERS, table_rows(snap.get("indicators", []))),
    ]
    if data.previous is None:
        blocks.append(Text("较上次汇总的变化：尚无已发送的汇总"))
    else:
        moved = changes(snap, data.previous)
        blocks.append(Text("较上次汇总的变化：" + ("无" if not moved else "")))
        if moved:
            blocks.append(Bullets(moved))
    return blocks


def _pending_blocks(data: SummaryData) -> list[Block]:
    rate = pct(Decimal(data.answered) / Decimal(data.invited)) if data.invited else "—"
    lines = [f"问卷回收率 {rate}（已答 {data.answered} / 已邀请 {data.invited}）"]
    if data.not_answered.count:
        lines.append(f"未答单位 {data.not_answered.count} 家：{_names(data.not_answered)}")
    elif data.invited:
        lines.append("所有已邀请单位均已作答")
    else:
        lines.append("尚未向任何单位发出问卷")
    return [Text(f"项目：{data.project_name}（{data.project_code}）"), Bullets(lines)]


def _unconfirmed_blocks(data: SummaryData) -> list[Block]:
    lines = []
    if data.unconfirmed.count:
        lines.append(
            f"未确认拨付 {data.unconfirmed.count} 笔，{yuan(data.unconfirmed.fen)}：{_names(data.unconfirmed)}"
        )
    else:
        lines.append("没有未确认的拨付")
    if data.disputed.count:
        lines.append(
            f"有异议拨付 {data.disputed.count} 笔，{yuan(data.disputed.fen)}：{_names(data.disputed)}"
        )
    else:
        lines.append("没有有异议的拨付")
    warnings = deviations(data)
    warnings += [w["message"] if isinstance(w, dict) else str(w) for w in data.snapshot.get("warnings", [])]
    blocks: list[Block] = [Text(f"项目：{data.project_name}（{data.project_code}）"), Bullets(lines)]
    if warnings:
        blocks.append(Text("偏差与预警："))
        blocks.append(Bullets([f"⚠ {w}" for w in warnings]))
    return blocks


async def build_reply(
    sm: SessionMaker,
    command: str,
    projects: list[Project],
    *,
    now: datetime,
    public_url: str,
    secret: bytes,
) -> Message:
    """The reply to ``command`` (a key of ``COMMANDS``) for a chat connected to ``projects``."""
    if command == "help" or not projects:
        return help_message(projects)
    zh = COMMANDS[command][0]
    blocks: list[Block] = []
    links: list[tuple[str, str]] = []
    for project in projects:
        assert project.id is not None
        tz = ZoneInfo(project.timezone)
        if command == "report":
            url = report_token_url(public_url, secret, project.code, now=now, days=REPORT_DAYS)
            until = (now + timedelta(days=REPORT_DAYS)).astimezone(tz).strftime("%Y-%m-%d %H:%M")
            links.append((project.name, url))
            blocks.append(
                Text(
                    f"项目：{project.name}（{project.code}）\n完整报告：{url}\n"
                    f"指标得分表（XLSX）：{url}/table.xlsx\n有效期至 {until}（{project.timezone}）"
                )
            )
            continue
        async with sm() as session:
            previous_id = await last_summary_snapshot_id(session, project.id)
        try:
            data, snap = await gather_summary(
                sm,
                project.code,
                schedule_id=None,
                fire_time=now,
                now=now,
                report_url=None,
                first_n=FIRST_N,
                previous_snapshot_id=previous_id,
                require_snapshot=command == "score",
            )
        except LookupError:
            blocks.extend(_no_snapshot(project))
            continue
        if command == "score":
            computed = snap.computed_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if snap.computed_at else "—"
            blocks.extend(_score_blocks(data, f"{computed} {project.timezone}"))
        elif command == "pending":
            blocks.extend(_pending_blocks(data))
        else:
            blocks.extend(_unconfirmed_blocks(data))
    when = now.astimezone(ZoneInfo(projects[0].timezone)).strftime("%Y-%m-%d %H:%M")
    link = Link(links[0][1], "打开完整报告") if len(links) == 1 else None
    return Message(title=f"{zh}（{when} {projects[0].timezone}）", blocks=tuple(blocks), link=link)
