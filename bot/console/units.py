"""Console: units and payments (admins).

- Units: searchable, paginated table (fast at 10,000 units: ``store.units.units_page``); add and
  edit a unit and its channel (``store.units.create_unit``/``update_unit``: the API's rules).
- Import (units or disbursements, CSV or XLSX, any of the encodings Excel writes): the upload is
  first checked as a dry run (``bot.api.imports.run_import``, the API's path) and every bad row is
  listed; only then can the admin confirm, which imports the same bytes (carried in the form).
- Payments: the ledger with each payment's state (pending, confirmed, confirmed with a different
  amount, disputed) and the difference in 元 (``store.answers.ledger_page``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot import keys
from bot.api.imports import run_import
from bot.console.auth import FORM, PROJECT, Viewer, page
from bot.console.render import render_page
from config.tables import encoding_label
from store.answers import LEDGER_STATE_ZH, ledger_page
from store.audit import record
from store.db import transaction
from store.errors import StoreError
from store.models import Project
from store.units import (
    FieldsInvalid,
    ImportRejected,
    UnitFields,
    create_unit,
    get_unit,
    import_disbursements,
    import_units,
    read_table,
    units_page,
    update_unit,
)

PAGE = 50
MAX_UPLOAD = 3 * 1024 * 1024  # the confirmed bytes travel back in the form (base64: ×4/3)
UNIT_FIELDS = ("key", "name", "uscc", "channel_kind", "channel_address", "secret_env")


def _offset(request: web.Request) -> int:
    try:
        return max(0, int(request.query.get("offset", "0")))
    except ValueError:
        return 0


def _kinds() -> tuple[str, ...]:
    from bot.channels.registry import KINDS

    return KINDS


@page("admin")
async def units_list(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    search = request.query.get("q", "").strip()[:100]
    offset = _offset(request)
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        total, rows = await units_page(session, project.id or 0, search=search, limit=PAGE, offset=offset)

    def link(o: int) -> str:
        return "?" + urlencode({"q": search, "offset": o})

    return render_page(request, viewer, "units.html", project=project, rows=rows, total=total, offset=offset,
                       page_size=PAGE, search=search, prev_link=link(max(offset - PAGE, 0)) if offset else "",
                       next_link=link(offset + PAGE) if offset + PAGE < total else "",
                       done=request.query.get("done", ""))  # fmt: skip


def _fields_from(form: dict[str, Any]) -> UnitFields:
    secret = str(form.get("secret_env", "")).strip()
    return UnitFields(
        key=str(form.get("key", "")).strip(),
        name=str(form.get("name", "")).strip(),
        uscc=str(form.get("uscc", "")).strip() or None,
        channel_kind=str(form.get("channel_kind", "console")),
        channel_address=str(form.get("channel_address", "")).strip(),
        channel_config={"secret_env": secret} if secret else {},
        # the form posts a hidden "0" and, when ticked, the checkbox's "1"
        active="1" in (form.getall("active", []) if hasattr(form, "getall") else [form.get("active", "1")]),
    )


def _errors(exc: StoreError, lang: str) -> dict[str, str]:
    if isinstance(exc, FieldsInvalid):
        return {p.field.split(".")[0]: (p.en if lang == "en" else p.zh) for p in exc.problems}
    return {exc.where or "key": exc.en if lang == "en" else exc.zh}


@page("admin")
async def unit_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    key = request.match_info.get("unit_key")
    form: dict[str, Any] = {"channel_kind": "console", "active": "1"}
    if key:
        async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
            u = await get_unit(session, project.id or 0, key)
        form = {"key": u.key, "name": u.name, "uscc": u.uscc or "", "channel_kind": u.channel_kind,
                "channel_address": u.channel_address, "secret_env": (u.channel_config or {}).get("secret_env", ""),
                "active": "1" if u.active else "0"}  # fmt: skip
    return render_page(request, viewer, "unit_form.html", project=project, form=form, errors={}, editing=key,
                       kinds=_kinds())  # fmt: skip


@page("admin")
async def unit_save(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    form = request[FORM]
    key = request.match_info.get("unit_key")
    now = request.app[keys.CLOCK]()
    fields = _fields_from(form)
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            if key is None:
                row = await create_unit(session, project.id or 0, fields, now=now)
            else:
                changes = {k: getattr(fields, k) for k in
                           ("name", "uscc", "channel_kind", "channel_address", "channel_config", "active")}  # fmt: skip
                row = await update_unit(session, project.id or 0, key, changes, now=now)
            await record(session, actor=viewer.actor, action="unit.create" if key is None else "unit.update", now=now,
                         project_id=project.id, object=f"unit:{row.key}",
                         detail={"channel_kind": row.channel_kind, "name": row.name})  # fmt: skip
    except StoreError as exc:
        shown = {
            **{k: v for k, v in form.items() if isinstance(v, str)},
            "active": "1" if fields.active else "0",
        }
        return render_page(request, viewer, "unit_form.html", status=400, project=project, form=shown,
                           errors=_errors(exc, viewer.lang), editing=key, kinds=_kinds())  # fmt: skip
    raise web.HTTPSeeOther(f"/console/p/{project.code}/units?done=saved&q={row.key}")


@page("admin")
async def import_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    return render_page(request, viewer, "import.html", project=project, what=request.query.get("what", "units"),
                       problems=[], summary=None, payload="", filename="", encoding="", error="")  # fmt: skip


def _read_form(request: web.Request) -> tuple[dict[str, Any], bytes, str]:
    """The posted form (CSRF already checked by ``page``) and the file's bytes: a new upload, or
    the bytes a successful preview carried back (``payload``)."""
    form = request[FORM]
    data, filename = b"", ""
    upload = form.get("file")
    if isinstance(upload, web.FileField):
        filename = upload.filename or ""
        data = upload.file.read()
        if len(data) > MAX_UPLOAD:
            raise StoreError(
                f"文件过大（上限 {MAX_UPLOAD // 1024 // 1024} MB）", "file too large", where="file"
            )
    if not data and form.get("payload"):
        try:
            data = base64.b64decode(str(form["payload"]), validate=True)
        except (binascii.Error, ValueError):
            raise StoreError(
                "文件内容已损坏，请重新选择文件", "the carried file is damaged; choose it again", where="file"
            ) from None
        filename = str(form.get("filename", ""))
    return form, data, filename


@page("admin")
async def import_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Preview (dry run) or, with ``confirm``, import; bad rows listed with row, column, message."""
    project: Project = request[PROJECT]
    now = request.app[keys.CLOCK]()
    ctx: dict[str, Any] = {"project": project, "problems": [], "summary": None, "payload": "", "filename": "",
                           "encoding": "", "error": ""}  # fmt: skip
    try:
        form, data, filename = _read_form(request)
    except StoreError as exc:
        return render_page(
            request,
            viewer,
            "import.html",
            status=400,
            what="units",
            **{**ctx, "error": exc.en if viewer.lang == "en" else exc.zh},
        )
    what = "disbursements" if form.get("what") == "disbursements" else "units"
    ctx.update(what=what, filename=filename)
    if not data:
        return render_page(request, viewer, "import.html", status=400,
                           **{**ctx, "error": viewer.t("请选择 CSV 或 XLSX 文件")})  # fmt: skip
    importer = import_units if what == "units" else import_disbursements
    confirm = form.get("confirm") == "1"
    try:
        table = await asyncio.to_thread(read_table, data)
        ctx["encoding"] = encoding_label(table.encoding)
        summary = await run_import(request.app[keys.SESSIONMAKER], project.code, table, importer,
                                   dry_run=not confirm, now=now)  # fmt: skip
    except ImportRejected as exc:
        ctx["problems"] = exc.problems
        ctx["error"] = exc.en if viewer.lang == "en" else exc.zh
        return render_page(request, viewer, "import.html", status=400, **ctx)
    if confirm:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            await record(session, actor=viewer.actor, action=f"import.{what}", now=now, project_id=project.id,
                         object=filename[:200], detail={**summary.as_dict(), "rows": len(table.rows)})  # fmt: skip
        target = "units" if what == "units" else "payments"
        raise web.HTTPSeeOther(f"/console/p/{project.code}/{target}?done=imported")
    ctx.update(summary=summary, rows=len(table.rows), payload=base64.b64encode(data).decode())
    return render_page(request, viewer, "import.html", **ctx)


