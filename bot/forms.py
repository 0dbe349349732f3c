"""Reading the unit page's HTML forms: size limit, CSRF, submission ids, and typed field parsing.

Everything here is pure (no database): it turns a request body into typed values plus per-field
error messages (zh, en); ``store.answers`` then checks the values against the questionnaire and
the ledger. Both sets of messages are shown next to their fields.

CSRF: each form carries ``csrf = HMAC-SHA256(secret, "csrf:" + link token hash + ":" + form)``.
It is bound to the link and the form, needs no cookie (the in-app browsers of WeChat/DingTalk
handle cookies unreliably) and is checked together with the ``Origin``/``Referer`` host when the
browser sends one (:class:`CsrfSigner` signs and checks, keyed once per app). ``Origin: null``
is accepted as "no origin": our pages send ``Referrer-Policy: no-referrer``, under which
browsers serialise the origin of a form POST as null.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from urllib.parse import unquote, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import PayloadEncodingError
from multidict import MultiDict

from bot.errors import ApiError
from scoring import money

#: Largest accepted form body (bytes). A full questionnaire with long comments is a few KB.
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 200
SUBMISSION_ID_RE = re.compile(r"^[0-9a-f]{32}$")

Errors = dict[str, tuple[str, str]]


def new_submission_id() -> str:
    """A random id embedded in each rendered form: one submit of that render = one row."""
    return secrets.token_hex(16)


def submission_key(link_id: int, form: str, submission_id: str) -> str:
    """The stored ``submission_key``: unique per (link, form, rendered form)."""
    return hashlib.sha256(f"{link_id}:{form}:{submission_id}".encode()).hexdigest()


def csrf_token(secret: bytes, token_hash: str, form: str) -> str:
    return hmac.new(secret, f"csrf:{token_hash}:{form}".encode(), hashlib.sha256).hexdigest()[:32]


class CsrfSigner:
    """:func:`csrf_token` with the HMAC key set up once per application (a copy of the keyed
    state per token instead of re-deriving the key's inner/outer pads every time)."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: bytes) -> None:
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def token(self, token_hash: str, form: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"csrf:{token_hash}:{form}".encode())
        return mac.hexdigest()[:32]

    def check(self, form: MultiDict[str], token_hash: str, name: str) -> None:
        """403 unless the form carries the token of (link, form ``name``)."""
        given = form.get("csrf", "")
        if not hmac.compare_digest(given.encode(), self.token(token_hash, name).encode()):
            raise _csrf_failed()


def _forbidden(zh: str, en: str) -> ApiError:
    return ApiError(403, "csrf", zh, en, where="csrf")


@functools.lru_cache(maxsize=16)
def _netloc(url: str) -> str:
    return urlsplit(url).netloc.lower()


def check_origin(request: web.Request, public_url: str) -> None:
    """Refuse a POST whose Origin (or, without it, Referer) names another host."""
    allowed = {request.host.lower(), _netloc(public_url)}
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        if urlsplit(origin).netloc.lower() not in allowed:
            raise _forbidden("请求来源不符，请从您的专属链接重新打开页面", "cross-site form post refused")
        return
    referer = request.headers.get("Referer")
    if referer and urlsplit(referer).netloc.lower() not in allowed:
        raise _forbidden("请求来源不符，请从您的专属链接重新打开页面", "cross-site form post refused")


def _csrf_failed() -> ApiError:
    return _forbidden(
        "页面已过期或表单校验失败，请重新打开您的专属链接再提交",
        "the form check failed; reopen your link and submit again",
    )


def malformed(en: str, zh: str = "提交的表单格式不正确，请重新打开页面填写") -> ApiError:
    return ApiError(400, "malformed_form", zh, f"malformed form: {en}", where="form")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The WHOLE request body, at most ``limit`` bytes (413 beyond), however it arrives.

    A body may come in many TCP segments (a long comment typed on a phone) and with or without
    ``Content-Length`` (chunked). One ``content.read(n)`` returns only what has arrived so far,
    which once stored answers cut short; this reads until the end of the body. A declared
    length over the cap is refused before reading; a chunked body is refused as soon as it
    passes the cap (the rest is never buffered). A client that goes away before the end of its
    body gets 400 (nothing is parsed, so nothing half-sent is ever stored).
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    content = request.content
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await content.readany():
            size += len(chunk)
            if size > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
            chunks.append(chunk)
    except (ConnectionError, PayloadEncodingError) as exc:
        raise malformed(f"the body ended early ({type(exc).__name__})") from exc
    if declared is not None and size != declared:  # pragma: no cover - aiohttp's parser enforces it
        raise malformed(f"body of {size} bytes, Content-Length {declared}")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_form(request: web.Request) -> MultiDict[str]:
    """The urlencoded body read whole (:func:`read_body`, at most ``MAX_FORM_BYTES``, 413
    beyond) and parsed by :func:`parse_body`."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise malformed(f"expected application/x-www-form-urlencoded, got {request.content_type}")
    return parse_body(await read_body(request, MAX_FORM_BYTES))


def parse_body(body: bytes) -> MultiDict[str]:
    """An ``application/x-www-form-urlencoded`` body → its fields (blank values kept, order kept).

    Strict UTF-8 after percent-decoding, at most ``MAX_FORM_FIELDS`` fields, no NUL anywhere;
    anything else is :func:`malformed` (400). Other control characters are left to the field's
    own cleaning (``config.text.clean_text`` in ``store.answers``).

    Same result as ``urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict",
    max_num_fields=MAX_FORM_FIELDS)`` (tested against it), without its per-field overhead:
    a name or value is only unquoted when it holds a ``%`` or ``+`` (hidden fields and most
    names hold neither).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed(type(exc).__name__) from exc
    if text.count("&") + 1 > MAX_FORM_FIELDS:
        raise malformed("ValueError")
    pairs: list[tuple[str, str]] = []
    try:
        for part in text.split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            if "%" in name or "+" in name:
                name = unquote(name.replace("+", " "), errors="strict")
            if "%" in value or "+" in value:
                value = unquote(value.replace("+", " "), errors="strict")
            pairs.append((name, value))
    except UnicodeDecodeError as exc:
        raise malformed(type(exc).__name__) from exc
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise malformed("NUL character")
    return MultiDict(pairs)


