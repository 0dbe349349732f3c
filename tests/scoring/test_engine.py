"""The whole table: totals, N/A rescaling, overrides, warnings, subtotals, grades."""

from __future__ import annotations

from datetime import date

import pytest

from scoring import (
    FACT_SOURCES,
    Actual,
    BinaryRule,
    ChecklistRule,
    CheckPoint,
    GradeBand,
    IndicatorSpec,
    NotApplicableRule,
    Override,
    ProportionalRule,
    ReverseRule,
    SatisfactionRule,
    ScoringPolicy,
    Target,
    TimelinessRule,
    fund_facts,
    satisfaction_fact,
    score_table,
)
from tests.scoring._build import SATISFIED, SCALE, D, assert_no_float, ge, le, num, policy, spec

PCT = "%"


def hundred_point(actual: str, *, key: str = "x") -> tuple[list[IndicatorSpec], dict[str, Actual]]:
    """One 100-point indicator (target ≥ 100) whose score equals the actual."""
    return [spec(ProportionalRule(), target=ge(100), weight=100, key=key)], {key: num(actual)}


# --------------------------------------------------------------------------- totals and grades


@pytest.mark.parametrize(
    ("actual", "total", "grade"),
    [
        pytest.param("90", "90.00", "优", id="a total of exactly 90 grades 优"),
        pytest.param("89.99", "89.99", "良", id="a total of 89.99 grades 良"),
        pytest.param("79.99", "79.99", "中", id="a total of 79.99 grades 中"),
        pytest.param("60", "60.00", "中", id="a total of exactly 60 grades 中"),
        pytest.param("59.99", "59.99", "差", id="a total of 59.99 grades 差"),
    ],
)
def test_grade_bands_have_inclusive_lower_bounds(actual: str, total: str, grade: str) -> None:
    table = score_table(*hundred_point(actual), policy())
    assert (str(table.total), table.grade) == (total, grade)


def test_custom_grade_bands_are_sorted_and_applied() -> None:
    bands = (
        GradeBand(grade="C", min_score=D(0)),
        GradeBand(grade="A", min_score=D(85)),
        GradeBand(grade="B", min_score=D(70)),
    )
    custom = ScoringPolicy(grade_bands=bands)
    assert score_table(*hundred_point("85"), custom).grade == "A"
    assert score_table(*hundred_point("84.99"), custom).grade == "B"
    assert score_table(*hundred_point("10"), custom).grade == "C"


def test_a_total_below_every_band_is_a_configuration_error() -> None:
    only_pass = ScoringPolicy(grade_bands=(GradeBand(grade="合格", min_score=D(60)),))
    with pytest.raises(ValueError, match="below every grade band"):
        score_table(*hundred_point("50"), only_pass)


def test_total_is_the_sum_of_rounded_indicator_scores() -> None:
    # three indicators each scoring 5 x 2/3 = 3.333…: rounded to 3.33 each, so the total is 9.99
    # (the table adds up by hand), not round(10.00) from the unrounded sum.
    specs = [spec(ProportionalRule(), target=ge(3), key=k) for k in "abc"]
    table = score_table(specs, {k: num(2) for k in "abc"}, policy())
    assert [str(r.score) for r in table.indicators] == ["3.33", "3.33", "3.33"]
    assert str(table.total) == "9.99"


@pytest.mark.parametrize(
    ("decimals", "mode", "score", "total"),
    [
        pytest.param(0, "down", "9", "9", id="9.8 with zero decimals down shows 9"),
        pytest.param(0, "half_up", "10", "10", id="9.8 with zero decimals half up shows 10"),
        pytest.param(1, "down", "9.8", "9.8", id="9.8 with one decimal stays 9.8"),
        pytest.param(2, "half_up", "9.80", "9.80", id="9.8 with two decimals shows 9.80"),
    ],
)
def test_policy_decimals_apply_to_scores_and_total(decimals: int, mode: str, score: str, total: str) -> None:
    specs = [spec(ProportionalRule(), target=ge(100), weight=10)]
    table = score_table(specs, {"k": num("98")}, policy(decimals, mode))
    assert str(table.indicators[0].score) == score
    assert str(table.total) == total


@pytest.mark.parametrize(
    ("mode", "total", "grade"),
    [
        pytest.param("half_up", "90.00", "优", id="rescaled 89.995 rounds half up to 90.00 and grades 优"),
        pytest.param("down", "89.99", "良", id="rescaled 89.995 rounds down to 89.99 and grades 良"),
    ],
)
def test_grade_comes_from_the_rounded_rescaled_total(mode: str, total: str, grade: str) -> None:
    # applicable weight 200, earned 100 + 79.99 = 179.99 → 179.99 × 100 / 200 = 89.995
    specs = [
        spec(ProportionalRule(), target=ge(100), weight=100, key="a"),
        spec(ProportionalRule(), target=ge(100), weight=100, key="b"),
        spec(NotApplicableRule(), weight=10, key="na"),
    ]
    table = score_table(specs, {"a": num(100), "b": num("79.99")}, policy(2, mode))
    assert (str(table.raw_total), str(table.total), table.grade) == ("179.99", total, grade)


