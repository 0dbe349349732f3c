"""Console language: Chinese first; English by ``?lang=en`` or the switch in the header
(remembered in the ``jx_lang`` cookie), else by an Accept-Language that ranks English above
Chinese.

One message catalogue: templates and handlers write each phrase in Chinese, wrapped in
``_("…")`` (templates) or ``viewer.t("…")`` (handlers); :data:`EN` maps it to English. Phrases
may hold ``{name}`` fields filled after translation (``_("{n} 条", n=3)``). A phrase without an
entry stays Chinese (never blank); ``tests/console/test_i18n.py`` fails on any such phrase and
on any Chinese left in an English page.

What is *not* translated: people's data (project, unit, campaign and indicator names, chat
titles) and the Chinese evaluation content produced by scoring (explanations, warnings, the
exported response tables), which pages mark with ``lang="zh-CN"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.errors import prefers_english

LANG_COOKIE = "jx_lang"

#: Display names of coded values the pages show (roles, states, kinds): code → Chinese phrase,
#: translated like any other phrase.
ROLE_ZH = {"admin": "管理员", "coordinator": "协调人"}
RUN_STATUS_ZH = {"requested": "已请求", "running": "运行中", "ok": "成功", "failed": "失败", "missed": "错过"}
OUTBOX_KIND_ZH = {"invite": "邀请消息", "remind": "提醒消息", "reply": "群聊回复", "summary": "评分汇总"}
WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

EN: dict[str, str] = {
    # frame, login
    "绩效控制台": "jixiao console",
    "登录": "Log in",
    "退出": "Log out",
    "用户名": "User name",
    "密码": "Password",
    "用户名或密码错误": "Wrong user name or password",
    "尝试次数过多，请稍后再试": "Too many attempts, please try again later",
    "管理员": "admin",
    "协调人": "coordinator",
    "语言": "Language",
    # time zones (config.timefmt.ZONE_NAMES)
    "北京时间": "Beijing time",
    "乌鲁木齐时间": "Urumqi time",
    "香港时间": "Hong Kong time",
    "澳门时间": "Macau time",
    "台北时间": "Taipei time",
    "周一": "Mon",
    "周二": "Tue",
    "周三": "Wed",
    "周四": "Thu",
    "周五": "Fri",
    "周六": "Sat",
    "周日": "Sun",
    # navigation
    "项目": "Projects",
    "发送端点": "Endpoints",
    "发送队列": "Outbox",
    "群聊": "Group chats",
    "审计日志": "Audit log",
    "指标": "Indicators",
    "概览": "Overview",
    "活动": "Campaigns",
    "单位": "Units",
    "拨付": "Payments",
    "计划": "Schedules",
    "导入": "Import",
    "项目定义": "Definition",
    "完整报告": "Full report",
    # common words
    "无": "none",
    "全部": "all",
    "名称": "Name",
    "状态": "State",
    "搜索": "Search",
    "保存": "Save",
    "预览": "Preview",
    "返回": "Back",
    "上一页": "Previous",
    "下一页": "Next",
    "导出": "Export",
    "重试": "Retry",
    "时间": "When",
    "时间均为{zone}": "All times are {zone}",
    "详情": "Detail",
    "渠道": "Channel",
    "地址": "Address",
    "错误": "Error",
    "启用": "active",
    "停用": "inactive",
    "已暂停": "paused",
    "已保存": "Saved",
    "已导入": "Imported",
    "修改": "Edit",
    "共 {n} 条": "{n} in all",
    # projects, project page
    "项目代码": "Code",
    "年度": "Year",
    "总分": "Total",
    "等级": "Grade",
    "进行中的活动": "Running campaign",
    "回收率": "Answer rate",
    "最近汇总": "Last summary",
    "三级指标": "Indicator",
    "分值": "Weight",
    "得分": "Score",
    "得分率": "Rate",
    "说明": "Explanation",
    "提示": "Warnings",
    "历史": "History",
    "人工调整": "Override",
    "理由": "Reason",
    "设置": "Set",
    "撤销": "Clear",
    "尚无评分": "No score yet",
    "立即重新计算": "Recompute now",
    "已保存人工调整（下次重新计算时生效）": "Override saved (applies at the next recompute)",
    "已撤销人工调整": "Override cleared",
    "已重新计算": "Recomputed",
    "已导入新的项目定义": "New definition version loaded",
    "请填写分数（数字，最多两位小数）": "Enter a score (a number, at most 2 decimals)",
    # overview
    "变化": "What changed",
    "未答复的单位": "Units that have not answered",
    "未确认或有争议的拨付": "Unconfirmed or disputed payments",
    "已提醒 {n} 次": "reminded {n}×",
    "截止 {when}": "closes {when}",
    "有争议": "disputed",
    "确认金额不一致": "confirmed with another amount",
    "未确认": "unconfirmed",
    "待确认": "pending",
    "已确认": "confirmed",
    "{amount} 元": "¥{amount}",
    "差额 {amount} 元": "difference ¥{amount}",
    # campaigns
    "新建活动": "New campaign",
    "开始时间": "Opens",
    "截止时间": "Closes",
    "发起": "Launch",
    "结束": "Close",
    "结束活动…": "Close the campaign…",
    "确认结束：所有链接立即失效，单位不能再提交": "Yes, close it: every link stops working and units can no longer submit",
    "请先勾选确认": "Tick the confirmation first",
    "草稿": "draft",
    "进行中": "open",
    "已结束": "closed",
    "邀请": "invited",
    "已发送": "sent",
    "已打开": "opened",
    "已答复": "answered",
    "未答复": "not answered",
    "未发送": "not sent",
    "发送失败": "failed",
    "已确认拨付": "payment confirmed",
    "链接": "Link",
    "提醒": "Reminders",
    "最近消息": "Last message",
    "复制链接": "Copy link",
    "已复制 ✓": "Copied ✓",
    "二维码": "QR code",
    "重新发送": "Re-send",
    "吊销并重发新链接": "Revoke and reissue",
    "吊销": "Revoke",
    "导出全部链接": "Export all links",
    "答复": "Responses",
    "{year}年度满意度调查": "{year} satisfaction survey",
    "同时请单位确认收到的拨付": "Also ask units to confirm their payments",
    "请填写活动名称": "Enter a campaign name",
    "请填写日期和时间，例如 2026-03-01T09:00": "Enter a date and time, e.g. 2026-03-01T09:00",
    "{n} 个单位的渠道缺少密钥环境变量，发起后发给它们的消息会失败：": "{n} units' channels name secret variables that are not set; messages to them would fail:",
    "请先在服务器环境中设置这些变量（或在单位页改用其他渠道）。": "Set these variables on the server first (or change those units' channel).",
    "仍然发起（其余单位照常发送）": "Launch anyway (the other units are sent as usual)",
    "单位编码或名称": "unit key or name",
    "链接仅供该单位使用，请勿公开。": "This link is for this unit only; do not publish it.",
    "已发起：每个单位的链接已生成，邀请已排队发送": "Launched: each unit's link is made and its invitation queued",
    "活动已结束，链接已失效": "Campaign closed; the links no longer work",
    "已重新发送": "Sent again",
    "链接已吊销": "Link revoked",
    "已吊销旧链接并发送新链接": "Old link revoked, new link sent",
    "待发送": "pending",
    "发送中": "sending",
    "已送达": "delivered",
    "已放弃": "given up",
    "已取消": "cancelled",
    # responses
    "问卷答复": "Questionnaire responses",
    "拨付确认": "Payment confirmations",
    # units, payments, import
    "新增单位": "Add a unit",
    "修改单位 {key}": "Edit unit {key}",
    "单位编码": "Unit key",
    "单位名称": "Unit name",
    "统一社会信用代码": "Unified social credit code (USCC)",
    "渠道地址": "Channel address",
    "密钥环境变量": "Secret variable",
    "字母数字，创建后不可修改": "letters and digits; cannot be changed later",
    "18 位，可留空": "18 characters; may be left empty",
    "群聊 ID、邮箱或 webhook 地址": "a chat id, an email address or a webhook URL",
    "如 JIXIAO_SECRET_DINGTALK_1；文件和数据库中不存密钥": "e.g. JIXIAO_SECRET_DINGTALK_1; no secret is stored in files or the database",
    "编码": "Key",
    "编码、名称或统一社会信用代码": "key, name or USCC",
    "密钥变量 {name}": "secret variable {name}",
    "批次": "Batch",
    "日期": "Date",
    "金额（元）": "Amount (yuan)",
    "差额（元）": "Difference (yuan)",
    "确认导入": "Confirm import",
    "导入什么": "What to import",
    "单位（key, name, uscc, channel_kind, channel_address, channel_secret_env, active）": "Units (key, name, uscc, channel_kind, channel_address, channel_secret_env, active)",
    "拨付（unit, amount 元, date, batch, voucher）": "Payments (unit, amount in yuan, date, batch, voucher)",
    "文件（CSV 或 XLSX；UTF-8、GBK/GB18030、UTF-16 均可）": "File (CSV or XLSX; UTF-8, GBK/GB18030 or UTF-16)",
    "行": "Row",
    "列": "Column",
    "问题": "Problem",
    "未导入任何数据。请在文件中改正这些行后重新上传。": "Nothing was imported; fix these rows and upload again.",
    "预览（尚未导入）": "Preview (nothing imported yet)",
    "{filename}（{encoding}），{rows} 行": "{filename} ({encoding}), {rows} rows",
    "新增 {a} · 更新 {u} · 不变 {n}": "created {a} · updated {u} · unchanged {n}",
    "请选择 CSV 或 XLSX 文件": "Choose a CSV or XLSX file",
    # definition
    "位置": "Where",
    "与当前版本 v{v} 相同，导入不会改变任何内容。": "Identical to the current version v{v}: nothing would change.",
    "预览（尚未导入）：将成为版本 v{v}": "Preview (nothing loaded yet): becomes version v{v}",
    "单位：新增 {a} · 更新 {u} · 停用 {d}": "Units: added {a} · updated {u} · deactivated {d}",
    "拨付：{n}": "Payments: {n}",
    "新增": "added",
    "更新": "updated",
    "保留": "kept",
    "保留接口修改的 {a}（文件为 {b}）": "keeps the API edit {a} (the file says {b})",
    "确认导入新版本": "Load this version",
    "CSV 文件（units.csv 等，可多选）或一个 zip": "The CSV files it names (units.csv …), or one zip",
    "新增指标：{name}（{weight} 分）": "Indicator added: {name} ({weight} points)",
    "删除指标：{name}": "Indicator removed: {name}",
    "分值变化：{name} {a} → {b}": "Weight changed: {name} {a} → {b}",
    "名称变化：{a} → {b}": "Renamed: {a} → {b}",
    "项目定义有误": "The definition has problems",
    "文件中的项目代码是 {a}，不是 {b}": "The file is for project {a}, not {b}",
    "project.toml 应为 UTF-8 文本": "project.toml must be UTF-8 text",
    # schedules
    "类型": "Kind",
    "发起活动": "Launch a campaign",
    "提醒未答复单位": "Remind units that have not answered",
    "结束活动": "Close a campaign",
    "重新计算评分": "Recompute the score",
    "发送评分汇总": "Send the score summary",
    "cron（分 时 日 月 周）": "cron (minute hour day month weekday)",
    "例：": "e.g. ",
    "每周一 09:17；避开整点和半点。": "every Monday 09:17; avoid :00 and :30.",
    "时区": "Time zone",
    "活动（发起、提醒、结束时用）": "Campaign (to launch, remind or close)",
    "免打扰时段": "Quiet hours",
    "从（时:分）": "From (HH:MM)",
    "到（时:分）": "Until (HH:MM)",
    "汇总发往（协调人端点）": "Summary goes to (coordinator endpoints)",
    "还没有协调人端点：用下面的链接添加一个（或在第一次通过 API、命令行向它发送汇总时自动登记），之后可以在这里选择。": "No coordinator endpoint yet: add one with the link below (or it is registered when a "
    "summary is first sent to it through the API or the CLI); then it can be chosen here.",
    "接下来 5 次运行": "Next 5 runs",
    "接下来 5 次": "Next 5",
    "新增计划": "Add a schedule",
    "还没有计划：用下面的表单添加。": "No schedules yet: add one with the form below.",
    "修改计划 #{id}": "Edit schedule #{id}",
    "暂停": "Pause",
    "恢复": "Resume",
    "立即运行": "Run now",
    "已恢复": "Resumed",
    "已请求立即运行": "Run requested",
    "运行记录": "Runs",
    "计划时间": "Fire time",
    "已请求": "requested",
    "运行中": "running",
    "添加协调人群聊端点": "Add a coordinator chat endpoint",
    "已添加端点 #{id}（{kind}），现在可以在汇总计划中选择它。": "Endpoint #{id} ({kind}) added: it can now be chosen in a summary schedule.",
    "去设置汇总计划": "Set up a summary schedule",
    "环境变量 {name} 在服务器上未设置：在设置之前，发往这个端点的消息会失败。请让运维在服务器环境（或 .env 文件）中设置它。": "The environment variable {name} is not set on this server: until it is, messages to this endpoint will fail. Ask operations to set it in the server's environment (or its .env file).",
    "环境变量名": "Environment variable name",
    "这个变量保存{what}。": "The variable holds {what}.",
    "只填变量名（大写字母、数字、下划线），不要填密钥本身；密钥由运维设置在服务器环境中。": "Only the variable's name (capital letters, digits, underscores), never the secret itself: operations set the secret in the server's environment.",
    "显示名称（可选）": "Display name (optional)",
    "添加": "Add",
    "每种渠道填写什么": "What to enter for each channel",
    "环境变量保存": "The variable holds",
    "群机器人名称（用于辨认，如“财政局协调群”）": 'the group robot\'s name, to recognise it (e.g. "Finance bureau coordinators")',
    "群机器人 webhook 的 key": "the key of the group robot's webhook",
    "机器人名称（用于辨认）": "the robot's name, to recognise it",
    "机器人的 access_token": "the robot's access_token",
    "自定义机器人 webhook 地址末尾的 token": "the token at the end of the custom bot's webhook URL",
    "群聊 chat_id（如 -1001234567890）": "the group's chat_id (e.g. -1001234567890)",
    "机器人的 token": "the bot's token",
    "频道名称（用于辨认）": "the channel's name, to recognise it",
    "Incoming Webhook 地址（地址本身就是密钥）": "the Incoming Webhook URL (the URL is the credential)",
    "接收地址（以 http:// 或 https:// 开头）": "the receiver's URL (starting with http:// or https://)",
    "签名密钥（此变量须已在服务器上设置）": "the signing secret (this variable must already be set on the server)",
    "收件邮箱地址": "the recipient's email address",
    "SMTP 密码（可留空：使用服务器的邮件设置）": "the SMTP password (may be left empty: the server's mail settings are used)",
    "成功": "ok",
    "失败": "failed",
    "错过": "missed",
    # endpoints, outbox
    "正常": "ok",
    "限流至": "throttled until",
    "已停用": "disabled",
    "重新启用": "Re-enable",
    "已重新启用": "Re-enabled",
    "测试发送": "Test send",
    "发送成功": "Delivered",
    "没有 {kind} 渠道的发送器": "No sender for channel {kind}",
    "【测试】绩效系统消息测试": "[Test] jixiao test message",
    "这是一条测试消息，由 {name} 在控制台发送。": "This is a test message sent by {name} from the console.",
    "已重新排队": "Queued again",
    "类别": "Kind",
    "端点": "Endpoint",
    "尝试次数": "Tries",
    "下次尝试": "Next try",
    "群聊回复": "chat reply",
    "邀请消息": "invitation",
    "提醒消息": "reminder",
    "评分汇总": "score summary",
    # audit
    "操作人": "Who",
    "操作": "Action",
    "对象": "Object",
    # chats
    "连接到项目的群聊里，任何成员都可以向机器人查询该项目的得分。未连接的群聊只对可见全部项目的管理员列出；其他管理员可按群聊 ID 连接（机器人会在群里回复该 ID）。": "Anyone in a chat connected to a project may ask the bot for that project's scores. Chats not "
    "connected yet are listed only for admins who see all projects; other admins connect a chat by "
    "its id (the bot posts it in the chat).",
    "未连接": "not connected",
    "已连接": "connected",
    "第一条消息": "First message",
    "最近活动": "Last activity",
    "已连接的项目": "Connected projects",
    "连接到项目": "Connect to a project",
    "连接": "Connect",
    "断开": "Disconnect",
    "断开 {code}": "Disconnect {code}",
    "共 {n} 条消息": "messages: {n}",
    "群聊名称": "Chat",
    "所属项目": "Project",
    "还没有群聊。在群里 @机器人 发一条消息，它就会出现在这里。": "No chats yet. Mention the bot in a group chat and the chat appears here.",
    "只显示最近的 {n} 个": "Only the latest {n} are shown",
    "按群聊 ID 连接": "Connect by chat id",
    "平台": "Vendor",
    "群聊 ID": "Chat id",
    "已连接。": "Connected.",
    "已断开。": "Disconnected.",
    "请选择项目": "Choose a project",
}

Translate = Callable[..., str]


def lang_of(request: web.Request) -> str:
    """``"en"`` or ``"zh"`` for this request (query, then cookie, then Accept-Language)."""
    asked = request.query.get("lang")
    if asked in ("en", "zh"):
        return asked
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in ("en", "zh"):
        return cookie
    return "en" if prefers_english(request) else "zh"


def translator(lang: str) -> Translate:
    """``t(phrase, **fields)``: the phrase in ``lang`` with its ``{fields}`` filled in."""
    table = EN if lang == "en" else {}

    def t(text: str, **fields: Any) -> str:
        out = table.get(text, text)
        return out.format(**fields) if fields else out

    return t


def bilingual(text: str, lang: str) -> str:
    """One side of a shared ``"中文 / English"`` text (``config.chat_vendors.HINTS``, the
    ``ValueError``\\ s of the upload readers): the part after the last `` / `` in English."""
    zh, sep, en = text.rpartition(" / ")
    if not sep:
        return text
    return en.strip() if lang == "en" else zh.strip()
