"""Quiet hours: the local-time window in which no message to a unit or a chat should arrive.

Pure (no database): used by ``store.campaigns.launch_campaign`` for invitations and by the
scheduler jobs for reminders and summaries (``scheduler.jobs`` re-exports :func:`quiet_until`),
so it lives in the store, which both may import.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _hhmm(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def quiet_until(now: datetime, quiet_hours: Iterable[str] | None, tz: ZoneInfo) -> datetime | None:
    """If ``now`` (aware) falls inside the quiet hours ``[start, end)`` ("HH:MM" local time in
    ``tz``, may wrap midnight), the first allowed minute as an aware UTC datetime; otherwise None.

    An empty window (``start == end``) or no quiet hours at all never defers.
    """
    if not quiet_hours:
        return None
    start_s, end_s = list(quiet_hours)
    start, end = _hhmm(start_s), _hhmm(end_s)
    if start == end:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz).astimezone(UTC)