# --------------------------------------------------------------------------- not applicable


def test_not_applicable_indicators_are_rescaled_out_of_the_total() -> None:
    specs = [
        spec(NotApplicableRule(), weight=10, key="eco", name="经济效益", level1="效益", level2="项目效益"),
        spec(ProportionalRule(), target=ge(100), weight=90, key="out"),
    ]
    table = score_table(specs, {"out": num(90), "eco": num(1)}, policy())
    assert table.rescaled is True
    assert str(table.raw_total) == "81.00"
    assert str(table.total) == "90.00"  # 81 × 100 / 90
    assert table.grade == "优"
    eco = table.indicators[0]
    assert (eco.applicable, eco.score, eco.rate) == (False, None, None)
    [rescaled] = [w for w in table.warnings if w.code == "rescaled"]
    assert rescaled.indicator is None
    assert rescaled.message == "不适用指标（经济效益）不计分，适用指标满分90分，得分81分按百分制折算为90分"
    assert [(s.level1, s.level2, str(s.weight), str(s.score)) for s in table.subtotals] == [
        ("效益", None, "0", "0"),
        ("效益", "项目效益", "0", "0"),
        ("产出", None, "90", "81.00"),
        ("产出", "数量", "90", "81.00"),
    ]


def test_a_table_with_nothing_applicable_cannot_be_totalled() -> None:
    with pytest.raises(ValueError, match="no applicable"):
        score_table([spec(NotApplicableRule())], {}, policy())


def test_duplicate_indicator_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate indicator keys: k"):
        score_table([spec(BinaryRule()), spec(BinaryRule())], {}, policy())


# --------------------------------------------------------------------------- overrides


def ten_points() -> list[IndicatorSpec]:
    return [spec(ProportionalRule(), target=ge(7, "个"), weight=10, key="nav", name="专利导航")]


def test_override_replaces_the_score_and_keeps_the_computed_one() -> None:
    ov = {"nav": Override(score=D(9), reason="验收材料不全", by="张三")}
    table = score_table(ten_points(), {"nav": num(7, "个")}, policy(), ov)
    row = table.indicators[0]
    assert (str(row.score), str(row.computed_score), row.overridden) == ("9.00", "10.00", True)
    assert row.override_reason == "验收材料不全"
    assert str(row.rate) == "0.9000"
    assert (
        row.explanation
        == "目标≥7个，完成7个，完成率100%，得10分；评价人调整为9分（原计算10分），理由：验收材料不全"
    )
    assert [w.code for w in row.warnings] == ["override", "shortfall"]
    assert row.warnings[0].message == "专利导航：评价人调整为9分（原计算10分），理由：验收材料不全（张三）"
    assert str(table.total) == "9.00"


def test_override_above_the_weight_is_rejected_naming_the_indicator() -> None:
    with pytest.raises(ValueError, match="'nav'.*exceeds the weight 10"):
        score_table(
            ten_points(), {"nav": num(7, "个")}, policy(), {"nav": Override(score=D("10.5"), reason="加分")}
        )


def test_override_for_an_unknown_indicator_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown indicator key.*ghost"):
        score_table(ten_points(), {}, policy(), {"ghost": Override(score=D(1), reason="x")})


def test_override_of_a_not_applicable_indicator_is_rejected() -> None:
    specs = [*ten_points(), spec(NotApplicableRule(), key="na")]
    with pytest.raises(ValueError, match="'na'.*not applicable"):
        score_table(specs, {}, policy(), {"na": Override(score=D(1), reason="x")})


def test_an_override_without_a_reason_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        Override(score=D(1), reason="")


# --------------------------------------------------------------------------- warnings


def test_shortfall_warning_says_by_how_much() -> None:
    table = score_table(
        [spec(ProportionalRule(), target=ge(8, "个"), key="cult", name="培育中心")],
        {"cult": num(6, "个")},
        policy(),
    )
    [w] = table.indicators[0].warnings
    assert w.code == "shortfall" and w.indicator == "cult"
    assert (
        w.message
        == "培育中心未完全达成：完成率75%，距目标差25个百分点；得3.75分，较分值5分少1.25分，需分析偏差原因并提出改进措施"
    )


