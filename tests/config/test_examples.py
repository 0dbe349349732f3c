"""The shipped example projects load cleanly and match the reference report."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from stdnum.cn import uscc

from config.definition import ProjectDefinition
from config.loader import check_definition, load_definition
from tests.reference import REPORT_TABLE

PROJECTS = Path(__file__).resolve().parents[2] / "config" / "projects"


@pytest.fixture(scope="module")
def urumqi() -> ProjectDefinition:
    return load_definition(PROJECTS / "urumqi-ip-2023")


@pytest.fixture(scope="module")
def demo() -> ProjectDefinition:
    return load_definition(PROJECTS / "zipingbiao-demo" / "project.toml")


#: Every example project shipped (a new one is checked as soon as it lands).
EXAMPLES = sorted(p.name for p in PROJECTS.iterdir() if (p / "project.toml").is_file())


def test_the_four_examples_are_shipped() -> None:
    assert {"urumqi-ip-2023", "zipingbiao-demo", "chizhou-weituo-2022", "yongde-yingyang-2022"} <= set(
        EXAMPLES
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_projects_load_without_problems_and_round_trip(name: str) -> None:
    definition = load_definition(PROJECTS / name)
    assert check_definition(definition) == []
    snapshot = definition.model_dump(mode="json")
    again = ProjectDefinition.model_validate(snapshot)
    assert again == definition
    assert again.model_dump(mode="json") == snapshot
    assert again.indicator_specs() == definition.indicator_specs()
    assert again.entered_actuals() == definition.entered_actuals()


def test_urumqi_has_the_reports_23_indicators_and_weights(urumqi: ProjectDefinition) -> None:
    rows = [(i.level1, i.level2, i.name, i.weight) for i in urumqi.indicators]
    assert rows == [(a, b, c, Decimal(w)) for a, b, c, w in REPORT_TABLE]
    assert urumqi.total_weight == Decimal(100)
    assert [(lv.name, lv.weight) for lv in urumqi.levels] == [
        ("决策", 20), ("过程", 20), ("产出", 49), ("效益", 6), ("满意度", 5),
    ]  # fmt: skip
    assert urumqi.policy.decimals == 2 and urumqi.policy.rounding == "half_up"


def test_urumqi_money_adds_up_exactly(urumqi: ProjectDefinition) -> None:
    assert urumqi.budget_fen == 2_244_840_000  # 2244.84万元
    assert urumqi.arrived_fen == urumqi.budget_fen
    assert urumqi.disbursed_fen == urumqi.budget_fen
    assert [a.date for a in urumqi.arrivals] == [
        date(2023, 2, 13), date(2023, 2, 14), date(2023, 4, 23), date(2023, 6, 26), date(2023, 7, 13),
    ]  # fmt: skip
    assert len(urumqi.units) == 121
    assert {d.unit_key for d in urumqi.disbursements} == {u.key for u in urumqi.units}
    assert sorted({d.date.month for d in urumqi.disbursements}) == [2, 4, 6, 7]
    assert len({d.batch for d in urumqi.disbursements}) == 4
    # each batch is funded by the arrivals before it
    for d in urumqi.disbursements:
        paid = sum(x.amount_fen for x in urumqi.disbursements if x.date <= d.date)
        assert paid <= sum(a.amount_fen for a in urumqi.arrivals if a.date <= d.date)


def test_urumqi_units_and_channels_are_plausible(urumqi: ProjectDefinition) -> None:
    with_uscc = [u.uscc for u in urumqi.units if u.uscc]
    assert len(with_uscc) >= 60 and all(uscc.is_valid(code) for code in with_uscc)
    assert {u.channel.kind for u in urumqi.units} >= {
        "wecom",
        "dingtalk",
        "feishu",
        "email",
        "telegram",
        "slack",
    }
    assert all(k.endswith("_env") for u in urumqi.units for k in u.channel.config)
    assert urumqi.project.illustrative


def test_urumqi_targets_sources_and_survey(urumqi: ProjectDefinition) -> None:
    by_name = {i.name: i for i in urumqi.indicators}
    assert by_name["资金到位率"].source == "funds.arrival_rate"
    assert by_name["预算执行率"].source == "funds.execution_rate"
    assert by_name["项目预算控制率"].source == "funds.control_rate"
    assert by_name["项目预算控制率"].spec().target.op == "<="  # type: ignore[union-attr]
    spent_by = by_name["资金使用完毕时间"].spec()
    assert spent_by.source == "funds.completion_date" and spent_by.target.value == date(2023, 12, 31)  # type: ignore[union-attr]
    assert by_name["支持企业专利导航项目"].spec().target.value == Decimal(7)  # type: ignore[union-attr]
    growth = by_name["知识产权发展水平（年有效发明专利增长率）"]
    assert growth.spec().target.value == Decimal("0.05")  # type: ignore[union-attr]
    assert growth.entered_actual().number == Decimal("0.217")  # type: ignore[union-attr]
    checklists = [i for i in urumqi.indicators if i.rule.type == "checklist"]
    assert len(checklists) == 9
    assert all(p.met and p.evidence for i in checklists for p in i.entered_actual().checklist)  # type: ignore[union-attr]
    assert len(urumqi.indicators[0].entered_actual().checklist) == 5  # type: ignore[union-attr]
    assert len(urumqi.responses) == 16 and len({r.unit_key for r in urumqi.responses}) == 16
    assert urumqi.questionnaire is not None
    overall = Counter(r.answers[urumqi.questionnaire.satisfaction_question] for r in urumqi.responses)
    assert overall == {"非常满意": 12, "比较满意": 4}
    assert urumqi.overrides() == {}


def test_zipingbiao_demo_is_the_self_evaluation_template(demo: ProjectDefinition) -> None:
    assert [(lv.name, lv.weight) for lv in demo.levels] == [
        ("预算执行", 10),
        ("产出", 50),
        ("效益", 30),
        ("满意度", 10),
    ]
    assert demo.policy.decimals == 0 and demo.policy.rounding == "down"
    assert demo.execution_denominator == "budget"
    assert demo.disbursed_fen == 185_000_000 and demo.budget_fen == 200_000_000
    rules = {i.key: i.rule.type for i in demo.indicators}
    assert rules["budget.execution"] == "proportional" and rules["output.unit-cost"] == "reverse"
    assert rules["benefit.maintenance"] == "binary"
    override = demo.overrides()["benefit.maintenance"]
    assert override.score == Decimal(6) and override.reason
    actuals = demo.entered_actuals()
    assert actuals["output.water-quality"].number == Decimal("0.965")
    assert actuals["output.unit-cost"].number == Decimal(16) and actuals["output.unit-cost"].unit == "万元"
    assert actuals["benefit.maintenance"].met is True
    assert Counter(r.answers["overall"] for r in demo.responses) == {
        "非常满意": 6,
        "比较满意": 2,
        "一般": 1,
        "不太满意": 1,
    }


def test_the_published_chizhou_table_is_reproduced_as_printed() -> None:
    """池州市贵池区棠溪镇 委托业务项目 2022 自评表: every printed row score is reproduced from its
    declared amounts and printed actuals, except the budget row the table prints as 0 (its own
    本年财政拨款 row gives 89.974 of 89.974 万元), which is flagged with both numbers."""
    from scoring.engine import score_table
    from scoring.facts import funds_statement

    defn = load_definition(PROJECTS / "chizhou-weituo-2022")
    statement, facts = funds_statement(
        defn.budget_fen, [], [], execution_denominator=defn.execution_denominator, declared=defn.declared
    )
    actuals = {i.key: facts[i.source] for i in defn.indicators if i.source in facts}
    actuals.update(defn.entered_actuals())
    table = score_table(defn.indicator_specs(), actuals, defn.policy, defn.overrides(), funds=statement)
    printed = {i.key: i.published_score for i in defn.indicators}
    computed = {r.key: r.score for r in table.indicators}
    assert {k: v for k, v in computed.items() if k != "budget.execution"} == {
        k: v for k, v in printed.items() if k != "budget.execution"
    }
    assert (printed["budget.execution"], computed["budget.execution"]) == (Decimal(0), Decimal(10))
    assert sum(printed.values()) == 80  # the printed rows we can read
    warnings = [w.message for w in table.warnings]
    assert "预算执行率：公布的得分0分与计算得分10分不一致" in warnings
    assert (table.total, table.total_weight, table.percentage, table.grade) == (90, 90, 100, "优")
    assert any("满分90分" in w for w in warnings)
    assert statement.source == "declared" and statement.initial_fen == 90_000_000
    budget = next(r for r in table.indicators if r.key == "budget.execution")
    assert "全年执行数/全年预算数=89.97万元/89.97万元" in budget.explanation


def test_the_published_yongde_table_is_reproduced_with_its_total_and_grade() -> None:
    """永德县明朗中学 义务教育营养改善计划专项资金 2022 自评表 (complete, 总分 100 | 96 | 优): every
    printed row score, the total and the grade are reproduced from the declared amounts and the
    printed actuals; the one row the printed values do not give (资金到位及时率 100 % → 7) is
    copied as 照录 with the computed 10 beside it, and the one rounded row (政策知晓率 9.8 → 9)
    follows its own rounding."""
    from scoring.engine import score_table
    from scoring.facts import funds_statement

    defn = load_definition(PROJECTS / "yongde-yingyang-2022")
    statement, facts = funds_statement(
        defn.budget_fen, [], [], execution_denominator=defn.execution_denominator, declared=defn.declared
    )
    actuals = {i.key: facts[i.source] for i in defn.indicators if i.source in facts}
    actuals.update(defn.entered_actuals())
    table = score_table(
        defn.indicator_specs(),
        actuals,
        defn.policy,
        defn.overrides(),
        published_total=defn.published_total,
        funds=statement,
    )
    printed = {i.key: i.published_score for i in defn.indicators}
    assert None not in printed.values() and sum(printed.values()) == 96  # the printed rows add up
    assert {r.key: r.score for r in table.indicators} == printed
    assert (table.total, table.total_weight, table.grade) == (96, 100, "优")
    assert defn.published_total == table.total == 96
    assert statement.source == "declared" and statement.execution_rate == 1
    assert statement.annual_fen == statement.executed_fen == 38_766_462  # 387664.62 元
    by_key = {r.key: r for r in table.indicators}
    on_time = by_key["output.funds-on-time"]
    assert on_time.override_source == "published" and (on_time.computed_score, on_time.score) == (10, 7)
    awareness = by_key["benefit.awareness"]
    assert awareness.rounding == "down" and awareness.score == 9 and "实际98%" in awareness.explanation
    warnings = [w.message for w in table.warnings]
    assert any(w.startswith("资金到位及时率：照录7分") and "计算得分10分" in w for w in warnings)
    assert not any("公布的" in w for w in warnings)  # every printed score and the total agree
