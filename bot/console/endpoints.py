"""Console: add a coordinator chat endpoint for a project (admins).

A finance-office admin names the chat (channel kind, the address that kind expects) and the NAME
of the environment variable holding its secret — never the secret itself. The rule is the one
summary schedules apply to ``params.endpoints`` (``store.outbox.add_coordinator_endpoint`` →
``store.schedules.check_params`` → ``config.definition.ChannelRef``); errors are shown at their
field. The endpoint belongs to the project (``channel_endpoint.project_id``), so it is listed in
the project's summary-schedule form at once. A variable this server does not have is reported on
the page (as the pre-launch check does) without refusing: it may be set before the first summary.
"""

from __future__ import annotations

from aiohttp import web

from bot import keys
from bot.console.auth import FORM, PROJECT, Viewer, page
from bot.console.render import render_page
from config.secrets import missing_env
from store.access import check_endpoint
from store.audit import record
from store.db import transaction
from store.errors import StoreError
from store.models import Project
from store.outbox import SECRET_ENV_KEYS, add_coordinator_endpoint

#: Per kind, what the address field expects and what the variable holds (Chinese phrases,
#: translated through the catalogue); the config key comes from ``SECRET_ENV_KEYS``.
KIND_HINTS: dict[str, tuple[str, str]] = {
    "wecom": ("群机器人名称（用于辨认，如“财政局协调群”）", "群机器人 webhook 的 key"),
    "dingtalk": ("机器人名称（用于辨认）", "机器人的 access_token"),
    "feishu": ("机器人名称（用于辨认）", "自定义机器人 webhook 地址末尾的 token"),
    "telegram": ("群聊 chat_id（如 -1001234567890）", "机器人的 token"),
    "slack": ("频道名称（用于辨认）", "Incoming Webhook 地址（地址本身就是密钥）"),
    "webhook": ("接收地址（以 http:// 或 https:// 开头）", "签名密钥（此变量须已在服务器上设置）"),
    "email": ("收件邮箱地址", "SMTP 密码（可留空：使用服务器的邮件设置）"),
}
KINDS: tuple[str, ...] = tuple(KIND_HINTS)
FIELDS = ("kind", "address", "env", "name")


def _page(request: web.Request, viewer: Viewer, project: Project, *, form: dict[str, str],
          errors: dict[str, str], added: object = None, unset: str = "", status: int = 200) -> web.Response:  # fmt: skip
    kind = form.get("kind") if form.get("kind") in KIND_HINTS else "wecom"
    return render_page(request, viewer, "endpoint_form.html", status=status, project=project, form=form,
                       errors=errors, kinds=KINDS, kind=kind, hints=KIND_HINTS, env_keys=SECRET_ENV_KEYS,
                       added=added, unset=unset)  # fmt: skip


@page("admin")
async def endpoint_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The empty form (``?kind=`` picks the label and hint), or the result of an addition
    (``?added=ID``: which endpoint, and whether its variable is set on this server)."""
    project: Project = request[PROJECT]
    added, unset = None, ""
    raw = request.query.get("added", "")
    if raw.isdigit() and len(raw) <= 10:
        async with request.app[keys.READ_SESSIONMAKER]() as session, session.begin():
            added = await check_endpoint(session, viewer.grants, int(raw))
        variable = next((v for k, v in (added.config or {}).items() if k.endswith("_env")), "")
        unset = variable if variable and missing_env(variable) else ""
    return _page(request, viewer, project, form={"kind": request.query.get("kind", "wecom")}, errors={},
                 added=added, unset=unset)  # fmt: skip


@page("admin")
async def endpoint_submit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    project: Project = request[PROJECT]
    form = {f: str(request[FORM].get(f, ""))[:600] for f in FIELDS}
    now = request.app[keys.CLOCK]()
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            row = await add_coordinator_endpoint(session, project_id=project.id or 0, grants=viewer.grants,
                                                 kind=form["kind"], address=form["address"],
                                                 env_name=form["env"], name=form["name"])  # fmt: skip
            await session.flush()
            # the variable's name is recorded, never a value (there is none here)
            await record(session, actor=viewer.actor, action="endpoint.add", now=now, project_id=project.id,
                         object=f"endpoint:{row.id}", detail={"kind": row.kind, "name": row.name,
                                                              "config": dict(row.config or {})})  # fmt: skip
    except StoreError as exc:
        field = exc.where if exc.where in FIELDS else "address"
        return _page(request, viewer, project, form=form, errors={field: exc.en if viewer.lang == "en" else exc.zh},
                     status=400)  # fmt: skip
    raise web.HTTPSeeOther(f"/console/p/{project.code}/schedules/endpoint?added={row.id}")


def routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/p/{code}/schedules/endpoint", endpoint_form)
    r.add_post("/console/p/{code}/schedules/endpoint", endpoint_submit)