def test_over_achievement_above_the_policy_ratio_asks_for_the_reason() -> None:
    growth = spec(
        ProportionalRule(), target=ge("0.05", PCT), weight=6, key="growth", name="年有效发明专利增长率"
    )
    row = score_table([growth], {"growth": num("0.217", PCT)}, policy()).indicators[0]
    assert str(row.score) == "6.00" and str(row.completion) == "4.3400"
    [w] = row.warnings
    assert w.code == "overachievement"
    assert "434%" in w.message and "需说明超额原因" in w.message and "目标值可能偏低" in w.message


def test_over_achievement_at_the_ratio_is_not_flagged() -> None:
    row = score_table([spec(ProportionalRule(), target=ge(10))], {"k": num(12)}, policy()).indicators[0]
    assert row.warnings == ()


def test_reverse_indicator_under_its_limit_raises_no_warning() -> None:
    row = score_table([spec(ReverseRule(), target=le(1, PCT))], {"k": num("0.5", PCT)}, policy()).indicators[
        0
    ]
    assert (str(row.score), row.warnings) == ("5.00", ())


def test_low_survey_coverage_warns_on_satisfaction() -> None:
    sat = satisfaction_fact(
        {"非常满意": 12, "比较满意": 4}, scale=SCALE, satisfied=SATISFIED, method="share", invited=121
    )
    row = score_table(
        [spec(SatisfactionRule(), target=ge("0.9", PCT), name="满意度")], {"k": sat}, policy()
    ).indicators[0]
    [w] = row.warnings
    assert w.code == "coverage"
    assert w.message.startswith("满意度：问卷覆盖率13.22%，低于60%")


def test_table_warnings_list_every_indicator_warning_then_the_table_ones() -> None:
    specs = [
        spec(ProportionalRule(), target=ge(7), key="a"),
        spec(BinaryRule(), key="b"),
        spec(NotApplicableRule(), key="c"),
    ]
    table = score_table(specs, {"a": num(6)}, policy())
    assert [(w.indicator, w.code) for w in table.warnings] == [
        ("a", "shortfall"),
        ("b", "missing_actual"),
        (None, "rescaled"),
    ]


# --------------------------------------------------------------------------- the reference case


def reference_table() -> tuple[list[IndicatorSpec], dict[str, Actual]]:
    """The 23 indicators of the Urumqi 2023 report, every one at full marks (100 → 优)."""
    ok = Actual(checklist=(CheckPoint(text="符合", met=True),))
    pct_full = ge(1, PCT)
    rows: list[tuple[str, str, str, int, object, Target | None, str]] = [
        ("决策", "项目立项", "立项依据充分性", 4, ChecklistRule(), None, "entered"),
        ("决策", "项目立项", "立项程序规范性", 4, ChecklistRule(), None, "entered"),
        ("决策", "绩效目标", "绩效目标合理性", 3, ChecklistRule(), None, "entered"),
        ("决策", "绩效目标", "绩效指标明确性", 3, ChecklistRule(), None, "entered"),
        ("决策", "资金投入", "预算编制科学性", 3, ChecklistRule(), None, "entered"),
        ("决策", "资金投入", "资金分配合理性", 3, ChecklistRule(), None, "entered"),
        ("过程", "资金管理", "资金到位率", 5, ProportionalRule(), pct_full, "funds.arrival_rate"),
        ("过程", "资金管理", "预算执行率", 5, ProportionalRule(), pct_full, "funds.execution_rate"),
        ("过程", "资金管理", "资金使用合规性", 3, ChecklistRule(), None, "entered"),
        ("过程", "组织实施", "管理制度健全性", 3, ChecklistRule(), None, "entered"),
        ("过程", "组织实施", "制度执行有效性", 4, ChecklistRule(), None, "entered"),
        ("产出", "产出数量", "支持建设知识产权运营中心", 5, ProportionalRule(), ge(3, "个"), "3"),
        ("产出", "产出数量", "支持企业专利导航项目", 5, ProportionalRule(), ge(7, "个"), "7"),
        ("产出", "产出数量", "建设知识产权运营服务平台", 5, ProportionalRule(), ge(1, "个"), "1"),
        ("产出", "产出数量", "建设知识产权服务业集聚区", 5, ProportionalRule(), ge(1, "个"), "1"),
        ("产出", "产出数量", "高价值专利培育中心", 5, ProportionalRule(), ge(8, "个"), "8"),
        ("产出", "产出数量", "高价值专利转移转化协同中心", 5, ProportionalRule(), ge(3, "个"), "3"),
        ("产出", "产出数量", "专利密集型产品认定项目", 5, ProportionalRule(), ge(1, "项"), "1"),
        ("产出", "产出质量", "申报类项目绩效评价覆盖率", 6, ProportionalRule(), pct_full, "100%"),
        (
            "产出",
            "产出时效",
            "资金使用完毕时间",
            5,
            TimelinessRule(),
            Target(op="<=", value=date(2023, 12, 31)),
            "funds.completion_date",
        ),
        (
            "产出",
            "产出成本",
            "项目预算控制率",
            3,
            ReverseRule(mode="per_point"),
            le(1, PCT),
            "funds.control_rate",
        ),
        ("效益", "项目效益", "年有效发明专利增长率", 6, ProportionalRule(), ge("0.05", PCT), "21.7%"),
        (
            "满意度",
            "满意度",
            "项目承担单位满意度",
            5,
            SatisfactionRule(),
            ge("0.9", PCT),
            "survey.satisfaction",
        ),
    ]
    budget = 2_244_840_000  # 2244.84万元 in fen
    arrivals = [(date(2023, 2, 13), 1_000_000_000), (date(2023, 2, 14), 500_000_000), (date(2023, 4, 23), 400_000_000),
                (date(2023, 6, 26), 244_840_000), (date(2023, 7, 13), 100_000_000)]  # fmt: skip
    paid = [(date(2023, 2, 20), 1_500_000_000), (date(2023, 4, 28), 400_000_000),
            (date(2023, 6, 30), 244_840_000), (date(2023, 7, 13), 100_000_000)]  # fmt: skip
    facts: dict[str, Actual] = {
        **fund_facts(budget, arrivals, paid),
        "survey.satisfaction": satisfaction_fact(
            {"非常满意": 12, "比较满意": 4}, scale=SCALE, satisfied=SATISFIED, method="share"
        ),
    }
    specs: list[IndicatorSpec] = []
    actuals: dict[str, Actual] = {}
    for i, (l1, l2, name, weight, rule, target, source) in enumerate(rows):
        key = f"i{i:02d}"
        is_fact = source in FACT_SOURCES and source != "entered"
        specs.append(
            IndicatorSpec(
                key=key,
                level1=l1,
                level2=l2,
                name=name,
                weight=D(weight),
                rule=rule,
                target=target,  # type: ignore[arg-type]
                source=source if is_fact else "entered",
            )  # fmt: skip
        )
        if is_fact:
            actuals[key] = facts[source]
        elif source == "entered":
            actuals[key] = ok
        elif source.endswith("%"):
            actuals[key] = num(str(D(source[:-1]) / 100), PCT)
        else:
            actuals[key] = num(source, target.unit if target else "")
    return specs, actuals


