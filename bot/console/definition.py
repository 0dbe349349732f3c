"""Console: load a new definition version by upload (admins), with a preview first.

The upload is ``project.toml`` plus the CSV files it names, or one zip holding them. It is parsed
by the API's reader (``bot.api.projects._parse``: every problem located) and loaded by
``store.projects.load_project`` inside a transaction that is rolled back — a dry run of the real
load — so the preview shows what would change: the new version number, units added, updated and
deactivated, disbursements, notes, and the indicators added, removed or re-weighted. Confirming
loads the same bytes (carried back in the form as a zip).

Units are listed one by one from ``LoadResult.unit_changes`` (the structured diff behind
``jixiao project load --dry-run``): each unit added, updated, deactivated or keeping an edit made
outside the file, with every field.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bot import keys
from bot.api.projects import _SAFE_NAME, MAX_FILES, _parse
from bot.console.auth import FORM, PROJECT, Viewer, page
from bot.console.i18n import bilingual
from bot.console.render import render_page
from config.loader import DefinitionError
from store.audit import record
from store.db import transaction
from store.models import Project
from store.projects import get_definition, load_project

MAX_TOTAL = 3 * 1024 * 1024


class _Rollback(Exception):
    pass


def _files_from_form(form: dict[str, Any]) -> dict[str, bytes]:
    """name → bytes of the uploaded files (a zip is opened; only plain, safe names are kept)."""
    files: dict[str, bytes] = {}
    uploads = [v for k, v in form.items() if k in ("files", "definition") and isinstance(v, web.FileField)]
    if form.get("payload"):
        try:
            uploads_bytes = [("bundle.zip", base64.b64decode(str(form["payload"]), validate=True))]
        except (binascii.Error, ValueError):
            raise ValueError("文件内容已损坏，请重新选择 / the carried files are damaged") from None
    else:
        uploads_bytes = [(u.filename or "", u.file.read()) for u in uploads]
    for name, data in uploads_bytes:
        if name.lower().endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for info in z.infolist()[: MAX_FILES + 1]:
                    base = Path(info.filename).name
                    if info.is_dir() or not _SAFE_NAME.match(base) or info.file_size > MAX_TOTAL:
                        continue
                    files[base] = z.read(info)
        elif name:
            files[Path(name).name] = data
    if len(files) > MAX_FILES or sum(len(v) for v in files.values()) > MAX_TOTAL:
        raise ValueError(
            f"最多 {MAX_FILES} 个文件、共 {MAX_TOTAL // 1024 // 1024} MB / too many or too large files"
        )
    if "project.toml" not in files:
        raise ValueError("缺少 project.toml / project.toml is missing")
    for name in files:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"文件名 {name[:60]!r} 无效 / invalid file name")
    return files


def _bundle(files: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


UNIT_ACTION_ZH = {"add": "新增", "update": "更新", "deactivate": "停用", "keep": "保留"}


def _show(value: Any) -> str:
    """A unit field's value in the preview (``—`` for empty)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in sorted(value.items())) + "}"
    return "—" if value in (None, "") else str(value)


def indicator_changes(old: Any, new: Any, t: Callable[..., str]) -> list[str]:
    """Human lines (in the viewer's language ``t``): indicators added, removed, renamed or
    re-weighted (by key)."""
    before = {i.key: i for i in (old.indicators if old is not None else [])}
    after = {i.key: i for i in new.indicators}
    out = [t("新增指标：{name}（{weight} 分）", name=after[k].name, weight=after[k].weight)
           for k in after if k not in before]  # fmt: skip
    out += [t("删除指标：{name}", name=before[k].name) for k in before if k not in after]
    for k in sorted(after.keys() & before.keys()):
        a, b = before[k], after[k]
        if a.weight != b.weight:
            out.append(t("分值变化：{name} {a} → {b}", name=b.name, a=a.weight, b=b.weight))
        if a.name != b.name:
            out.append(t("名称变化：{a} → {b}", a=a.name, b=b.name))
    return out


@page("admin")
async def definition_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return render_page(request, viewer, "definition.html", project=request[PROJECT], problems=[], preview=None,
                       payload="", error="", unit_action_zh=UNIT_ACTION_ZH, show=_show)  # fmt: skip


@page("admin")
async def definition_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    form = request[FORM]
    now = request.app[keys.CLOCK]()
    ctx: dict[str, Any] = {"project": project, "problems": [], "preview": None, "payload": "", "error": "",
                           "unit_action_zh": UNIT_ACTION_ZH, "show": _show}  # fmt: skip
    try:
        files = _files_from_form(form)
    except (ValueError, zipfile.BadZipFile) as exc:
        return render_page(request, viewer, "definition.html", status=400,
                           **{**ctx, "error": bilingual(str(exc), viewer.lang)})  # fmt: skip
    try:
        text = files["project.toml"].decode("utf-8-sig")
    except UnicodeDecodeError:
        return render_page(request, viewer, "definition.html", status=400,
                           **{**ctx, "error": viewer.t("project.toml 应为 UTF-8 文本")})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="jixiao-def-") as tmp:
        base = Path(tmp)
        for name, data in files.items():
            (base / name).write_bytes(data)
        try:
            defn = await _parse(text, base, "project.toml")
        except DefinitionError as exc:
            return render_page(request, viewer, "definition.html", status=400,
                               **{**ctx, "problems": exc.problems, "error": viewer.t("项目定义有误")})  # fmt: skip
    if defn.project.code != project.code:
        return render_page(request, viewer, "definition.html", status=400,
                           **{**ctx, "error": viewer.t("文件中的项目代码是 {a}，不是 {b}", a=defn.project.code, b=project.code)})  # fmt: skip
    confirm = form.get("confirm") == "1"
    result = None
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            old = await get_definition(session, project)
            result = await load_project(session, defn, now=now, by=viewer.actor)
            changes = indicator_changes(old, defn, viewer.t)
            if confirm:
                await record(session, actor=viewer.actor, action="definition.load", now=now, project_id=project.id,
                             object=f"project:{project.code}",
                             detail={"version": result.version, "created": result.created_version})  # fmt: skip
            else:
                raise _Rollback
    except _Rollback:
        pass
    if confirm:
        raise web.HTTPSeeOther(f"/console/p/{project.code}?done=loaded")
    preview = {"result": result, "changes": changes}
    return render_page(
        request, viewer, "definition.html", **{**ctx, "preview": preview, "payload": _bundle(files)}
    )


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/p/{code}/definition", definition_form)
    r.add_post("/console/p/{code}/definition", definition_submit)
