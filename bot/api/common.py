"""The admin API's plumbing: an operation registry (routes + the facts the OpenAPI document is
built from), authentication and roles, input parsing, and JSON output.

Every operation is declared once with :meth:`Registry.op`; the same declaration gives the aiohttp
route, the authorisation check, the validation of path/query/body, and its OpenAPI description,
so the document cannot drift from what the server does.

Input rules: bodies are JSON objects validated by pydantic models with unknown fields forbidden
(pydantic's own JSON parser: no floats for money, lone surrogates and absurd nesting refused);
every validation error names the field path; bodies above :data:`MAX_JSON_BYTES` get 413.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from bot import keys
from bot.errors import ApiError, api_error_body
from store.access import (
    Grants,
    check_campaign,
    check_disbursement,
    check_schedule,
    grants_of_token,
    visible_project,
)
from store.db import transaction
from store.models import ApiToken
from store.tokens import authenticate

#: Largest JSON body (definitions are the biggest: ~200 KB for 121 units inline).
MAX_JSON_BYTES = 2 * 1024 * 1024
#: Largest uploaded spreadsheet (the app's client_max_size is the hard ceiling).
MAX_UPLOAD_BYTES = 4 * 1024 * 1024

#: What a malformed multipart body raises inside aiohttp's reader (all mean "bad request").
MULTIPART_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    AssertionError,
    KeyError,
    RuntimeError,
    LookupError,
    HttpProcessingError,
)

Role = Literal["admin", "reader"]
TOKEN = web.RequestKey("api_token", ApiToken)
GRANTS = web.RequestKey("api_grants", Grants)
NO_PROJECTS = Grants(False, frozenset())

# ---------------------------------------------------------------------------- reusable types

_NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
_NO_CONTROL_LINE = r"^[^\x00-\x1f\x7f]*$"
NO_CONTROL_LINE = _NO_CONTROL_LINE
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
CODE_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MONEY_PATTERN = r"^\d{1,12}(\.\d{1,2})?$"


def Line(max_length: int, min_length: int = 0) -> Any:
    """One line of text: no control characters, bounded (the column's max length)."""
    return Annotated[
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=_NO_CONTROL_LINE)
    ]


#: Somewhere in the text, one character that ``config.text.clean_text`` keeps and ``str.strip``
#: does not remove (so the cleaned text is not empty). Explicit code points, no ``\s``: the class
#: means the same in Python, in pydantic-core's Rust regex and in an ECMAScript client reading the
#: OpenAPI document. tests/api/test_units_and_imports.py recomputes it from those two functions.
VISIBLE = r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufffe\uffff]"


def TypedLine(max_length: int, min_length: int = 0) -> Any:
    """One line of text a person typed (a unit's name or channel address): control characters are
    NOT refused here but cleaned by the store with the one rule (``config.text.clean_text``, one-line,
    then stripped) — exactly as the importer and the definition loader do. The bounds apply to the
    text as sent; with ``min_length`` the text must hold a character that survives the cleaning."""
    return Annotated[
        str,
        StringConstraints(
            min_length=min_length, max_length=max_length, pattern=VISIBLE if min_length else None
        ),
    ]


def Para(max_length: int, min_length: int = 0) -> Any:
    """Free text (newlines and tabs allowed, other control characters refused)."""
    return Annotated[
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=_NO_CONTROL)
    ]


Key = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=KEY_PATTERN)]
#: 元 with at most 2 decimals, as text: money never travels as a JSON number (float).
Money = Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=MONEY_PATTERN)]


_MONTH_DAY = r"(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"


