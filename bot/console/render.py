"""Rendering console pages: one Jinja2 environment (autoescape on, StrictUndefined) over
``bot/console/templates``, the viewer's language and CSRF token in every page, and the formats
the pages share (money in 元, times in the project's timezone with its name)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from bot.console.i18n import OUTBOX_KIND_ZH, ROLE_ZH, RUN_STATUS_ZH, WEEKDAYS_ZH, lang_of, translator
from config.timefmt import zone_name
from scoring import money

TEMPLATES = Path(__file__).parent / "templates"
ENV = web.AppKey("console_templates", jinja2.Environment)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        # console templates first, then the shared ones (the report chart macro)
        loader=jinja2.FileSystemLoader([TEMPLATES, TEMPLATES.parent.parent / "templates"]),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["yuan"] = yuan
    env.filters["local"] = local
    return env


def yuan(fen: int | None) -> str:
    """Integer fen → ``1,234.56`` (元, grouped), ``—`` for None."""
    if fen is None:
        return "—"
    return money.yuan_display(fen)


def local(value: datetime | None, tz: str = "Asia/Shanghai", fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An aware datetime shown in ``tz`` (the project's timezone)."""
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(tz)).strftime(fmt)


def tz_label(tz: str) -> str:
    """The zone's name as people read it (``config.timefmt.zone_name``: 北京时间 …)."""
    return zone_name(tz)


def render_page(
    request: web.Request, viewer: Any, template: str, *, status: int = 200, **ctx: Any
) -> web.Response:
    lang = viewer.lang if viewer is not None else lang_of(request)
    t = translator(lang)
    html = (
        request.app[ENV]
        .get_template(template)
        .render(
            _=t,
            lang=lang,
            viewer=viewer,
            csrf=ctx.pop("csrf", viewer.csrf if viewer is not None else ""),
            path=request.path,
            tz_label=lambda tz: t(tz_label(tz)),
            # "（…）" and "：" in Chinese, " (…)" and ": " in English
            paren=(lambda s: f" ({s})") if lang == "en" else (lambda s: f"（{s}）"),
            colon=": " if lang == "en" else "：",
            weekday=lambda d: t(WEEKDAYS_ZH[d.weekday()]),
            role_zh=ROLE_ZH,
            run_status_zh=RUN_STATUS_ZH,
            outbox_kind_zh=OUTBOX_KIND_ZH,
            **ctx,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
