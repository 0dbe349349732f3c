"""Standard 5-field cron expressions: validation with bilingual messages, and fire times.

We validate the expression ourselves (APScheduler's messages are English-only and do not name the
field) and then build an APScheduler ``CronTrigger`` from it. Two traps are handled here once:

- APScheduler 3.x numbers weekdays from Monday = 0, crontab from Sunday = 0 (7 is Sunday too).
  The day-of-week field is therefore expanded to explicit day names before it reaches APScheduler.
- crontab ORs day-of-month and day-of-week when both are restricted; APScheduler ANDs them. Rather
  than silently run on different days than the admin expects, such an expression is rejected.

Fire times are computed in the schedule's IANA timezone and returned as aware datetimes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

__all__ = [
    "CronError",
    "build_trigger",
    "last_fire_at_or_before",
    "next_fire_times",
    "validate_cron",
    "validate_timezone",
]


@dataclass(frozen=True)
class _Field:
    number: int
    zh: str
    en: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] ↔ value low + i


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
FIELDS = (
    _Field(1, "分钟", "minute", 0, 59),
    _Field(2, "小时", "hour", 0, 23),
    _Field(3, "日", "day of month", 1, 31),
    _Field(4, "月", "month", 1, 12, _MONTHS),
    _Field(5, "星期", "day of week", 0, 7, _DAYS),
)
_ITEM = re.compile(r"^(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


class CronError(ValueError):
    """A bad cron expression or timezone; ``zh``/``en`` name the field and what is wrong."""

    def __init__(self, zh: str, en: str) -> None:
        self.zh, self.en = zh, en
        super().__init__(f"{zh} / {en}")


def _fail(field: _Field, zh: str, en: str) -> CronError:
    return CronError(f"第{field.number}段 {field.zh} {zh}", f"field {field.number} ({field.en}) {en}")


def _value(field: _Field, token: str) -> int:
    if token.isdigit():
        value = int(token)
    elif token in field.names:
        value = field.low + field.names.index(token)
    else:
        raise _fail(field, f"无法识别 “{token}”", f"cannot read {token!r}")
    if not field.low <= value <= field.high:
        raise _fail(
            field,
            f"超出范围 {field.low}-{field.high}（“{token}”）",
            f"out of range {field.low}-{field.high} ({token!r})",
        )
    return value


def _expand(field: _Field, text: str) -> set[int]:
    """The set of values a field allows (validates every item)."""
    if text == "":
        raise _fail(field, "为空", "is empty")
    values: set[int] = set()
    for item in text.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise _fail(field, f"格式有误 “{item}”", f"malformed item {item!r}")
        step = int(m["step"]) if m["step"] else 1
        if step == 0:
            raise _fail(field, f"步长不能为 0（“{item}”）", f"step must be positive ({item!r})")
        if m["range"] == "*":
            low, high = field.low, field.high
        elif "-" in m["range"]:
            a, b = m["range"].split("-")
            low, high = _value(field, a), _value(field, b)
            if low > high:
                raise _fail(
                    field, f"范围起点大于终点（“{item}”）", f"range start is after its end ({item!r})"
                )
        else:
            low = _value(field, m["range"])
            high = field.high if m["step"] else low
        values.update(range(low, high + 1, step))
    return values


@dataclass(frozen=True)
class ParsedCron:
    """A validated expression: the original fields and the weekday set (0 = Sunday)."""

    minute: str
    hour: str
    day: str
    month: str
    weekdays: frozenset[int]
    dow_restricted: bool


def validate_cron(expr: str) -> ParsedCron:
    """Parse and validate a 5-field crontab expression; raises :class:`CronError` naming the field."""
    text = " ".join(str(expr).lower().split())
    parts = text.split(" ") if text else []
    if len(parts) != 5:
        raise CronError(
            f"cron 表达式应有 5 段（分 时 日 月 星期），实际 {len(parts)} 段",
            f"a cron expression has 5 fields (minute hour day month weekday), got {len(parts)}",
        )
    sets = [_expand(f, p) for f, p in zip(FIELDS, parts, strict=True)]
    day_restricted = parts[2] != "*"
    dow_restricted = parts[4] != "*"
    if day_restricted and dow_restricted:
        raise CronError(
            "第3段 日 与第5段 星期 不能同时限定（标准 cron 按“或”处理，含义易误解），请只限定其一",
            "fields 3 (day of month) and 5 (day of week) cannot both be restricted "
            "(cron ORs them, which is easy to misread); restrict only one",
        )
    weekdays = frozenset(d % 7 for d in sets[4])
    return ParsedCron(parts[0], parts[1], parts[2], parts[3], weekdays, dow_restricted)


def validate_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises :class:`CronError` if unknown."""
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(
            f"未知时区 “{name}”（应为 IANA 名称，如 Asia/Shanghai）",
            f"unknown timezone {name!r} (use an IANA name such as Asia/Shanghai)",
        ) from exc