def _years(lo: int, hi: int) -> str:
    """A regex for the four-digit years lo…hi (both multiples of 100 apart at most 300)."""
    centuries = [str(c) for c in range(lo // 100, hi // 100)]
    return f"(({'|'.join(centuries)})[0-9]{{2}}|{hi})"


def _shape(pattern: str, zh: str, en: str, parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A before-validator: the raw JSON value must be a string matching ``pattern``, then a real
    calendar date (``parse``: ``fromisoformat``)."""
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise PydanticCustomError("iso_format", en, {"zh": zh, "en": en})
        try:
            return parse(value)
        except ValueError:
            raise PydanticCustomError("iso_format", en, {"zh": zh, "en": en}) from None

    return check


def IsoDateTime(lo_year: int, hi_year: int) -> Any:
    """An RFC 3339 date-time with offset (``2026-03-01T09:00:00+08:00``, seconds required, ``T``
    and ``Z`` upper case) in years lo…hi, as an aware datetime. The same regular expression is
    enforced here and published (with ``format: date-time``), so the document is the check."""
    pattern = f"^{_years(lo_year, hi_year)}-{_MONTH_DAY}T{_CLOCK}$"
    zh = f"应为 {lo_year}–{hi_year} 年之间带时区的日期时间，如 2026-03-01T09:00:00+08:00"
    en = f"must be a date-time with offset in {lo_year}–{hi_year}, e.g. 2026-03-01T09:00:00+08:00"
    return Annotated[
        AwareDatetime,
        BeforeValidator(_shape(pattern, zh, en, datetime.fromisoformat)),
        WithJsonSchema({"type": "string", "format": "date-time", "pattern": pattern}),
    ]


def IsoDate(lo_year: int, hi_year: int) -> Any:
    """An ISO date ``YYYY-MM-DD`` in years lo…hi (see :func:`IsoDateTime`)."""
    pattern = f"^{_years(lo_year, hi_year)}-{_MONTH_DAY}$"
    zh = f"应为 {lo_year}–{hi_year} 年之间的日期 YYYY-MM-DD"
    en = f"must be a date YYYY-MM-DD in {lo_year}–{hi_year}"
    return Annotated[
        date,
        BeforeValidator(_shape(pattern, zh, en, date.fromisoformat)),
        WithJsonSchema({"type": "string", "format": "date", "pattern": pattern}),
    ]


def map_schema(key_pattern: str, value_schema: dict[str, Any], max_properties: int) -> WithJsonSchema:
    """The JSON Schema of a ``dict[constrained key, value]`` field as enforced: every key matches
    ``key_pattern`` (pydantic alone would publish ``patternProperties``, which leaves keys that
    do not match unconstrained)."""
    return WithJsonSchema(
        {
            "type": "object",
            "maxProperties": max_properties,
            "propertyNames": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": key_pattern},
            "additionalProperties": value_schema,
        }
    )


class Body(BaseModel):
    """Base of request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of response data models (used for serialisation and for the OpenAPI document)."""

    model_config = ConfigDict(extra="forbid")


PATH_PARAMS: dict[str, dict[str, Any]] = {
    "code": {"type": "string", "pattern": CODE_PATTERN, "maxLength": 64},
    "unit_key": {"type": "string", "pattern": KEY_PATTERN, "maxLength": 64},
    "indicator_key": {"type": "string", "pattern": KEY_PATTERN, "maxLength": 64},
    "campaign_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "disbursement_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "schedule_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
}


# ---------------------------------------------------------------------------- registry


@dataclass
class Call:
    """What a handler gets besides the request: the caller's token and validated inputs."""

    token: ApiToken | None
    path: dict[str, Any]
    query: Any = None
    body: Any = None
    #: the projects the token may see (public operations: none)
    grants: Grants = NO_PROJECTS


Handler = Callable[[web.Request, Call], Awaitable[web.StreamResponse]]


@dataclass
class Operation:
    """One endpoint. ``data`` is the response-data model/schema; ``body`` a pydantic model or a
    raw media spec (``{"text/csv": schema, ...}``) read by the handler itself."""

    method: str
    path: str
    handler: Handler
    role: Role | None
    summary: str
    tag: str
    description: str = ""
    body: type[BaseModel] | dict[str, Any] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    data: type[BaseModel] | dict[str, Any] | None = None
    success: int = 200
    produces: dict[str, Any] | None = None  # non-JSON success media (exports)
    errors: tuple[int, ...] = ()

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


@dataclass
class Registry:
    operations: list[Operation] = field(default_factory=list)

    def op(
        self, method: str, path: str, *, role: Role | None, summary: str, tag: str, **kw: Any
    ) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.operations.append(
                Operation(method, path, fn, role, summary, tag, description=fn.__doc__ or "", **kw)
            )
            return fn

        return deco


API = Registry()


def wrap(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``op``: authenticate, authorise, validate, then call."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            # Authenticate first (401), then scope (404 for another project's resources, so a
            # coordinator cannot probe them through admin operations), then the role (403).
            token = await require_role(request, "reader") if op.role is not None else None
        except ApiError as exc:
            if exc.status != 401:
                raise
            # RFC 6750: a 401 names the scheme, so clients know to send a bearer token.
            body = api_error_body(exc.status, exc.code, exc.zh, exc.en, exc.where)
            return web.json_response(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="jixiao"'})
        path = parse_path(request)
        grants = request.get(GRANTS, NO_PROJECTS)
        if token is not None:
            await check_scope(request, path, grants)
            if op.role == "admin" and token.role != "admin":
                raise _forbidden()
        refuse_unknown_query(request, op.query)
        query = parse_query(request, op.query) if op.query is not None else None
        body = None
        if isinstance(op.body, type) and issubclass(op.body, BaseModel):
            body = await parse_json(request, op.body, required=op.body_required)
        return await op.handler(request, Call(token, path, query, body, grants))

    handler.__name__ = op.handler.__name__
    handler.api_operation = op  # type: ignore[attr-defined]  # read by the OpenAPI builder
    return handler


def refuse_unknown_query(request: web.Request, model: type[BaseModel] | None) -> None:
    """400 for query parameters the operation does not declare (the document lists them all;
    a misspelt filter must not silently return everything)."""
    known = set(model.model_fields) if model is not None else set()
    unknown = sorted({k for k in request.query if k not in known})
    if unknown:
        names = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise ApiError(400, "unknown_parameter", f"未知的查询参数：{names}", f"unknown query parameter(s): {names}",
                       where=f"query.{unknown[0][:40]}")  # fmt: skip


class MethodTable:
    """The methods the OpenAPI document gives each path, for ``405`` and ``Allow``.

    Paths are matched as OpenAPI says: a concrete path wins over a templated one
    (``/units/import`` over ``/units/{unit_key}``), so a method documented only for the template
    is refused on the concrete path, exactly as the document reads."""

    def __init__(self, paths: dict[str, set[str]]) -> None:
        self._paths = sorted(
            (
                (
                    -sum(1 for seg in path.split("/") if seg and "{" not in seg),
                    re.compile(self._regex(path)),
                    methods,
                )
                for path, methods in paths.items()
            ),
            key=lambda item: item[0],
        )

    @staticmethod
    def _regex(template: str) -> str:
        parts = re.split(r"({\w+})", template)
        return "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"

    def allowed(self, path: str) -> set[str] | None:
        """The documented methods of the most specific documented path matching ``path``."""
        for _, pattern, methods in self._paths:
            if pattern.match(path):
                return methods
        return None


METHODS = web.AppKey("api_method_table", dict)


@web.middleware
async def documented_methods(request: web.Request, handler: Any) -> web.StreamResponse:
    """Under ``/api/``: a method the document does not give the path is 405 with a true
    ``Allow`` (aiohttp alone would merge the methods of every route whose pattern matches)."""
    if request.path.startswith("/api/"):
        cache = request.app[METHODS]
        if "table" not in cache:
            paths: dict[str, set[str]] = {"/api/openapi.json": {"GET"}}
            for op in mounted_operations(request.app):
                paths.setdefault(op.path, set()).add(op.method.upper())
            cache["table"] = MethodTable(paths)
        allowed = cache["table"].allowed(request.path)
        if allowed is not None and request.method not in allowed:
            raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
    return await handler(request)


def mounted_operations(app: web.Application) -> list[Operation]:
    """Every registry operation mounted on ``app`` (from any module that used :func:`wrap`)."""
    seen: list[Operation] = []
    for route in app.router.routes():
        op = getattr(route.handler, "api_operation", None)
        if isinstance(op, Operation) and op not in seen:
            seen.append(op)
    return seen


# ---------------------------------------------------------------------------- auth


def _forbidden() -> ApiError:
    return ApiError(403, "forbidden", "此操作需要管理员令牌（协调员只能查看）",
                    "this operation needs an admin token (coordinators can only read)")  # fmt: skip


def _unauthorized(zh: str, en: str) -> ApiError:
    return ApiError(401, "unauthorized", zh, en, where="Authorization")


async def require_role(request: web.Request, role: Role) -> ApiToken:
    """The caller's live token, else 401 (with ``WWW-Authenticate: Bearer``); 403 when a
    coordinator token calls an admin-only operation."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized(
            "缺少访问令牌：请在请求头中提供 Authorization: Bearer <令牌>",
            "missing token: send Authorization: Bearer <token>",
        )
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        token = await authenticate(session, value.strip(), now=request.app[keys.CLOCK]())
        if token is not None:
            request[GRANTS] = await grants_of_token(session, token)
    if token is None:
        raise _unauthorized("访问令牌无效或已吊销", "the token is invalid or revoked")
    if role == "admin" and token.role != "admin":
        raise _forbidden()
    request[TOKEN] = token
    return token


async def check_scope(request: web.Request, path: dict[str, Any], grants: Grants) -> None:
    """404 when a path parameter names a resource of a project the token is not granted —
    the same answer as for one that does not exist (``store.access``). Runs for every operation,
    so no handler can forget it; list operations filter by ``call.grants`` themselves."""
    if grants.all_projects or not path:
        return
    from store.errors import NotFound

    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        try:
            if "code" in path:
                await visible_project(session, grants, path["code"])
            if "campaign_id" in path:
                await check_campaign(session, grants, path["campaign_id"])
            if "schedule_id" in path:
                await check_schedule(session, grants, path["schedule_id"])
            if "disbursement_id" in path:
                await check_disbursement(session, grants, path["disbursement_id"])
        except NotFound as exc:
            raise ApiError(404, "not_found", exc.zh, exc.en, where=exc.where) from None


# ---------------------------------------------------------------------------- inputs

_ZH = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不允许的字段（未知字段）",
    "string_type": "应为字符串",
    "string_too_long": "过长",
    "string_too_short": "过短",
    "string_pattern_mismatch": "格式不正确",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "decimal_type": "应为数字",
    "decimal_parsing": "应为数字",
    "decimal_max_places": "小数位过多",
    "finite_number": "应为有限数字",
    "greater_than_equal": "过小",
    "less_than_equal": "过大",
    "literal_error": "取值不在允许范围内",
    "enum": "取值不在允许范围内",
    "list_type": "应为数组",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "datetime_type": "应为带时区的日期时间（ISO 8601）",
    "datetime_parsing": "应为带时区的日期时间（ISO 8601）",
    "datetime_from_date_parsing": "应为带时区的日期时间（ISO 8601）",
    "timezone_aware": "日期时间须带时区",
    "date_type": "应为日期 YYYY-MM-DD",
    "date_parsing": "应为日期 YYYY-MM-DD",
    "date_from_datetime_parsing": "应为日期 YYYY-MM-DD",
    "too_long": "元素过多",
    "too_short": "元素过少",
    "value_error": "取值无效",
}


#: Tags of discriminated unions (``kind`` values): pydantic names them in error locations.
union_tags: set[str] = set()


def _path_of(loc: tuple[int | str, ...]) -> str:
    """``("params", "endpoints", 0, "wecom", "config", "key", "[key]")`` → ``params.endpoints[0].config.key``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in union_tags or part == "[key]":
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_details(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """pydantic errors → ``[{field, code, message, message_en}]`` (field as a dotted path)."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = _path_of(err.get("loc", ()))
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            tag = str((err.get("ctx") or {}).get("discriminator", "")).strip("'\"")
            loc = f"{loc}.{tag}" if loc else tag
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body"
        ctx = err.get("ctx") or {}
        zh = str(ctx["zh"]) if "zh" in ctx else _ZH.get(err["type"], "取值无效")
        en = str(ctx["en"]) if "en" in ctx else err["msg"]
        out.append(
            {"field": where, "code": err["type"], "message": f"{where}：{zh}", "message_en": f"{where}: {en}"}
        )
    return out


def invalid_input(details: list[dict[str, Any]], where_kind: str = "body") -> ApiError:
    first = details[0]
    return ApiError(
        400,
        "invalid_input",
        "；".join(d["message"] for d in details[:5]),
        "; ".join(d["message_en"] for d in details[:5]),
        where=first.get("field", where_kind),
        details=details,
    )


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, or 413 when it is larger than ``limit`` bytes (checked before reading it all)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None
    if len(data) > limit:
        raise too_large(limit)
    return data


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"请求体过大（上限 {limit // 1024} KB）", f"request body too large (limit {limit // 1024} KB)")  # fmt: skip


async def parse_json(request: web.Request, model: type[BaseModel], *, required: bool = True) -> Any:
    raw = await read_limited(request, MAX_JSON_BYTES)
    if not raw.strip():
        if not required:
            return model.model_validate({})
        raise ApiError(
            400, "body_required", "缺少 JSON 请求体", "a JSON request body is required", where="body"
        )
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise ApiError(415, "unsupported_media_type", f"请求体应为 JSON（收到 {request.content_type}）",
                       f"the body must be JSON (got {request.content_type})", where="Content-Type")  # fmt: skip
    raw = _integral_floats_as_ints(raw)
    try:
        # Strict: JSON types are what the document says (``"active": 0`` is not a boolean,
        # ``"3"`` is not an integer); dates and datetimes stay ISO strings, as JSON has no others.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise ApiError(400, "malformed_json", f"JSON 格式错误：{errors[0]['msg']}",
                           f"malformed JSON: {errors[0]['msg']}", where="body") from None  # fmt: skip
        raise invalid_input(validation_details(exc)) from None


def _integral_floats_as_ints(raw: bytes) -> bytes:
    """JSON Schema counts ``3.0`` as an integer; pydantic's strict mode does not. Rewrite such
    numbers as integers before validating (``3.5`` stays a float and is refused where an integer
    is due). Anything ``json`` cannot read is left for pydantic's parser to report."""
    if b"." not in raw and b"e" not in raw and b"E" not in raw:
        return raw
    changed = False

    def walk(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, float) and value.is_integer():
            changed = True
            return int(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    try:
        doc = walk(json.loads(raw))
    except (ValueError, RecursionError):
        return raw
    return json.dumps(doc).encode() if changed else raw


def parse_query(request: web.Request, model: type[BaseModel]) -> Any:
    """Query parameters validated by ``model`` (unknown parameters are ignored)."""
    known = set(model.model_fields)
    values = {k: v for k, v in request.query.items() if k in known}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise invalid_input(validation_details(exc, "query."), "query") from None


_PATH_RES = {
    name: re.compile(spec["pattern"]) for name, spec in PATH_PARAMS.items() if spec["type"] == "string"
}


def parse_path(request: web.Request) -> dict[str, Any]:
    """Path parameters checked against :data:`PATH_PARAMS`; a malformed one is a 404 (no such
    thing can exist), so random strings never reach the database."""
    out: dict[str, Any] = {}
    for name, value in request.match_info.items():
        spec = PATH_PARAMS.get(name)
        if spec is None:
            out[name] = value
        elif spec["type"] == "integer":
            if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= spec["maximum"]:
                raise not_found(name, value)
            out[name] = int(value)
        else:
            if len(value) > spec["maxLength"] or not _PATH_RES[name].match(value):
                raise not_found(name, value)
            out[name] = value
    return out


def not_found(name: str, value: Any) -> ApiError:
    what = {"code": "项目", "unit_key": "单位", "indicator_key": "指标", "campaign_id": "活动", "disbursement_id": "拨付记录"}  # fmt: skip
    shown = str(value)[:80]
    return ApiError(404, "not_found", f"{what.get(name, name)}不存在：{shown}", f"no such {name}: {shown}", where=name)  # fmt: skip


# ---------------------------------------------------------------------------- outputs


def iso(value: datetime | date | None) -> str | None:
    """ISO 8601; datetimes keep their offset (stored values are UTC: ``+00:00``)."""
    return None if value is None else value.isoformat()


def ok(data: Any, *, status: int = 200) -> web.Response:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    return web.json_response({"ok": True, "data": data}, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    # Chinese stays readable in the body (UTF-8), not \uXXXX escapes.
    return json.dumps(value, ensure_ascii=False)
