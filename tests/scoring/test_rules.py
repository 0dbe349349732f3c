"""Every rule type with hand-computed scores, boundaries and contradictions.

Scores go through ``score_indicator`` so that what is checked is the rounded score the table
shows (policy: 2 decimals, half up, unless stated). S = weight, A = actual, T = target.
"""

from __future__ import annotations

from datetime import date

import pytest

from scoring.engine import score_indicator
from scoring.facts import satisfaction_fact
from scoring.model import (
    Actual,
    Band,
    BinaryRule,
    ChecklistRule,
    CheckPoint,
    DeductionRule,
    IndicatorSpec,
    NotApplicableRule,
    ProportionalRule,
    RatingRule,
    ReverseRule,
    SatisfactionRule,
    Target,
    TieredRule,
    TimelinessRule,
)
from scoring.rules import RULES, apply_rule
from tests.scoring._build import SATISFIED, SCALE, D, due, ge, le, num, policy, spec

PCT = "%"
DUE = date(2023, 12, 31)
START = date(2023, 1, 1)  # planned duration START → DUE is 364 days

RATE_BANDS = TieredRule(
    on="rate",
    bands=(
        Band(min=D("0.9"), ratio=D(1)),
        Band(min=D("0.8"), max=D("0.9"), ratio=D("0.8")),
        Band(min=D("0.6"), max=D("0.8"), ratio=D("0.5")),
        Band(max=D("0.6"), ratio=D(0)),
    ),
)
VALUE_BANDS = TieredRule(
    on="value",
    bands=(
        Band(min=D(0), max=D("0.1"), ratio=D(1)),
        Band(min=D("0.1"), max=D("0.2"), ratio=D("0.5")),
        Band(min=D("0.2"), ratio=D(0)),
    ),
)


def points(*met: bool, weights: tuple[int, ...] | None = None) -> Actual:
    ws = weights or (1,) * len(met)
    return Actual(
        checklist=tuple(
            CheckPoint(text=f"要点{i + 1}", met=m, weight=D(w))
            for i, (m, w) in enumerate(zip(met, ws, strict=True))
        )
    )


def survey(counts: dict[str, int], method: str = "share", satisfied: tuple[str, ...] = SATISFIED) -> Actual:
    return satisfaction_fact(counts, scale=SCALE, satisfied=satisfied, method=method)  # type: ignore[arg-type]


REFERENCE_COUNTS = {"非常满意": 12, "比较满意": 4}

