"""The admin JSON API under ``/api/`` (bearer tokens, roles admin/coordinator) and its OpenAPI
document at ``/api/openapi.json``.

Resources live in their own modules (projects, units, imports, campaigns, responses, scores,
documents, outbox, auth); each declares its operations on the shared registry ``bot.api.common.API``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from bot.api.common import API, METHODS, documented_methods, mounted_operations, wrap

_DOCUMENT = web.AppKey("api_openapi", dict)


def _load_resources() -> None:
    # Imported for their side effect: registering operations on API (once per process).
    from bot.api import auth, campaigns, chats, documents, imports, outbox, projects, responses, scores, units  # noqa: F401


def registered_models() -> list[type[BaseModel]]:
    """Response models referenced by ``$ref`` from hand-written list schemas."""
    from bot.api import campaigns, chats, outbox, projects, responses, scores, units

    return [
        projects.ProjectOut,
        units.UnitOut,
        units.DisbursementOut,
        campaigns.CampaignOut,
        responses.ResponseOut,
        responses.ConfirmationOut,
        scores.SnapshotSummaryOut,
        scores.OverrideOut,
        outbox.EndpointOut,
        chats.ChatOut,
    ]


async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document (public: it holds no data). Built on first request from the
    operations actually mounted, so features set up after this one (schedules) are included."""
    from bot.api.openapi import build_document

    cache = request.app[_DOCUMENT]
    if "doc" not in cache:
        cache["doc"] = build_document(mounted_operations(request.app))
    return web.json_response(cache["doc"])


def setup(app: web.Application, *, start_workers: bool) -> None:
    """Register every API route and build the OpenAPI document once."""
    del start_workers  # the API has no background work
    _load_resources()
    for op in API.operations:
        app.router.add_route(op.method, op.path, wrap(op), name=op.operation_id)
    app.router.add_get("/api/openapi.json", openapi_document, name="openapi")
    app[_DOCUMENT] = {}
    app[METHODS] = {}
    app.middlewares.append(documented_methods)


def operations() -> list[Any]:
    _load_resources()
    return list(API.operations)