def test_the_23_indicator_reference_table_totals_100_and_grades_excellent() -> None:
    specs, actuals = reference_table()
    assert len(specs) == 23 and sum(s.weight for s in specs) == 100
    table = score_table(specs, actuals, ScoringPolicy())
    assert (str(table.total), table.grade, table.rescaled) == ("100.00", "优", False)
    assert all(r.score == r.weight and str(r.rate) == "1.0000" for r in table.indicators)
    level1 = [(s.level1, str(s.weight), str(s.score)) for s in table.subtotals if s.level2 is None]
    assert level1 == [("决策", "20", "20.00"), ("过程", "20", "20.00"), ("产出", "49", "49.00"),
                      ("效益", "6", "6.00"), ("满意度", "5", "5.00")]  # fmt: skip
    level2 = [(s.level2, str(s.score)) for s in table.subtotals if s.level2 is not None]
    assert level2[:3] == [("项目立项", "8.00"), ("绩效目标", "6.00"), ("资金投入", "6.00")]
    assert [w.code for w in table.warnings] == ["overachievement"]  # 21.7 % against 5 %, §7 #10
    by_name = {r.name: r for r in table.indicators}
    assert (
        by_name["资金使用完毕时间"].explanation
        == "计划2023-12-31前完成，实际2023-07-13完成（最后一笔支出日期，共4笔，合计2244.84万元），得5分"
    )
    assert by_name["预算执行率"].explanation == (
        "目标≥100%，实际100%（预算执行率=实际支出/实际到位资金=2244.84万元/2244.84万元），完成率100%，得5分"
    )


def test_scoring_is_deterministic_and_float_free() -> None:
    specs, actuals = reference_table()
    first = score_table(specs, actuals, ScoringPolicy())
    second = score_table(specs, actuals, ScoringPolicy())
    assert first.model_dump_json() == second.model_dump_json()
    assert_no_float(first.model_dump())


def test_a_table_with_shortfalls_and_rescaling_is_float_free_too() -> None:
    specs = [
        spec(ProportionalRule(), target=ge(3), key="a"),
        spec(ReverseRule(), target=le(1, PCT), key="b"),
        spec(NotApplicableRule(), key="c"),
    ]
    table = score_table(specs, {"a": num(2), "b": num("1.3", PCT)}, policy(1, "down"))
    assert_no_float(table.model_dump())
    assert str(table.raw_total) == "7.1"  # 3.3 + 3.8 (5/1.3 = 3.846 → 3.8 down)
    assert str(table.total) == "71.0"  # 7.1 × 100 / 10