CASES = [
    # ---- proportional: A ≥ T → S, else S·A/T
    pytest.param(
        spec(ProportionalRule(), target=ge(7, "个")),
        num(7, "个"),
        "5.00",
        "1.0000",
        id="proportional at exactly the target earns full marks",
    ),
    pytest.param(
        spec(ProportionalRule(), target=ge(7, "个")),
        num(6, "个"),
        "4.29",
        "0.8571",
        id="proportional just below target scores 5 x 6 over 7",
    ),
    pytest.param(
        spec(ProportionalRule(), target=ge(7, "个")),
        num(0, "个"),
        "0.00",
        "0.0000",
        id="proportional with zero actual scores zero",
    ),
    pytest.param(
        spec(ProportionalRule(), target=ge(0, "个")),
        num(0, "个"),
        "5.00",
        None,
        id="proportional zero target is met by zero actual and has no completion ratio",
    ),
    pytest.param(
        spec(ProportionalRule(), target=ge(7, "个")),
        num(14, "个"),
        "5.00",
        "2.0000",
        id="proportional over achievement is capped at full marks",
    ),
    pytest.param(
        spec(ProportionalRule(cap=False), target=ge(7, "个")),
        num(14, "个"),
        "10.00",
        "2.0000",
        id="uncapped proportional over achievement earns bonus points",
    ),
    pytest.param(
        spec(ProportionalRule(), target=ge("0.05", PCT)),
        num("-0.03", PCT),
        "0.00",
        "-0.6000",
        id="proportional negative actual scores zero",
    ),
    pytest.param(
        spec(ProportionalRule(), target=ge(1, PCT)),
        num("0.955", PCT),
        "4.78",
        "0.9550",
        id="proportional rate 95.5 percent scores 4.775 rounded half up",
    ),
    pytest.param(
        spec(ProportionalRule(), target=Target(op="=", value=D(3), unit="个")),
        num(3, "个"),
        "5.00",
        "1.0000",
        id="proportional with an equals target reads as at least",
    ),
    # ---- reverse: A ≤ T → S; ratio S·T/A; per_point deduction
    pytest.param(
        spec(ReverseRule(), target=le(1, PCT), weight=3),
        num(1, PCT),
        "3.00",
        "1.0000",
        id="reverse ratio at exactly the target earns full marks",
    ),
    pytest.param(
        spec(ReverseRule(), target=le(1, PCT), weight=3),
        num(0, PCT),
        "3.00",
        "0.0000",
        id="reverse ratio with zero actual earns full marks",
    ),
    pytest.param(
        spec(ReverseRule(), target=le(1, PCT), weight=3),
        num("1.2", PCT),
        "2.50",
        "1.2000",
        id="reverse ratio 20 percent over scores 3 x 1 over 1.2",
    ),
    pytest.param(
        spec(ReverseRule(), target=le(0, "万元"), weight=3),
        num(5, "万元"),
        "0.00",
        None,
        id="reverse ratio over a zero target scores zero",
    ),
    pytest.param(
        spec(ReverseRule(mode="per_point"), target=le(1, PCT), weight=6),
        num("1.03", PCT),
        "3.00",
        "1.0300",
        id="reverse per point deducts one point per percentage point over",
    ),
    pytest.param(
        spec(ReverseRule(mode="per_point"), target=le(1, PCT), weight=6),
        num("1.035", PCT),
        "3.00",
        "1.0350",
        id="reverse per point ignores a partial percentage point",
    ),
    pytest.param(
        spec(ReverseRule(mode="per_point"), target=le(1, PCT), weight=6),
        num("1.10", PCT),
        "0.00",
        "1.1000",
        id="reverse per point deducts down to zero and no further",
    ),
    pytest.param(
        spec(ReverseRule(mode="per_point", per_point=D("0.5")), target=le(1, PCT), weight=6),
        num("1.04", PCT),
        "4.00",
        "1.0400",
        id="reverse per point at half a point per percentage point",
    ),
    pytest.param(
        spec(ReverseRule(mode="per_point"), target=le(100, "万元"), weight=6),
        num(103, "万元"),
        "3.00",
        "1.0300",
        id="reverse per point on a non rate counts units over",
    ),
    # ---- tiered: first band with min <= x < max
    pytest.param(
        spec(RATE_BANDS, target=ge(100, "个")),
        num(90, "个"),
        "5.00",
        "0.9000",
        id="tiered rate at a lower bound falls in the upper band",
    ),
    pytest.param(
        spec(RATE_BANDS, target=ge(100, "个")),
        num("89.99", "个"),
        "4.00",
        "0.8999",
        id="tiered rate just below a bound falls in the lower band",
    ),
    pytest.param(
        spec(RATE_BANDS, target=ge(100, "个")),
        num(60, "个"),
        "2.50",
        "0.6000",
        id="tiered rate at 60 percent earns half marks",
    ),
    pytest.param(
        spec(RATE_BANDS, target=ge(100, "个")),
        num(59, "个"),
        "0.00",
        "0.5900",
        id="tiered rate below the last cut off earns nothing",
    ),
    pytest.param(
        spec(VALUE_BANDS, weight=3),
        num("0.1", PCT),
        "1.50",
        None,
        id="tiered value at 10 percent falls in the second band",
    ),
    pytest.param(
        spec(VALUE_BANDS, weight=3),
        num("0", PCT),
        "3.00",
        None,
        id="tiered value at zero falls in the first band",
    ),
    pytest.param(
        spec(VALUE_BANDS, weight=3),
        num("-0.01", PCT),
        "0.00",
        None,
        id="tiered value outside every band earns nothing",
    ),
    # ---- deduction: count and shortfall_pct, floored
    pytest.param(
        spec(DeductionRule(per_unit=D(1)), weight=4),
        num(0, "例"),
        "4.00",
        None,
        id="deduction with no violations earns full marks",
    ),
    pytest.param(
        spec(DeductionRule(per_unit=D(1)), weight=4),
        num(2, "例"),
        "2.00",
        None,
        id="deduction of one point per violation",
    ),
    pytest.param(
        spec(DeductionRule(per_unit=D(1)), weight=4), num(5, "例"), "0.00", None, id="deduction stops at zero"
    ),
    pytest.param(
        spec(DeductionRule(per_unit=D(1), floor=D(1)), weight=4),
        num(5, "例"),
        "1.00",
        None,
        id="deduction stops at the floor",
    ),
    pytest.param(
        spec(DeductionRule(per_unit=D("0.5")), weight=4),
        num(3),
        "2.50",
        None,
        id="deduction of half a point per violation",
    ),
    pytest.param(
        spec(DeductionRule(basis="shortfall_pct", per_unit=D(1), step=D(3)), target=ge(100, "个")),
        num(100, "个"),
        "5.00",
        "1.0000",
        id="shortfall deduction at target deducts nothing",
    ),
    pytest.param(
        spec(DeductionRule(basis="shortfall_pct", per_unit=D(1), step=D(3)), target=ge(100, "个")),
        num(97, "个"),
        "4.00",
        "0.9700",
        id="shortfall of exactly one step deducts one point",
    ),
    pytest.param(
        spec(DeductionRule(basis="shortfall_pct", per_unit=D(1), step=D(3)), target=ge(100, "个")),
        num(98, "个"),
        "5.00",
        "0.9800",
        id="shortfall below one step deducts nothing",
    ),
    pytest.param(
        spec(DeductionRule(basis="shortfall_pct", per_unit=D(1), step=D(3)), target=ge(100, "个")),
        num(94, "个"),
        "3.00",
        "0.9400",
        id="shortfall of six points deducts two",
    ),
    pytest.param(
        spec(DeductionRule(basis="shortfall_pct", per_unit=D(1), step=D(3)), target=ge(100, "个")),
        num(50, "个"),
        "0.00",
        "0.5000",
        id="shortfall deduction stops at zero",
    ),
    pytest.param(
        spec(DeductionRule(basis="shortfall_pct", per_unit=D(1), step=D(3)), target=ge(100, "个")),
        num(120, "个"),
        "5.00",
        "1.2000",
        id="shortfall deduction ignores over achievement",
    ),
    # ---- timeliness
    pytest.param(
        spec(TimelinessRule(), target=due(DUE)),
        Actual(day=date(2023, 7, 13)),
        "5.00",
        None,
        id="timeliness before the due date earns full marks",
    ),
    pytest.param(
        spec(TimelinessRule(), target=due(DUE)),
        Actual(day=DUE),
        "5.00",
        None,
        id="timeliness on the due date is on time",
    ),
    pytest.param(
        spec(TimelinessRule(), target=due(DUE, "<")),
        Actual(day=DUE),
        "0.00",
        None,
        id="timeliness strictly before makes the due date late",
    ),
    pytest.param(
        spec(TimelinessRule(), target=due(DUE)),
        Actual(day=date(2024, 1, 1)),
        "0.00",
        None,
        id="timeliness one day late without per pct earns nothing",
    ),
    pytest.param(
        spec(TimelinessRule(start=START, per_pct=D(1), step_pct=D(4)), target=due(DUE)),
        Actual(day=date(2024, 1, 14)),
        "5.00",
        None,
        id="timeliness 14 days late is 3.85 percent of plan and deducts nothing",
    ),
    pytest.param(
        spec(TimelinessRule(start=START, per_pct=D(1), step_pct=D(4)), target=due(DUE)),
        Actual(day=date(2024, 1, 15)),
        "4.00",
        None,
        id="timeliness 15 days late is 4.12 percent of plan and deducts one",
    ),
    pytest.param(
        spec(TimelinessRule(start=START, per_pct=D(1), step_pct=D(4)), target=due(DUE)),
        Actual(day=date(2024, 1, 30)),
        "3.00",
        None,
        id="timeliness 30 days late is 8.24 percent of plan and deducts two",
    ),
    pytest.param(
        spec(TimelinessRule(start=START, per_pct=D(1), step_pct=D(4)), target=due(DUE)),
        Actual(day=date(2025, 1, 1)),
        "0.00",
        None,
        id="timeliness a year late deducts to zero",
    ),
    # ---- checklist
    pytest.param(
        spec(ChecklistRule(), weight=4),
        points(True, True, True, True, True),
        "4.00",
        None,
        id="checklist with every point met earns full marks",
    ),
    pytest.param(
        spec(ChecklistRule(), weight=4),
        points(True, True, True, True, False),
        "3.20",
        None,
        id="checklist share with four of five points met",
    ),
    pytest.param(
        spec(ChecklistRule(), weight=4),
        points(False, True, True, weights=(2, 1, 1)),
        "2.00",
        None,
        id="checklist share weighs the missed point double",
    ),
    pytest.param(
        spec(ChecklistRule(mode="deduct"), weight=4),
        points(True, False, True, False),
        "2.00",
        None,
        id="checklist deduct takes one point per miss",
    ),
    pytest.param(
        spec(ChecklistRule(mode="deduct"), weight=4),
        points(False, False, False, False, False),
        "0.00",
        None,
        id="checklist deduct stops at zero",
    ),
    # ---- satisfaction (the reference case: 12 非常满意 + 4 比较满意 against ≥ 90 %)
    pytest.param(
        spec(SatisfactionRule(), target=ge("0.9", PCT)),
        survey(REFERENCE_COUNTS),
        "5.00",
        "1.1111",
        id="satisfaction share of the reference case is 100 percent and full marks",
    ),
    pytest.param(
        spec(SatisfactionRule(), target=ge("0.9", PCT)),
        survey(REFERENCE_COUNTS, "likert"),
        "5.00",
        "1.0556",
        id="satisfaction likert of the reference case is 95 percent and full marks",
    ),
    pytest.param(
        spec(SatisfactionRule(), target=ge("0.9", PCT)),
        survey(REFERENCE_COUNTS, satisfied=("非常满意",)),
        "4.17",
        "0.8333",
        id="satisfaction top box only is 75 percent and scores 5 x 75 over 90",
    ),
    pytest.param(
        spec(SatisfactionRule(mode="rate"), target=ge("0.9", PCT)),
        survey(REFERENCE_COUNTS, "likert"),
        "4.75",
        "1.0556",
        id="satisfaction rate mode scores weight times 95 percent",
    ),
    pytest.param(
        spec(SatisfactionRule(), target=ge("0.9", PCT)),
        num("0.9", PCT),
        "5.00",
        "1.0000",
        id="satisfaction at exactly the target earns full marks",
    ),
    # ---- rating (定性评级 by configured bands)
    pytest.param(
        spec(RatingRule(levels={"好": D("1"), "较好": D("0.8"), "一般": D("0.6")})),
        Actual(text="较好"),
        "4.00",
        None,
        id="rating 较好 earns its configured 80 percent of the weight",
    ),
    pytest.param(
        spec(RatingRule(levels={"程度较高": D("0.9"), "程度一般": D("0.6")})),
        Actual(text="程度较高"),
        "4.50",
        None,
        id="rating accepts free text such as 程度较高 as a band",
    ),
    # ---- binary
    pytest.param(
        spec(BinaryRule(), target=Target(op="=", value="达标")),
        Actual(met=True),
        "5.00",
        None,
        id="binary met earns full marks",
    ),
    pytest.param(
        spec(BinaryRule(), target=Target(op="=", value="达标")),
        Actual(met=False),
        "0.00",
        None,
        id="binary not met earns nothing",
    ),
]


