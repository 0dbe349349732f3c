"""The Chinese wording the documents compute: counts, dates, months."""

from __future__ import annotations

from datetime import date

from bot.documents.text import cn_count, cn_dates, cn_months, sentence


def test_counts_read_as_a_report_writes_them() -> None:
    assert [cn_count(n) for n in (0, 4, 10, 12, 20, 35, 99, 100, 121)] == [
        "零", "四", "十", "十二", "二十", "三十五", "九十九", "100", "121",
    ]  # fmt: skip


def test_dates_name_the_year_once_per_year() -> None:
    days = [date(2023, 2, 13), date(2023, 2, 14), date(2023, 12, 31), date(2024, 1, 2)]
    assert cn_dates(days) == "2023年2月13日、2月14日、12月31日、2024年1月2日"


def test_months_are_distinct_and_ordered() -> None:
    assert cn_months([date(2023, 7, 18), date(2023, 2, 20), date(2023, 2, 21)]) == "2月、7月"
    assert cn_months([date(2023, 12, 1), date(2024, 1, 5)]) == "2023年12月、2024年1月"


def test_sentences_end_with_one_full_stop() -> None:
    assert sentence("达成年度指标") == "达成年度指标。"
    assert sentence("达成年度指标。") == "达成年度指标。" and sentence("") == ""
