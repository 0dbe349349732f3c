"""Console language: Chinese first; English by ``?lang=en`` (remembered in a cookie) or by an
Accept-Language that ranks English above Chinese.

Templates are written in Chinese and wrap each phrase in ``_("…")``; :data:`EN` maps it to
English. A phrase without an entry stays Chinese (never blank), so a missing translation is
visible but harmless.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bot.errors import prefers_english

LANG_COOKIE = "jx_lang"

EN: dict[str, str] = {
    "绩效控制台": "jixiao console",
    "登录": "Log in",
    "退出": "Log out",
    "用户名": "User name",
    "密码": "Password",
    "用户名或密码错误": "Wrong user name or password",
    "尝试次数过多，请稍后再试": "Too many attempts, please try again later",
    "项目": "Projects",
    "项目代码": "Code",
    "名称": "Name",
    "年度": "Year",
    "总分": "Total",
    "等级": "Grade",
    "进行中的活动": "Running campaign",
    "回收率": "Answer rate",
    "最近汇总": "Last summary",
    "无": "none",
    "指标": "Indicators",
    "一级指标": "Level 1",
    "二级指标": "Level 2",
    "三级指标": "Indicator",
    "分值": "Weight",
    "得分": "Score",
    "得分率": "Rate",
    "说明": "Explanation",
    "提示": "Warnings",
    "历史": "History",
    "人工调整": "Overrides",
    "理由": "Reason",
    "设置": "Set",
    "撤销": "Clear",
    "活动": "Campaigns",
    "新建活动": "New campaign",
    "开始时间": "Opens",
    "截止时间": "Closes",
    "状态": "State",
    "发起": "Launch",
    "结束": "Close",
    "草稿": "draft",
    "进行中": "open",
    "已结束": "closed",
    "邀请": "invited",
    "已发送": "sent",
    "已打开": "opened",
    "已答复": "answered",
    "已确认": "confirmed",
    "单位": "Units",
    "链接": "Link",
    "提醒": "Reminders",
    "最近消息": "Last message",
    "复制链接": "Copy link",
    "二维码": "QR code",
    "重新发送": "Re-send",
    "吊销并重发新链接": "Revoke and reissue",
    "吊销": "Revoke",
    "导出全部链接": "Export all links",
    "答复": "Responses",
    "导出": "Export",
    "发送端点": "Endpoints",
    "发送队列": "Outbox",
    "重新启用": "Re-enable",
    "测试发送": "Test send",
    "重试": "Retry",
    "正常": "ok",
    "限流至": "throttled until",
    "已停用": "disabled",
    "计划": "Schedules",
    "审计日志": "Audit log",
    "概览": "Overview",
    "完整报告": "Full report",
    "未答复的单位": "Units that have not answered",
    "未确认或有争议的拨付": "Unconfirmed or disputed payments",
    "变化": "What changed",
    "上一页": "Previous",
    "下一页": "Next",
    "搜索": "Search",
    "保存": "Save",
    "预览": "Preview",
    "确认导入": "Confirm import",
    "返回": "Back",
    "时间": "When",
    "操作人": "Who",
    "操作": "Action",
    "对象": "Object",
    "详情": "Detail",
    "拨付": "Payments",
    "金额（元）": "Amount (yuan)",
    "差额（元）": "Difference (yuan)",
    "渠道": "Channel",
    "地址": "Address",
    "导入": "Import",
    "尚无评分": "No score yet",
    "语言": "Language",
}


def lang_of(request: web.Request) -> str:
    """``"en"`` or ``"zh"`` for this request (query, then cookie, then Accept-Language)."""
    asked = request.query.get("lang")
    if asked in ("en", "zh"):
        return asked
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in ("en", "zh"):
        return cookie
    return "en" if prefers_english(request) else "zh"


def translator(lang: str) -> Callable[[str], str]:
    if lang == "en":
        return lambda text: EN.get(text, text)
    return lambda text: text