@pytest.mark.parametrize(("ind", "actual", "score", "completion"), CASES)
def test_rule_scores_match_hand_computation(
    ind: IndicatorSpec, actual: Actual, score: str, completion: str | None
) -> None:
    result = score_indicator(ind, actual, policy())
    assert str(result.score) == score
    assert (None if result.completion is None else str(result.completion)) == completion
    assert not any(w.code == "missing_actual" for w in result.warnings)


def test_every_rule_type_has_a_function_and_a_case() -> None:
    from scoring.model import RULE_TYPES

    assert set(RULES) == set(RULE_TYPES)
    covered = {case.values[0].rule.type for case in CASES}
    assert covered == set(RULE_TYPES) - {"not_applicable"}


def test_not_applicable_has_no_score() -> None:
    result = score_indicator(spec(NotApplicableRule()), None, policy())
    assert result.applicable is False
    assert result.score is None and result.rate is None
    assert result.explanation == "不适用，不计分"


@pytest.mark.parametrize(
    ("ind", "actual"),
    [
        pytest.param(spec(ProportionalRule(), target=ge(7, "个")), None, id="proportional without an actual"),
        pytest.param(
            spec(ProportionalRule(), target=ge(7, "个")),
            Actual(detail="待填报"),
            id="proportional with an empty actual",
        ),
        pytest.param(spec(ReverseRule(), target=le(1, PCT)), None, id="reverse without an actual"),
        pytest.param(spec(RATE_BANDS, target=ge(100)), None, id="tiered without an actual"),
        pytest.param(spec(DeductionRule(per_unit=D(1))), None, id="deduction without an actual"),
        pytest.param(
            spec(TimelinessRule(), target=due(DUE)), Actual(number=D(1)), id="timeliness without a date"
        ),
        pytest.param(spec(ChecklistRule()), Actual(), id="checklist without points"),
        pytest.param(
            spec(SatisfactionRule(), target=ge("0.9", PCT)), survey({}), id="satisfaction with no responses"
        ),
        pytest.param(spec(BinaryRule()), None, id="binary without a judgement"),
    ],
)
def test_missing_actual_scores_zero_with_a_warning_and_never_crashes(
    ind: IndicatorSpec, actual: Actual | None
) -> None:
    result = score_indicator(ind, actual, policy())
    assert result.score == 0
    codes = [w.code for w in result.warnings]
    assert codes == ["missing_actual"]  # and no shortfall on top: the cause is already named
    assert result.explanation.endswith("得0分")


