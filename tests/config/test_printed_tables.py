"""A published 自评表 written down as printed: totals, declared amounts, per-row rounding, targets
with the comparators tables really use, ratings, transcribed scores, full marks other than 100.
Each feature is checked through the loader (located, bilingual problems) and scored."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from config.loader import DefinitionError, Problem, parse_definition_text
from scoring.engine import score_table
from scoring.facts import funds_statement

PRINTED = """
[project]
code = "printed-2023"
name = "某县学生营养改善计划"
year = 2023
period = { start = 2023-01-01, end = 2023-12-31 }
published_total = 94

[policy]
decimals = 0
rounding = "half_up"
total_weight = 110        # 预算执行率 10 分在 100 分之外

[budget]
amount = "1200000.00"     # 全年预算数
initial = "1000000.00"    # 年初预算数
executed = "1140000.00"   # 全年执行数
execution_denominator = "budget"

[[budget.rows]]
name = "当年财政拨款"
initial = "1000000.00"
amount = "1200000.00"
executed = "1140000.00"

[[indicators]]
key = "exec"
level1 = "预算执行"
level2 = "预算执行"
name = "预算执行率"
weight = 10
rule = "proportional"
target = "＝100 %"
source = "funds.execution_rate"
rounding = "floor"

[[indicators]]
key = "meals"
level1 = "产出"
level2 = "数量"
name = "受益学生人次"
weight = 50
rule = "proportional"
target = "≧735 人次"
actual = "700人次"
published_score = 48

[[indicators]]
key = "rate"
level1 = "产出"
level2 = "质量"
name = "食品抽检合格率"
weight = 20
rule = { type = "reverse", mode = "per_point", per_point = 1 }
target = "≦100%"
actual = "100 %"

[[indicators]]
key = "effect"
level1 = "效益"
level2 = "社会效益"
name = "学生营养状况改善"
weight = 20
rule = { type = "rating", levels = { "程度较高" = "90%", "程度一般" = "70%", "较差" = "40%" } }
actual = "程度较高"

