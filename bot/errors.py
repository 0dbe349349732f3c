"""One error shape. Domain errors become ``{"ok": false, "error": {...}, "status": N}`` under
``/api/`` and a friendly page (Chinese first, English by Accept-Language) everywhere else.
Database faults (unreachable, disk full, read-only, locked past the busy timeout: see
``store.faults``) are 503 with ``Retry-After`` in the same shapes, logged as one line.
Unexpected exceptions are logged with a reference id and never show a traceback."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.keys import TEMPLATES
from bot.logs import redact_tokens

if TYPE_CHECKING:
    from store.faults import DatabaseFault

log = logging.getLogger("jixiao.http")


class ApiError(Exception):
    """A client error raised by handlers: status, machine code, bilingual message, location."""

    def __init__(
        self, status: int, code: str, zh: str, en: str, *, where: str = "", details: Any = None
    ) -> None:
        super().__init__(en)
        self.status, self.code, self.zh, self.en, self.where, self.details = (
            status,
            code,
            zh,
            en,
            where,
            details,
        )


def prefers_english(request: web.Request) -> bool:
    """True when the client's Accept-Language ranks English above Chinese."""
    header = request.headers.get("Accept-Language", "")
    for part in header.split(","):
        lang = part.split(";")[0].strip().lower()
        if lang.startswith("zh"):
            return False
        if lang.startswith("en"):
            return True
    return False


def api_error_body(
    status: int, code: str, zh: str, en: str, where: str = "", details: Any = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": zh, "message_en": en}
    if where:
        error["where"] = where
    if details is not None:
        error["details"] = details
    return {"ok": False, "error": error, "status": status}


def error_page(
    request: web.Request, status: int, zh_title: str, zh: str, en_title: str, en: str
) -> web.Response:
    env = request.app[TEMPLATES]
    english = prefers_english(request)
    html = env.get_template("error.html").render(
        lang="en" if english else "zh-CN",
        title=en_title if english else zh_title,
        message=en if english else zh,
    )
    return web.Response(status=status, text=html, content_type="text/html", charset="utf-8")


_HTTP_TEXT = {
    400: ("请求有误", "Bad request"),
    401: ("需要登录凭证", "Authentication required"),
    403: ("没有权限", "Forbidden"),
    404: ("页面不存在", "Not found"),
    405: ("不支持的请求方式", "Method not allowed"),
    413: ("提交内容过大", "Request body too large"),
    429: ("请求过于频繁，请稍后再试", "Too many requests, please wait"),
}


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    from config.loader import DefinitionError
    from store.errors import StoreError

    try:
        return await handler(request)
    except ApiError as exc:
        if _is_api(request):
            return web.json_response(
                api_error_body(exc.status, exc.code, exc.zh, exc.en, exc.where, exc.details),
                status=exc.status,
            )
        return error_page(request, exc.status, "出错了", exc.zh, "Something went wrong", exc.en)
    except DefinitionError as exc:
        details = [
            {"location": p.location, "code": p.code, "message": p.zh, "message_en": p.en}
            for p in exc.problems
        ]
        body = api_error_body(
            400, "invalid_definition", "项目定义有误", "invalid project definition", details=details
        )
        return web.json_response(body, status=400)
    except StoreError as exc:
        if _is_api(request):
            code = type(exc).__name__.lower()
            return web.json_response(
                api_error_body(exc.status, code, exc.zh, exc.en, exc.where), status=exc.status
            )
        return error_page(request, exc.status, "出错了", exc.zh, "Something went wrong", exc.en)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.empty_body:
            raise
        zh, en = _HTTP_TEXT.get(exc.status, ("请求失败", exc.reason))
        if _is_api(request):
            resp = web.json_response(
                api_error_body(exc.status, f"http_{exc.status}", zh, en), status=exc.status
            )
            for name in ("Retry-After", "WWW-Authenticate", "Allow"):
                if name in exc.headers:
                    resp.headers[name] = exc.headers[name]
            return resp
        return error_page(request, exc.status, zh, zh, en, en)
    except Exception as exc:
        from store.faults import StoreUnavailable, classify_fault

        fault = exc.fault if isinstance(exc, StoreUnavailable) else classify_fault(exc)
        if fault is not None:
            return fault_response(request, fault)
        ref = uuid.uuid4().hex[:10]
        # The path may hold a personal link or report token: never logged in clear.
        log.exception("unhandled error ref=%s %s %s", ref, request.method, redact_tokens(request.path))
        zh, en = (
            f"服务器内部错误（编号 {ref}），请稍后再试",
            f"Internal error (ref {ref}); please try again later",
        )
        if _is_api(request):
            return web.json_response(api_error_body(500, "internal", zh, en), status=500)
        return error_page(request, 500, "服务暂时不可用", zh, "Service unavailable", en)


def fault_response(request: web.Request, fault: DatabaseFault) -> web.Response:
    """503 + ``Retry-After`` for a database fault: JSON under ``/api/``, the friendly page
    elsewhere. Logged as one warning line (the fault is the operator's, not a bug)."""
    log.warning("database fault (%s) %s %s: %s", fault.kind, request.method, _log_path(request), fault.detail)
    zh = f"服务暂时不可用：{fault.zh}。请 {fault.retry_after_s} 秒后重试，已填写的内容请勿关闭页面。"
    en = (
        f"Service temporarily unavailable: {fault.en}. Please try again in {fault.retry_after_s} s; "
        "keep this page open so your answers are not lost."
    )
    if _is_api(request):
        resp = web.json_response(api_error_body(503, f"database_{fault.kind}", zh, en), status=503)
    else:
        resp = error_page(request, 503, "服务暂时不可用", zh, "Service unavailable", en)
    resp.headers["Retry-After"] = str(fault.retry_after_s)
    return resp


def _log_path(request: web.Request) -> str:
    """The path for a log line, without personal link or report tokens (``/l/<token>/…``)."""
    parts = request.path.split("/")
    if len(parts) > 2 and parts[1] in ("l", "r"):
        parts[2] = "…"
    return "/".join(parts)
