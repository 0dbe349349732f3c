"""Exact explanation sentences for representative indicators."""

from __future__ import annotations

from datetime import date

import pytest

from scoring import (
    Actual,
    Band,
    ChecklistRule,
    CheckPoint,
    DeductionRule,
    IndicatorSpec,
    ProportionalRule,
    ReverseRule,
    SatisfactionRule,
    ScoringPolicy,
    TieredRule,
    TimelinessRule,
    satisfaction_fact,
    score_indicator,
)
from scoring.explain import describe_rule, target_text
from tests.scoring._build import SATISFIED, SCALE, D, due, ge, le, num, policy, spec

PCT = "%"


@pytest.mark.parametrize(
    ("ind", "actual", "pol", "text"),
    [
        pytest.param(
            spec(ProportionalRule(), target=ge(7, "个")),
            num(7, "个"),
            policy(),
            "目标≥7个，完成7个，完成率100%，得5分",
            id="a count at target reads as in the brief",
        ),
        pytest.param(
            spec(ProportionalRule(), target=ge(7, "个")),
            num(6, "个"),
            policy(),
            "目标≥7个，完成6个，完成率85.71%，得4.29分",
            id="a shortfall shows the completion rate and two decimals",
        ),
        pytest.param(
            spec(ProportionalRule(), target=ge(7, "个")),
            num(6, "个"),
            policy(0, "down"),
            "目标≥7个，完成6个，完成率85.71%，得4分",
            id="zero decimals down prints whole points",
        ),
        pytest.param(
            spec(ReverseRule(), target=le(1, PCT), weight=3),
            num(1, PCT),
            policy(),
            "目标≤100%，实际100%，得3分",
            id="a reverse rate at its limit",
        ),
        pytest.param(
            spec(ReverseRule(mode="per_point"), target=le(1, PCT), weight=6),
            num("1.035", PCT),
            policy(),
            "目标≤100%，实际103.5%，超出目标3.5个百分点，每个百分点扣1分，扣3分，得3分",
            id="a reverse per point overrun names the deduction",
        ),
        pytest.param(
            spec(ChecklistRule(), weight=4),
            Actual(checklist=tuple(CheckPoint(text=f"要点{i}", met=True) for i in range(5))),
            policy(),
            "评价要点5项，符合5项，得4分",
            id="a checklist fully met",
        ),
        pytest.param(
            spec(ChecklistRule(), weight=4),
            Actual(checklist=(CheckPoint(text="制度健全", met=True), CheckPoint(text="档案完整", met=False))),
            policy(),
            "评价要点2项，符合1项（不符合：档案完整），得2分",
            id="a checklist names the points not met",
        ),
        pytest.param(
            spec(TimelinessRule(), target=due(date(2023, 12, 31))),
            Actual(day=date(2023, 7, 13)),
            policy(),
            "计划2023-12-31前完成，实际2023-07-13完成，得5分",
            id="timeliness on time",
        ),
        pytest.param(
            spec(TimelinessRule(), target=due(date(2023, 12, 31))),
            Actual(day=date(2024, 1, 10)),
            policy(),
            "计划2023-12-31前完成，实际2024-01-10完成，逾期10天，逾期不得分，得0分",
            id="timeliness late",
        ),
        pytest.param(
            spec(DeductionRule(per_unit=D(1)), weight=4),
            num(5, "例"),
            policy(),
            "不符合要求5例，每例扣1分，扣4分（扣完为止），得0分",
            id="a deduction that hits the floor says so",
        ),
        pytest.param(
            spec(
                TieredRule(bands=(Band(min=D("0.9"), ratio=D(1)), Band(max=D("0.9"), ratio=D("0.5")))),
                target=ge(10),
            ),
            num(8),
            policy(),
            "目标≥10，实际8，完成率80%，适用<90%档，按50%计分，得2.5分",
            id="a tier names the band it used",
        ),
    ],
)
def test_explanation_sentences(ind: IndicatorSpec, actual: Actual, pol: ScoringPolicy, text: str) -> None:
    assert score_indicator(ind, actual, pol).explanation == text


def test_satisfaction_sentence_states_counts_and_method() -> None:
    sat = satisfaction_fact({"非常满意": 12, "比较满意": 4}, scale=SCALE, satisfied=SATISFIED, method="share")
    row = score_indicator(spec(SatisfactionRule(), target=ge("0.9", PCT)), sat, policy())
    assert row.explanation == (
        "目标≥90%，实际100%（非常满意12份、比较满意4份，共16份有效问卷；"
        "口径：满意率=(非常满意+比较满意)/有效问卷），得5分"
    )


def test_satisfaction_likert_sentence_states_the_weights() -> None:
    sat = satisfaction_fact(
        {"非常满意": 12, "比较满意": 4}, scale=SCALE, satisfied=SATISFIED, method="likert"
    )
    row = score_indicator(spec(SatisfactionRule(), target=ge("0.9", PCT)), sat, policy())
    assert row.explanation == (
        "目标≥90%，实际95%（非常满意12份、比较满意4份，共16份有效问卷；口径：综合满意度=Σ(各档份数×分值)/(100×有效问卷)，"
        "分值非常满意100、比较满意80、一般60、不太满意40、非常不满意20），得5分"
    )


def test_table_columns_show_target_actual_and_rule() -> None:
    row = score_indicator(spec(ProportionalRule(), target=ge(7, "个")), num(7, "个"), policy())
    assert (row.target, row.actual, row.rule) == (
        "≥7个",
        "7个",
        "完成目标得满分，未完成按完成比例记分，满分为止",
    )
    assert target_text(le("0.05", PCT)) == "≤5%"
    assert (
        describe_rule(TimelinessRule(per_pct=D(1), step_pct=D(4)))
        == "按计划时间完成得满分，逾期每超出计划工期4%扣1分，扣完为止"
    )
