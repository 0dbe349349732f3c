"""How a schedule is shown (API, console, CLI, change log): its editable state and the next fire
times, secrets redacted. No database code, so ``jixiao schedule list`` on SQLite can show rows
read by :mod:`store.lite` without importing the ORM; :mod:`store.schedules` re-exports these."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from config.secrets import redact_channel
from store.cron import next_fire_times

if TYPE_CHECKING:
    from store.lite import ScheduleRow
    from store.models import Schedule


def shown_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` as any API/CLI reader may see them: endpoint addresses that are credentials
    (vendor webhook URLs) and secret-looking config values redacted (``config.secrets``)."""
    out = dict(params or {})
    if isinstance(out.get("endpoints"), list):
        out["endpoints"] = [redact_channel(ep) if isinstance(ep, dict) else ep for ep in out["endpoints"]]
    return out


def shown_snapshot(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """A change-log before/after document with its params shown as :func:`shown_params` does."""
    if not isinstance(doc, dict) or "params" not in doc:
        return doc
    return {**doc, "params": shown_params(doc["params"])}


def snapshot(schedule: Schedule | ScheduleRow, project_code: str | None = None) -> dict[str, Any]:
    """The editable state of a schedule as JSON (used for the change log's before/after)."""
    return {
        "kind": schedule.kind,
        "project_id": schedule.project_id,
        **({"project": project_code} if project_code else {}),
        "campaign_id": schedule.campaign_id,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "grace_seconds": schedule.grace_seconds,
        "params": dict(schedule.params or {}),
        "version": schedule.version,
    }


def schedule_json(
    schedule: Schedule | ScheduleRow, code: str, *, now: datetime, count: int = 5
) -> dict[str, Any]:
    """API/CLI view: the fields plus the next ``count`` fire times in the schedule's timezone
    (none while paused)."""
    nxt = next_fire_times(schedule.cron, schedule.timezone, now=now, count=count) if schedule.enabled else []
    return {
        "id": schedule.id,
        **shown_snapshot(snapshot(schedule, code)),  # type: ignore[dict-item]
        "created_at": schedule.created_at.isoformat(),
        "updated_at": schedule.updated_at.isoformat(),
        "next_fire_times": [t.isoformat() for t in nxt],
    }
