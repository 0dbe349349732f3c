"""Facts from plain inputs: fund ratios in exact fen, satisfaction by share and Likert."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from scoring import FACT_SOURCES, fund_facts, satisfaction_fact, satisfaction_from_frame
from tests.scoring._build import SATISFIED, SCALE, D

WAN = 1_000_000  # fen per 万元
ARRIVALS = [(date(2023, 2, 13), 50 * WAN), (date(2023, 4, 23), 30 * WAN)]
PAID = [(date(2023, 2, 20), 40 * WAN), (date(2023, 6, 30), 20 * WAN)]


def test_fact_sources_list_every_computed_fact_and_entered() -> None:
    assert FACT_SOURCES == (
        "funds.arrival_rate",
        "funds.execution_rate",
        "funds.control_rate",
        "funds.completion_date",
        "survey.satisfaction",
        "entered",
    )


@pytest.mark.parametrize(
    ("denominator", "rate", "detail"),
    [
        pytest.param(
            "arrived",
            "0.75",
            "预算执行率=实际支出/实际到位资金=60.00万元/80.00万元",
            id="execution over arrived money by default",
        ),
        pytest.param(
            "budget",
            "0.6",
            "预算执行率=实际支出/预算资金=60.00万元/100.00万元",
            id="execution over the budget when asked",
        ),
    ],
)
def test_execution_rate_records_its_denominator(denominator: str, rate: str, detail: str) -> None:
    facts = fund_facts(100 * WAN, ARRIVALS, PAID, execution_denominator=denominator)  # type: ignore[arg-type]
    execution = facts["funds.execution_rate"]
    assert execution.number == D(rate) and execution.unit == "%"
    assert execution.detail == detail


def test_fund_facts_compute_arrival_control_and_completion() -> None:
    facts = fund_facts(100 * WAN, ARRIVALS, PAID)
    assert set(facts) == {
        "funds.arrival_rate",
        "funds.execution_rate",
        "funds.control_rate",
        "funds.completion_date",
    }
    assert facts["funds.arrival_rate"].number == D("0.8")
    assert (
        facts["funds.arrival_rate"].detail
        == "资金到位率=实际到位资金/预算资金=80.00万元/100.00万元，共2笔，最后到位2023-04-23"
    )
    assert facts["funds.control_rate"].number == D("0.6")  # paid defaults to disbursed
    assert facts["funds.completion_date"].day == date(2023, 6, 30)


def test_paid_amount_overrides_disbursed_for_the_control_rate() -> None:
    control = fund_facts(100 * WAN, ARRIVALS, PAID, paid_fen=70 * WAN)["funds.control_rate"]
    assert control.number == D("0.7")
    assert control.detail == "预算控制率=实际支付/预算资金=70.00万元/100.00万元"


def test_ratios_stay_exact_and_are_not_rounded_into_success() -> None:
    # 99.999 % executed must not become 100 % before the rule sees it
    facts = fund_facts(100_000, [(date(2023, 1, 1), 100_000)], [(date(2023, 1, 2), 99_999)])
    assert facts["funds.execution_rate"].number == Decimal("0.99999")


def test_reference_amounts_display_exactly_in_wan() -> None:
    budget = 2_244_840_000
    facts = fund_facts(budget, [(date(2023, 2, 13), budget)], [(date(2023, 7, 13), 2_244_839_999)])
    assert facts["funds.execution_rate"].detail == "预算执行率=实际支出/实际到位资金=2244.84万元/2244.84万元"
    assert facts["funds.execution_rate"].number < 1  # shown as 2244.84 but one fen short, and scored so


@pytest.mark.parametrize(
    "budget", [pytest.param(0, id="a zero budget"), pytest.param(-1, id="a negative budget")]
)
def test_a_budget_that_is_not_positive_is_rejected(budget: int) -> None:
    with pytest.raises(ValueError, match="budget"):
        fund_facts(budget, ARRIVALS, PAID)


def test_float_amounts_are_rejected() -> None:
    with pytest.raises(TypeError, match="integer fen"):
        fund_facts(100 * WAN, [(date(2023, 1, 1), 1.5)], PAID)  # type: ignore[list-item]


def test_nothing_arrived_yet_leaves_execution_missing_rather_than_dividing_by_zero() -> None:
    facts = fund_facts(100 * WAN, [], [])
    assert facts["funds.arrival_rate"].number == 0
    assert facts["funds.execution_rate"].number is None
    assert "实际到位资金为0" in facts["funds.execution_rate"].detail
    assert facts["funds.completion_date"].day is None


def test_disbursements_as_a_frame_match_the_tuples() -> None:
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(["2023-02-20", "2023-06-30"]),
            "amount_fen": np.array([40 * WAN, 20 * WAN], dtype="int64"),
        }
    )
    assert fund_facts(100 * WAN, ARRIVALS, frame) == fund_facts(100 * WAN, ARRIVALS, PAID)


def test_a_frame_with_float_amounts_is_rejected() -> None:
    frame = pd.DataFrame({"day": [date(2023, 2, 20)], "amount_fen": [40.0 * WAN]})
    with pytest.raises(TypeError, match="integer fen"):
        fund_facts(100 * WAN, ARRIVALS, frame)


# --------------------------------------------------------------------------- satisfaction

REFERENCE = {"非常满意": 12, "比较满意": 4}


@pytest.mark.parametrize(
    ("method", "satisfied", "value"),
    [
        pytest.param("share", SATISFIED, "1", id="share of the reference case is 100 percent"),
        pytest.param("likert", SATISFIED, "0.95", id="likert of the reference case is 95.0 percent"),
        pytest.param("share", ("非常满意",), "0.75", id="top box only of the reference case is 75 percent"),
    ],
)
def test_satisfaction_methods_on_the_reference_case(
    method: str, satisfied: tuple[str, ...], value: str
) -> None:
    fact = satisfaction_fact(REFERENCE, scale=SCALE, satisfied=satisfied, method=method)  # type: ignore[arg-type]
    assert fact.number == D(value) and fact.unit == "%"
    assert fact.detail.startswith("非常满意12份、比较满意4份，共16份有效问卷；口径：")


def test_no_responses_give_no_number() -> None:
    fact = satisfaction_fact({}, scale=SCALE, satisfied=SATISFIED, method="share")
    assert (fact.number, fact.detail) == (None, "无有效问卷")


def test_coverage_is_valid_over_invited() -> None:
    fact = satisfaction_fact(REFERENCE, scale=SCALE, satisfied=SATISFIED, method="share", invited=121)
    assert fact.coverage == D(16) / D(121)
    assert fact.detail.endswith("；邀请121家，覆盖率13.22%")


def test_coverage_counts_units_when_a_unit_returns_several_questionnaires() -> None:
    counts = {"非常满意": 300, "比较满意": 100}
    fact = satisfaction_fact(
        counts, scale=SCALE, satisfied=SATISFIED, method="share", invited=121, responded=60
    )
    assert (fact.number, fact.coverage) == (D(1), D(60) / D(121))
    with pytest.raises(ValueError, match="respondents"):
        satisfaction_fact(
            counts, scale=SCALE, satisfied=SATISFIED, method="share", invited=121, responded=122
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"counts": {"满意": 3}}, "'满意'", id="an unknown answer label is named"),
        pytest.param({"satisfied": ("很满意",)}, "'很满意'", id="an unknown satisfied label is named"),
        pytest.param(
            {"method": "likert", "weights": (100, 80)}, "weights", id="likert weights must match the scale"
        ),
        pytest.param({"counts": {"一般": -1}}, "negative", id="negative counts are rejected"),
        pytest.param({"invited": 10}, "invited", id="more answers than invitations is rejected"),
    ],
)
def test_bad_survey_inputs_raise(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"counts": REFERENCE, "scale": SCALE, "satisfied": SATISFIED, "method": "share"}
    args.update(kwargs)
    counts = args.pop("counts")
    with pytest.raises(ValueError, match=message):
        satisfaction_fact(counts, **args)  # type: ignore[arg-type]


def test_a_million_responses_aggregate_through_a_categorical() -> None:
    n = {"非常满意": 600_000, "比较满意": 250_000, "一般": 100_000, "不太满意": 40_000, "非常不满意": 10_000}
    codes = np.repeat(np.arange(5, dtype="int8"), list(n.values()))
    frame = pd.DataFrame({"option": pd.Categorical.from_codes(codes, categories=list(SCALE))})
    assert len(frame) == 1_000_000
    share = satisfaction_from_frame(frame, scale=SCALE, satisfied=SATISFIED, method="share")
    likert = satisfaction_from_frame(frame, scale=SCALE, satisfied=SATISFIED, method="likert")
    assert share.number == D("0.85")
    # (600000·100 + 250000·80 + 100000·60 + 40000·40 + 10000·20) / (100 · 1000000) = 0.878
    assert likert.number == D("0.878")
    assert share == satisfaction_fact(n, scale=SCALE, satisfied=SATISFIED, method="share")


def test_a_string_response_column_drops_blanks_and_names_unknown_labels() -> None:
    frame = pd.DataFrame({"option": ["非常满意", "比较满意", None, "一般"]})
    fact = satisfaction_from_frame(frame, scale=SCALE, satisfied=SATISFIED, method="share")
    assert fact.number == D(2) / D(3)
    bad = pd.DataFrame({"option": ["非常满意", "超级满意"]})
    with pytest.raises(ValueError, match="超级满意"):
        satisfaction_from_frame(bad, scale=SCALE, satisfied=SATISFIED, method="share")