@page("admin")
async def payments(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    state = request.query.get("state", "all")
    if state not in ("all", *LEDGER_STATE_ZH):
        state = "all"
    search = request.query.get("q", "").strip()[:100]
    offset = _offset(request)
    async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
        total, rows = await ledger_page(
            session, project.id or 0, state=state, search=search, limit=PAGE, offset=offset
        )

    def link(o: int) -> str:
        return "?" + urlencode({"q": search, "state": state, "offset": o})

    return render_page(request, viewer, "payments.html", project=project, rows=rows, total=total, offset=offset,
                       page_size=PAGE, search=search, state=state, states=LEDGER_STATE_ZH,
                       prev_link=link(max(offset - PAGE, 0)) if offset else "",
                       next_link=link(offset + PAGE) if offset + PAGE < total else "",
                       done=request.query.get("done", ""))  # fmt: skip


def routes(r: web.UrlDispatcher) -> None:
    base = "/console/p/{code}"
    r.add_get(base + "/units", units_list)
    r.add_get(base + "/units/new", unit_form)
    r.add_post(base + "/units/new", unit_save)
    r.add_get(base + "/units/{unit_key}/edit", unit_form)
    r.add_post(base + "/units/{unit_key}/edit", unit_save)
    r.add_get(base + "/import", import_form)
    r.add_post(base + "/import", import_submit)
    r.add_get(base + "/payments", payments)
