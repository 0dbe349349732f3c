"""Chinese wording shared by the documents: counts, dates, months, paragraphs.

Pure functions; every sentence the documents compute is built from these, so a date or a count
reads the same in the 自评表 and the 评价报告.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

_DIGITS = "零一二三四五六七八九"


def cn_count(n: int) -> str:
    """A count in Chinese numerals as 公文 write small counts: 4 → 四, 10 → 十, 12 → 十二,
    20 → 二十, 35 → 三十五. From 100 on (and below 0) Arabic digits are kept (121 → 121)."""
    if n < 0 or n >= 100:
        return str(n)
    if n < 10:
        return _DIGITS[n]
    tens, ones = divmod(n, 10)
    head = "十" if tens == 1 else f"{_DIGITS[tens]}十"
    return head + (_DIGITS[ones] if ones else "")


def cn_date(day: date, *, with_year: bool = True) -> str:
    """``2023-02-13`` → ``2023年2月13日`` (``2月13日`` without the year)."""
    text = f"{day.month}月{day.day}日"
    return f"{day.year}年{text}" if with_year else text


def cn_dates(days: Sequence[date]) -> str:
    """Dates listed as a report writes them: the year once per year, joined with 、
    (``2023年2月13日、2月14日、4月23日``)."""
    out: list[str] = []
    year: int | None = None
    for day in days:
        out.append(cn_date(day, with_year=day.year != year))
        year = day.year
    return "、".join(out)


def cn_months(days: Iterable[date]) -> str:
    """Distinct months in order, joined with 、: ``2月、4月、6月、7月`` (the year is added when
    the dates span several years)."""
    seen: list[tuple[int, int]] = []
    for day in sorted(days):
        if (day.year, day.month) not in seen:
            seen.append((day.year, day.month))
    several = len({y for y, _ in seen}) > 1
    return "、".join(f"{y}年{m}月" if several else f"{m}月" for y, m in seen)


def paragraphs(text: str) -> list[str]:
    """Paragraphs of a narrative text: split on line breaks, blank lines dropped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def sentence(text: str) -> str:
    """``text`` ending with a full stop (。！？；：or a closing quote/bracket after one are kept)."""
    text = text.strip()
    if not text or text[-1] in "。！？；…" or text.endswith(("。）", "。”")):
        return text
    return text + "。"


def local_time(moment: datetime, timezone: str) -> str:
    """An aware instant in the project's timezone, named: ``2026年11月30日 17:31（Asia/Shanghai）``."""
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{cn_date(local.date())} {local:%H:%M}（{timezone}）"
