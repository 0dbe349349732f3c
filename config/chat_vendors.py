"""The chat vendors whose groups can ask the bot, and what an admin must know about each when
connecting a chat (shown by the API, the console and the CLI). Plain data: importing it loads
nothing (the CLI builds its parser from it)."""

from __future__ import annotations

#: Vendors whose group chats can send commands (see README, "Asking the bot in a group chat").
VENDORS: tuple[str, ...] = ("telegram", "feishu", "dingtalk", "wecom", "slack")

#: What an admin must know per vendor when connecting a chat (shown by the API, the console and
#: the CLI): which kind of bot can receive commands and whether it needs an @-mention.
HINTS: dict[str, str] = {
    "telegram": "Telegram：群里发 /score@机器人用户名（隐私模式下需带 @用户名）或 @机器人 得分。"
    " / Telegram: send /score@your_bot (privacy mode) or mention the bot.",
    "feishu": "飞书：需要企业自建应用的机器人（订阅 im.message.receive_v1），群里须 @机器人；"
    "自定义机器人（webhook）只能发送、不能接收命令。 / Feishu: needs an app bot and an @-mention; "
    "a custom webhook bot cannot receive.",
    "dingtalk": "钉钉：需要企业内部应用机器人（HTTP 回调模式），群里须 @机器人；"
    "自定义机器人（webhook）只能发送、不能接收命令。 / DingTalk: needs an internal app robot and an "
    "@-mention; a custom webhook robot cannot receive.",
    "wecom": "企业微信：需要智能机器人（API 模式）或自建应用回调，群里须 @机器人；"
    "普通群机器人（消息推送 webhook）只能发送、不能接收命令。 / WeCom: needs the AI bot (API mode) "
    "or an app callback, with an @-mention; a plain group robot webhook cannot receive.",
    "slack": "Slack：用斜杠命令（/score 或 /jixiao 得分）或 @机器人（app_mention）。"
    " / Slack: a slash command or an @-mention of the app.",
}