def build_trigger(expr: str, timezone: str) -> CronTrigger:
    """An APScheduler trigger equivalent to the crontab expression, in ``timezone``."""
    parsed = validate_cron(expr)
    tz = validate_timezone(timezone)
    # APScheduler day names are unambiguous (its numbers start at Monday).
    dow = ",".join(_DAYS[d] for d in sorted(parsed.weekdays)) if parsed.dow_restricted else "*"
    return CronTrigger(
        minute=parsed.minute,
        hour=parsed.hour,
        day=parsed.day,
        month=parsed.month,
        day_of_week=dow,
        timezone=tz,
    )


def next_fire_times(expr: str, timezone: str, *, now: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` fire times strictly after ``now``, aware, in the schedule's timezone."""
    trigger = build_trigger(expr, timezone)
    out: list[datetime] = []
    previous: datetime | None = None
    start = now + timedelta(microseconds=1)
    while len(out) < count:
        nxt = trigger.get_next_fire_time(previous, start if previous is None else previous)
        if nxt is None:
            break
        out.append(nxt)
        previous = nxt
    return out


#: Windows searched backwards for the latest fire; growing so a minutely job costs a few steps
#: and a yearly one still terminates.
_BACK = (
    timedelta(minutes=2),
    timedelta(hours=2),
    timedelta(days=2),
    timedelta(days=40),
    timedelta(days=400),
    timedelta(days=3000),
)


def last_fire_at_or_before(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The latest fire time ``≤ now`` (None if there was none in the last ~8 years).

    APScheduler does not pass the scheduled time to a job, so a job derives its fire time from
    the trigger and the clock; a job that starts a few milliseconds late still maps to its fire.
    """
    for back in _BACK:
        first = trigger.get_next_fire_time(None, now - back)
        if first is None or first > now:
            continue
        current = first
        while True:
            nxt = trigger.get_next_fire_time(current, current)
            if nxt is None or nxt > now:
                return current
            current = nxt
    return None


# ------------------------------------------------------------------------------ as a pattern

#: What ``str.split()`` treats as whitespace (the separators :func:`validate_cron` accepts).
_SPACE = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace())


def _numbers(lo: int, hi: int) -> str:
    """Regex alternatives for the decimal numbers lo…hi (0 ≤ lo ≤ hi ≤ 99), without leading
    zeros (the caller allows those)."""
    out = []
    for tens in range(lo // 10, hi // 10 + 1):
        a = lo % 10 if tens == lo // 10 else 0
        b = hi % 10 if tens == hi // 10 else 9
        digit = str(a) if a == b else f"[{a}-{b}]"
        out.append(("" if tens == 0 else str(tens)) + digit)
    return "|".join(out)


def _name(name: str) -> str:
    return "".join(f"[{c}{c.upper()}]" for c in name)


def _tokens(field: _Field, lo: int, hi: int) -> str:
    """A value token (digits, leading zeros allowed, or a name in any case) worth lo…hi."""
    names = [_name(n) for i, n in enumerate(field.names) if lo <= field.low + i <= hi]
    return "|".join([f"0*(?:{_numbers(lo, hi)})", *names])


def _field_pattern(field: _Field) -> str:
    one = _tokens(field, field.low, field.high)
    # A range a-b is valid only when a ≤ b: one alternative per start value.
    ranges = "|".join(
        f"(?:{_tokens(field, a, a)})-(?:{_tokens(field, a, field.high)})"
        for a in range(field.low, field.high + 1)
    )
    item = f"(?:\\*|{ranges}|{one})(?:/0*[1-9][0-9]*)?"
    return f"{item}(?:,{item})*"


def cron_pattern() -> str:
    """A regular expression (ECMA-262 and Python) matching exactly the expressions
    :func:`validate_cron` accepts: five fields separated by whitespace, any case, every value in
    range, ranges ascending, steps positive, and day of month or day of week left as ``*``. The
    API publishes it in its OpenAPI document, so the document and the check cannot disagree."""
    f = [_field_pattern(field) for field in FIELDS]
    sp, ws = f"[{_SPACE}]+", f"[{_SPACE}]*"
    tail = f"(?:\\*{sp}{f[3]}{sp}(?:{f[4]})|(?:{f[2]}){sp}{f[3]}{sp}\\*)"
    return f"^{ws}(?:{f[0]}){sp}(?:{f[1]}){sp}{tail}{ws}$"
