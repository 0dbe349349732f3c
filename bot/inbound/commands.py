"""Chat commands: what a coordinator typed → which command (pure, no I/O).

Accepted forms (reference: in groups most vendors only deliver messages that @-mention the bot or
are slash commands, so a bare "得分" rarely arrives): ``/score``, ``/score@jixiao_bot``,
``@jixiao 得分``, ``@jixiao /score``, ``<@U123> 得分`` (Slack), ``@_user_1 得分`` (Feishu's mention
key), full-width forms (``／score``, ``＠机器人　得分``). Mentions are removed first, then the first
word is the command; Chinese and English names are equivalent. A slash command addressed to
another bot (``/score@other_bot``) is not ours. An addressed message that is not a known command
gets the help; an unaddressed message that is not a known command word is ignored (a chat with
privacy mode off sends the bot everything).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

#: Command → (Chinese name, English name, what the reply holds). Order is the help's order.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "score": ("得分", "/score", "总分、等级、指标得分表，以及较上次汇总的变化"),
    "pending": ("未填", "/pending", "问卷回收率和尚未填写的单位"),
    "unconfirmed": ("未确认", "/unconfirmed", "未确认和有异议的拨付（元）以及偏差预警"),
    "report": ("报告", "/report", "完整报告与表格的签名链接（有效期内可用）"),
    "help": ("帮助", "/help", "命令说明，以及本群连接的项目"),
}

#: Every spelling of each command (compared after NFKC and lower-casing).
ALIASES: dict[str, str] = {
    "score": "score",
    "得分": "score",
    "分数": "score",
    "评分": "score",
    "pending": "pending",
    "未填": "pending",
    "未答": "pending",
    "未填写": "pending",
    "unconfirmed": "unconfirmed",
    "未确认": "unconfirmed",
    "report": "report",
    "报告": "report",
    "help": "help",
    "帮助": "help",
    "start": "help",  # Telegram sends /start when a user first opens the bot
    "?": "help",
    "？": "help",
}

#: Mention tokens: Slack ``<@U123>``/``<@U123|name>``, and ``@word`` (Telegram, WeCom, Feishu's
#: ``@_user_1`` keys, DingTalk). A mention is a whole word starting with @.
_SLACK_MENTION = re.compile(r"<@[^>\s]*>")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Command:
    """A parsed command. ``name`` is a key of :data:`COMMANDS`; ``unknown`` holds what was typed
    when it was not a command (``name`` is then ``help``)."""

    name: str
    unknown: str = ""


def normalise(text: str) -> str:
    """NFKC (full-width ／＠？ and ideographic spaces become ASCII), control characters removed."""
    text = unicodedata.normalize("NFKC", text or "")
    return "".join(ch if ch.isprintable() or ch in " \t\n" else " " for ch in text)


def parse(text: str, *, bot_names: Iterable[str] = (), mentioned: bool = False) -> Command | None:
    """The command in ``text``, or None when the message is not for us.

    ``bot_names``: the bot's usernames (``jixiao_bot``), used to tell ``/score@jixiao_bot`` from
    ``/score@other_bot`` (when empty, any ``@target`` is accepted). ``mentioned``: the vendor
    says the message @-mentioned the bot (Feishu mentions, DingTalk, WeCom and Slack
    ``app_mention`` deliver only such messages). Never raises.
    """
    names = {normalise(n).lower().lstrip("@") for n in bot_names if n}
    text = _SLACK_MENTION.sub(lambda m: " @mention ", normalise(text))
    words = _WORD.findall(text)
    addressed = mentioned
    rest: list[str] = []
    for word in words:
        if word.startswith("@") and not rest:
            addressed = True
            continue
        rest.append(word)
    if not rest:
        return Command("help") if addressed else None
    first = rest[0]
    if first.startswith("/"):
        name, _, target = first[1:].partition("@")
        if target and names and target.lower() not in names:
            return None  # a command for another bot in the same group
        addressed = True
    else:
        name = first
    key = ALIASES.get(name.lower())
    if key is not None:
        return Command(key)
    if addressed:
        return Command("help", unknown=first[:40])
    return None


def help_lines() -> list[str]:
    """One line per command, Chinese and English form, and what it answers."""
    return [f"{zh} 或 {en}：{what}" for zh, en, what in COMMANDS.values()]
