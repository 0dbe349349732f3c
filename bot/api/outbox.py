"""Delivery visibility for admins: the outbox and the channel endpoints (disabled ones included,
with the reason, so an admin sees why a unit is not being reached)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from bot import keys
from bot.api.common import API, Body, Call, Out, iso, ok
from config.secrets import redact_address
from store.db import transaction
from store.outbox import list_endpoints, list_outbox, outbox_stats

Status = Literal["pending", "sending", "sent", "failed", "dead", "cancelled"]


class OutboxQuery(Body):
    status: Status | None = None
    kind: str | None = Field(default=None, max_length=20, pattern=r"^[a-z_]+$")
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=10_000_000)


class OutboxRowOut(Out):
    id: int
    dedupe_key: str
    endpoint_id: int
    kind: str
    status: str
    attempt_count: int
    next_attempt_at: str
    last_outcome: str | None
    last_error: str
    created_at: str
    sent_at: str | None
    campaign_id: int | None
    link_id: int | None


class OutboxOut(Out):
    stats: dict[str, int]
    messages: list[OutboxRowOut]


class EndpointQuery(Body):
    disabled: bool | None = None


class EndpointOut(Out):
    id: int
    kind: str
    address: str
    name: str
    paused_until: str | None
    disabled_at: str | None
    disabled_reason: str
    consecutive_failures: int
    last_success_at: str | None


@API.op("GET", "/api/outbox", role="admin", tag="delivery", summary="发送队列 / outbox",
        query=OutboxQuery, data=OutboxOut, errors=(400,))  # fmt: skip
async def list_outbox_(request: web.Request, call: Call) -> web.Response:
    """Counts by status and the newest messages (payloads are not shown)."""
    q: OutboxQuery = call.query
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        stats = await outbox_stats(session, grants=call.grants)
        rows = await list_outbox(
            session, status=q.status, kind=q.kind, limit=q.limit, offset=q.offset, grants=call.grants
        )
    messages = [
        OutboxRowOut(
            id=m.id or 0,
            dedupe_key=m.dedupe_key,
            endpoint_id=m.endpoint_id,
            kind=m.kind,
            status=m.status,
            attempt_count=m.attempt_count,
            next_attempt_at=iso(m.next_attempt_at) or "",
            last_outcome=m.last_outcome,
            last_error=m.last_error,
            created_at=iso(m.created_at) or "",
            sent_at=iso(m.sent_at),
            campaign_id=m.campaign_id,
            link_id=m.link_id,
        )
        for m in rows
    ]
    return ok(OutboxOut(stats=stats, messages=messages))


@API.op("GET", "/api/endpoints", role="admin", tag="delivery", summary="发送端点 / channel endpoints",
        query=EndpointQuery, data={"type": "array", "items": {"$ref": "#/components/schemas/EndpointOut"}},
        errors=(400,))  # fmt: skip
async def list_endpoints_(request: web.Request, call: Call) -> web.Response:
    """Every endpoint; disabled ones carry ``disabled_at`` and the vendor's reason."""
    async with transaction(request.app[keys.SESSIONMAKER]) as session:
        rows = await list_endpoints(session, disabled=call.query.disabled, grants=call.grants)
    return ok(
        [
            EndpointOut(
                id=e.id or 0,
                kind=e.kind,
                address=redact_address(e.address),  # a webhook URL is a credential
                name=e.name,
                paused_until=iso(e.paused_until),
                disabled_at=iso(e.disabled_at),
                disabled_reason=e.disabled_reason,
                consecutive_failures=e.consecutive_failures,
                last_success_at=iso(e.last_success_at),
            )
            for e in rows
        ]
    )