def single(form: MultiDict[str], name: str) -> str:
    """The one value of ``name`` ('' when absent); a repeated single-valued field is malformed."""
    values = form.getall(name, [])
    if len(values) > 1:
        raise malformed(f"field {name} given {len(values)} times")
    return values[0] if values else ""


def submission_id_of(form: MultiDict[str]) -> str:
    value = single(form, "submission_id")
    if not SUBMISSION_ID_RE.match(value):
        raise malformed("missing or invalid submission_id")
    return value


# ----------------------------------------------------------------------------------- values


#: Short messages for a person typing on a phone (the parser's own ones echo the value back).
_MONEY_MESSAGES = {
    "money_negative": ("金额不能为负数", "the amount cannot be negative"),
    "money_precision": ("金额最多两位小数（分）", "at most two decimals (fen)"),
    "money_too_large": ("金额过大，请核对（单位：元）", "amount too large; check it (in yuan)"),
}
_MONEY_INVALID = ("金额格式不正确，例如 12,345.67", "not an amount; e.g. 12,345.67")


def parse_yuan(text: str) -> tuple[int | None, tuple[str, str] | None]:
    """A yuan amount typed by a person → (fen, None) or (None, (zh, en) error); empty → (None, None).

    Parsing is :func:`scoring.money.parse_yuan` (``1234``, ``1,234.5``, ``1234.56元``; ASCII
    digits only, no inner spaces, no negatives, at most two decimals, no exponents or NaN, never
    float); only the messages are the page's own.
    """
    raw = text.strip()  # inner spaces are refused ("12 3" is not 123), like any other stray text
    if not raw:
        return None, None
    try:
        return money.parse_yuan(raw), None
    except money.MoneyError as exc:
        return None, _MONEY_MESSAGES.get(exc.code, _MONEY_INVALID)


#: The page's hint, exactly: 年-月-日 with ASCII digits (``date.fromisoformat`` would also take
#: ``2023-W01`` and ``20230301``; a browser's date input always sends this form).
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DATE_MESSAGE = ("日期格式应为 年-月-日，例如 2024-03-01", "date must be YYYY-MM-DD, e.g. 2024-03-01")


def parse_date(text: str) -> tuple[date | None, tuple[str, str] | None]:
    """``YYYY-MM-DD`` (surrounding spaces ignored) → (date, None); anything else → (None, message);
    empty → (None, None)."""
    raw = text.strip()
    if not raw:
        return None, None
    if not _DATE_RE.match(raw):
        return None, _DATE_MESSAGE
    try:
        return date.fromisoformat(raw), None
    except ValueError:  # e.g. 2023-02-30
        return None, _DATE_MESSAGE


def yuan(fen: int | None) -> str:
    """Fen → '1,234,567.89' (thousands separators, two decimals, exact)."""
    if fen is None:
        return ""
    return f"{Decimal(fen) / 100:,.2f}"


@dataclass
class ConfirmationForm:
    """The payment form as typed values; ``values`` keeps the raw text to re-fill the form."""

    status: str = ""
    received_on: date | None = None
    amount_fen: int | None = None
    voucher: str = ""
    dispute_kind: str | None = None
    reason: str = ""
    values: dict[str, str] = field(default_factory=dict)
    errors: Errors = field(default_factory=dict)


def parse_confirmation(form: MultiDict[str]) -> ConfirmationForm:
    """Read status, received_on, amount (元), voucher, dispute_kind, reason (syntax only)."""
    names = ("status", "received_on", "amount", "voucher", "dispute_kind", "reason")
    values = {n: single(form, n) for n in names}
    out = ConfirmationForm(values=values)
    out.status = values["status"]
    out.received_on, err = parse_date(values["received_on"])
    if err:
        out.errors["received_on"] = err
    out.amount_fen, err = parse_yuan(values["amount"])
    if err:
        out.errors["amount"] = err
    out.voucher = values["voucher"].strip()
    out.dispute_kind = values["dispute_kind"] or None
    out.reason = values["reason"].strip()
    if out.status == "confirmed":
        # Fields of the other choice are ignored so a half-filled dispute part does not block.
        out.dispute_kind = None
        out.errors.pop("dispute_kind", None)
    elif out.status == "disputed":
        out.received_on, out.amount_fen, out.voucher = None, None, ""
        out.errors.pop("received_on", None)
        out.errors.pop("amount", None)
    return out