[[indicators]]
key = "satisfied"
level1 = "满意度"
level2 = "满意度"
name = "家长满意度"
weight = 10
rule = "proportional"
target = "≥90%"
actual = "95%"
override = { score = 9, source = "published" }
"""


def load(text: str = PRINTED):
    return parse_definition_text(text, filename="project.toml")


def problems(text: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        load(text)
    return caught.value.problems


def score(text: str = PRINTED):
    defn = load(text)
    statement, facts = funds_statement(
        defn.budget_fen, [], [], execution_denominator=defn.execution_denominator, declared=defn.declared
    )
    actuals = {i.key: facts[i.source] for i in defn.indicators if i.source in facts}
    actuals.update(defn.entered_actuals())
    return score_table(
        defn.indicator_specs(),
        actuals,
        defn.policy,
        defn.overrides(),
        published_total=defn.published_total,
        funds=statement,
    )


def test_targets_are_read_as_printed_with_full_width_and_variant_comparators() -> None:
    defn = load()
    targets = {i.key: (i.target.op, i.target.number, i.target.unit) for i in defn.indicators if i.target}
    assert targets["meals"] == (">=", Decimal(735), "人次")
    assert targets["rate"] == ("<=", Decimal(1), "%")
    assert targets["exec"] == ("=", Decimal(1), "%")
    for printed, expected in (("═735", "="), ("＞735", ">"), ("不低于735", ">=")):
        text = PRINTED.replace('target = "≧735 人次"', f'target = "{printed}"').replace(
            'actual = "700人次"', 'actual = "700"'
        )
        assert load(text).indicators[1].target.op == expected  # type: ignore[union-attr]
    reverse = load(PRINTED.replace('target = "≦100%"', 'target = "＜１００ ％"')).indicators[2].target
    assert reverse is not None and (reverse.op, reverse.number, reverse.unit) == ("<", Decimal(1), "%")


def test_a_text_target_on_a_numeric_rule_lists_the_accepted_forms() -> None:
    [p] = problems(PRINTED.replace('target = "≧735 人次"', 'target = "≈735 人次"'))
    assert (p.location, p.code) == ("project.toml: indicators[1].target", "target_invalid")
    assert "可用写法" in p.zh and "≧735 人次" in p.zh and "accepted forms" in p.en


def test_declared_amounts_score_the_execution_rate_without_a_ledger() -> None:
    table = score()
    row = next(r for r in table.indicators if r.key == "exec")
    # 114 万 / 120 万 = 95 % of 10 points = 9.5, this row rounded down (floor) → 9
    assert (row.score, row.rounding, row.actual) == (Decimal(9), "down", "95%")
    assert "全年执行数/全年预算数=114.00万元/120.00万元" in row.explanation
    assert "项目申报数" in row.explanation
    assert table.funds is not None and table.funds.source == "declared"
    assert (table.funds.initial_fen, table.funds.executed_fen) == (100_000_000, 114_000_000)
    assert table.funds.declared is not None and table.funds.declared.rows[0].name == "当年财政拨款"


def test_declared_amounts_beside_a_ledger_warn_with_both_numbers() -> None:
    defn = load()
    statement, _ = funds_statement(
        defn.budget_fen,
        [(defn.project.period_start, 120_000_000)],
        [(defn.project.period_end, 110_000_000)],
        execution_denominator="budget",
        declared=defn.declared,
    )
    assert statement.source == "declared" and statement.ledger_executed_fen == 110_000_000
    [warning] = statement.warnings
    assert warning.code == "funds_difference"
    assert "114.00万元" in warning.message and "110.00万元" in warning.message


def test_a_rating_is_scored_by_its_configured_band() -> None:
    row = next(r for r in score().indicators if r.key == "effect")
    assert (row.score, row.actual) == (Decimal(18), "程度较高")
    assert "按90%计分" in row.explanation


def test_a_rating_not_configured_is_a_located_problem() -> None:
    [p] = problems(PRINTED.replace('actual = "程度较高"', 'actual = "较好"'))
    assert (p.location, p.code) == ("project.toml: indicators[3].actual", "rating_unknown")
    assert "程度较高" in p.zh and "levels" in p.en


def test_a_transcribed_score_shows_as_zhaolu_without_an_invented_reason() -> None:
    row = next(r for r in score().indicators if r.key == "satisfied")
    assert (row.score, row.computed_score, row.override_source) == (Decimal(9), Decimal(10), "published")
    assert "照录9分" in row.explanation and "已公布的自评表" in row.explanation


def test_published_totals_and_row_scores_that_differ_are_warnings_naming_both_numbers() -> None:
    table = score()
    by_code = {(w.code, w.indicator): w.message for w in table.warnings}
    # rows: exec 9 + meals 48 (700/735 × 50 = 47.6 → 48) + rate 20 + effect 18 + satisfied 9 = 104
    assert table.total == Decimal(104)
    assert ("published", "meals") not in by_code  # the row's published 48 matches
    assert "公布的总分94分与计算总分104分不一致" == by_code[("published", None)]


def test_full_marks_other_than_100_grade_by_the_percentage_and_say_so() -> None:
    table = score()
    assert (table.total_weight, table.percentage) == (Decimal(110), Decimal(95))  # 104/110 = 94.5 → 95
    assert table.grade == "优"
    note = next(w.message for w in table.warnings if w.code == "total_weight")
    assert "满分110分" in note and "折合百分制95分" in note


def test_weights_that_do_not_add_up_to_the_stated_full_marks_are_refused() -> None:
    [p] = problems(PRINTED.replace("total_weight = 110", "total_weight = 100"))
    assert (p.location, p.code) == ("project.toml: indicators", "weights_total")
    assert "应为 100 分" in p.zh and "total_weight" in p.zh


def test_floor_is_accepted_as_the_project_rounding_too() -> None:
    assert load(PRINTED.replace('rounding = "half_up"', 'rounding = "floor"')).policy.rounding == "down"


@pytest.mark.parametrize(
    ("edit", "location", "code"),
    [
        (("per_point = 1", "per_point = -5"), "indicators[2].rule.per_point", "out_of_range"),
        (('"程度较高" = "90%"', '"程度较高" = "150%"'), "indicators[3].rule.levels.程度较高", "out_of_range"),
        (
            ("published_score = 48", "published_score = 60"),
            "indicators[1].published_score",
            "published_exceeds_weight",
        ),
        (("published_total = 94", "published_total = -1"), "project.published_total", "out_of_range"),
        (
            ('executed = "1140000.00"   #', 'executed = "1300000.00"   #'),
            "budget.executed",
            "disbursed_exceeds_arrived",
        ),
        (("total_weight = 110", "total_weight = 0"), "policy.total_weight", "out_of_range"),
        (('target = "≦100%"', 'target = "≥100%"'), "indicators[2].rule", "rule_contradiction"),
        (('actual = "700人次"', 'actual = "700个"'), "indicators[1].rule", "rule_contradiction"),
        (
            ('override = { score = 9, source = "published" }', 'override = { score = 9, source = "copied" }'),
            "indicators[4].override.source",
            "invalid_choice",
        ),
    ],
    ids=[
        "reverse per_point below zero",
        "a rating band above 100 percent",
        "a published row score above the weight",
        "a negative published total",
        "declared execution above the budget",
        "full marks of zero",
        "a reverse rule with an at-least target",
        "an actual in another unit than its target",
        "an unknown override source",
    ],
)
def test_every_parameter_out_of_its_range_is_a_located_bilingual_problem(
    edit: tuple[str, str], location: str, code: str
) -> None:
    old, new = edit
    assert old in PRINTED
    found = problems(PRINTED.replace(old, new))
    assert (f"project.toml: {location}", code) in [(p.location, p.code) for p in found]
    assert all(p.zh and p.en and p.zh != p.en for p in found)


@pytest.mark.parametrize(
    ("rule", "location"),
    [
        ('{ type = "deduction", per_unit = 0 }', "rule.per_unit"),
        ('{ type = "deduction", per_unit = 1, step = -3 }', "rule.step"),
        ('{ type = "deduction", per_unit = 1, floor = 60 }', "rule"),
        ('{ type = "checklist", mode = "deduct", per_miss = -1 }', "rule.per_miss"),
        ('{ type = "timeliness", per_pct = -1, start = 2023-01-01 }', "rule.per_pct"),
        ('{ type = "tiered", bands = [{ min = "90%", max = "80%", ratio = 1 }] }', "rule.bands[0]"),
        ('{ type = "tiered", bands = [{ min = "90%", ratio = 2 }] }', "rule.bands[0].ratio"),
    ],
    ids=[
        "deduction per_unit zero",
        "deduction step negative",
        "deduction floor above the weight",
        "checklist per_miss negative",
        "timeliness per_pct negative",
        "tier min above max",
        "tier ratio above one",
    ],
)
def test_rule_parameters_have_valid_ranges(rule: str, location: str) -> None:
    text = PRINTED.replace(
        'rule = "proportional"\ntarget = "≧735 人次"\nactual = "700人次"',
        f'rule = {rule}\ntarget = "≧735 人次"\nactual = "700人次"',
    )
    found = problems(text)
    assert any(p.location.startswith(f"project.toml: indicators[1].{location}") for p in found), found


def test_a_definition_file_round_trips_through_the_store_snapshot(tmp_path: Path) -> None:
    from config.definition import ProjectDefinition

    defn = load()
    again = ProjectDefinition.model_validate(defn.model_dump(mode="json"))
    assert again == defn