def test_missing_survey_says_there_were_no_questionnaires() -> None:
    result = score_indicator(spec(SatisfactionRule(), target=ge("0.9", PCT)), survey({}), policy())
    assert "无有效问卷" in result.warnings[0].message
    assert result.explanation == "目标≥90%，未取得实际完成值（无有效问卷），得0分"


@pytest.mark.parametrize(
    ("ind", "actual", "problem"),
    [
        pytest.param(
            spec(ProportionalRule(), target=le(100, PCT), key="cost"),
            num(1, PCT),
            "op '<='",
            id="proportional with a less than target is rejected",
        ),
        pytest.param(
            spec(ProportionalRule(), key="cost"),
            num(1),
            "needs a target",
            id="proportional without a target is rejected",
        ),
        pytest.param(
            spec(ProportionalRule(), target=due(DUE), key="cost"),
            num(1),
            "numeric target",
            id="proportional with a date target is rejected",
        ),
        pytest.param(
            spec(ProportionalRule(), target=ge(-5), key="cost"),
            num(1),
            "negative target",
            id="proportional with a negative target is rejected",
        ),
        pytest.param(
            spec(ProportionalRule(), target=ge(1, PCT), key="cost"),
            num(7, "个"),
            "unit",
            id="a percent target against a count actual is rejected",
        ),
        pytest.param(
            spec(ReverseRule(), target=ge(1, PCT), key="cost"),
            num(1, PCT),
            "op '>='",
            id="reverse with an at least target is rejected",
        ),
        pytest.param(
            spec(TimelinessRule(), target=ge(1), key="cost"),
            Actual(day=DUE),
            "target date",
            id="timeliness with a number target is rejected",
        ),
        pytest.param(
            spec(TimelinessRule(), target=due(DUE, ">="), key="cost"),
            Actual(day=DUE),
            "deadline",
            id="timeliness with an at least date is rejected",
        ),
        pytest.param(
            spec(TimelinessRule(per_pct=D(1)), target=due(DUE), key="cost"),
            Actual(day=DUE),
            "start",
            id="timeliness per pct without a start date is rejected",
        ),
        pytest.param(
            spec(TieredRule(bands=(Band(ratio=D(1)),)), target=ge(0), key="cost"),
            num(1),
            "above 0",
            id="tiered on rate with a zero target is rejected",
        ),
        pytest.param(
            spec(DeductionRule(per_unit=D(1), floor=D(9)), weight=4, key="cost"),
            num(1),
            "floor",
            id="deduction floor above the weight is rejected",
        ),
        pytest.param(
            spec(DeductionRule(per_unit=D(1)), key="cost"),
            num(-1),
            "negative",
            id="a negative count of violations is rejected",
        ),
        pytest.param(
            spec(SatisfactionRule(), target=ge(90, "分"), key="cost"),
            num(95, "分"),
            "unit",
            id="satisfaction that is not a rate is rejected",
        ),
    ],
)
def test_contradicting_spec_and_rule_raise_naming_the_indicator(
    ind: IndicatorSpec, actual: Actual, problem: str
) -> None:
    with pytest.raises(ValueError, match="'cost'") as err:
        apply_rule(ind, actual, policy())
    assert problem in str(err.value)
