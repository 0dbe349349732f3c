"""Times a person reads: always in the project's timezone, with the zone's name.

The one rule for every message and page a person sees (invitations, reminders, summaries, the unit
page, the report): ``2026-12-15 18:00（北京时间）``, never a UTC clock time that a reader in China has to
convert. Stored values stay timezone-aware UTC; this only formats them.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

#: Names people use for the zones a Chinese project is likely to be configured with; any other zone is
#: shown by its IANA name, which is at least unambiguous.
ZONE_NAMES = {
    "Asia/Shanghai": "北京时间",
    "Asia/Chongqing": "北京时间",
    "Asia/Harbin": "北京时间",
    "PRC": "北京时间",
    "Asia/Urumqi": "乌鲁木齐时间",
    "Asia/Hong_Kong": "香港时间",
    "Asia/Macau": "澳门时间",
    "Asia/Taipei": "台北时间",
    "UTC": "UTC",
    "Etc/UTC": "UTC",
}


def zone_name(tz: str | ZoneInfo) -> str:
    """What to call `tz` in text people read ("北京时间" for Asia/Shanghai)."""
    key = tz.key if isinstance(tz, ZoneInfo) else str(tz)
    return ZONE_NAMES.get(key, key)


def local_time(value: datetime, tz: str | ZoneInfo, *, seconds: bool = False) -> str:
    """`value` (aware) as ``YYYY-MM-DD HH:MM（zone name）`` in `tz`; ``seconds`` adds ``:SS``.

    A naive datetime is refused: guessing its zone is exactly the mistake this function exists to stop.
    """
    if value.tzinfo is None:
        raise ValueError(f"local_time needs an aware datetime, got naive {value!r}")
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    text = value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text}（{zone_name(zone)}）"
