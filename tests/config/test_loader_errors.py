"""One test per validation problem: code, location and both messages; all reported together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from config.loader import (
    PROBLEM_CODES,
    DefinitionError,
    Problem,
    parse_definition_text,
    validate_definition_dict,
)

F = "project.toml"


def problems_of(data: dict[str, Any], base_dir: Path | None = None) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition_dict(data, base_dir=base_dir, filename=F)
    return caught.value.problems


def test_the_base_fixture_is_valid(base: dict[str, Any]) -> None:
    definition = validate_definition_dict(base, filename=F)
    assert definition.budget_fen == 100000
    assert definition.disbursements[1].amount_fen == 40000
    assert definition.indicators[2].target is not None and definition.indicators[2].target.number == Decimal(
        "0.9"
    )


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutation setting a dotted path (``indicators.0.weight``); value ``...`` deletes the key."""

    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is ...:
            del node[key]
        else:
            node[key] = value

    return apply


def _all(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(data)

    return apply


BAD_USCC = "91110000600037341A"

# (id, mutation, code, location, zh fragment, en fragment)
CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str, str, str]] = [
    ("weights_total", _all(_set("levels", ...), _set("indicators.0.weight", 31)),
     "weights_total", "project.toml: indicators", "合计 101 分，应为 100 分", "add up to 101, not 100"),
    ("level1_subtotal", _all(_set("levels.0.weight", 50), _set("levels.0.sub", {"数量": 50}), _set("levels.1.weight", 50), _set("levels.1.sub", {"满意度": 50})),
     "level1_subtotal", "project.toml: levels[0].weight", "一级指标 产出 声明 50 分，其三级指标分值合计 60 分", "level-1 产出 declares 50 but its indicators add up to 60"),
    ("level2_subtotal", _set("levels.0.sub", {"数量": 50, "质量": 10}),
     "level2_subtotal", "project.toml: levels[0].sub.数量", "二级指标 产出/数量 声明 50 分，其三级指标分值合计 60 分", "level-2 产出/数量 declares 50 but its indicators add up to 60"),
    ("level_children_total", _set("levels.0.sub", {"数量": 59}),
     "level_children_total", "project.toml: levels[0].sub", "其二级指标声明合计 59 分", "level-2 weights add up to 59"),
    ("levels_total", _set("levels.1.weight", 41),
     "levels_total", "project.toml: levels", "合计 101 分，应为 100 分", "add up to 101, not 100"),
    ("level_undeclared", _set("indicators.1.level2", "质量"),
     "level_undeclared", "project.toml: indicators[1].level2", "二级指标 产出/质量 未在 [[levels]] 中声明", "level-2 产出/质量 is not declared"),
    ("unknown_rule_type", _set("indicators.0.rule", "magic"),
     "unknown_rule_type", "project.toml: indicators[0].rule.type", "未知的评分规则类型 'magic'", "unknown rule type 'magic'"),
    ("rule_param_invalid", _set("indicators.0.rule", {"type": "reverse", "mode": "sometimes"}),
     "invalid_choice", "project.toml: indicators[0].rule.mode", "不在允许范围内", "is not one of"),
    ("target_missing", _set("indicators.0.target", ...),
     "target_missing", "project.toml: indicators[0].target", "评分规则 proportional 需要指标值", "rule proportional needs a target"),
    ("target_type", _set("indicators.0.target", "≤2023-12-31"),
     "target_type", "project.toml: indicators[0].target", "指标值应为数值", "needs a number as target"),
    ("target_invalid", _set("indicators.0.target", {"op": "≈", "value": 7}),
     "target_invalid", "project.toml: indicators[0].target.op", "比较符 '≈' 无效", "comparator '≈' is invalid"),
    ("money_precision", _set("arrivals.0.amount", "1000.001"),
     "money_precision", "project.toml: arrivals[0].amount", "超过2位小数", "more than 2 decimals"),
    ("money_negative", _set("budget.amount", "-5.00"),
     "money_negative", "project.toml: budget.amount", "不能为负数", "must not be negative"),
    ("money_float", _set("arrivals.0.amount", Decimal("1000.5")),
     "money_float", "project.toml: arrivals[0].amount", "浮点数会丢失精度", "must not be a float"),
    ("money_invalid", _set("disbursements.0.amount", "六百元"),
     "money_invalid", "project.toml: disbursements[0].amount", "金额 '六百元' 无效", "amount '六百元' is invalid"),
    ("date_outside_period_arrival", _set("arrivals.0.date", date(2024, 1, 5)),
     "date_outside_period", "project.toml: arrivals[0].date", "日期 2024-01-05 不在评价期间", "outside the period"),
    ("date_outside_period_disbursement", _set("disbursements.1.date", date(2024, 2, 1)),
     "date_outside_period", "project.toml: disbursements[1].date", "不在评价期间 2023-01-01 至 2023-12-31 内", "date 2024-02-01 is outside"),
    ("disbursed_exceeds_arrived", _set("disbursements.0.amount", "700.00"),
     "disbursed_exceeds_arrived", "project.toml: disbursements", "拨付合计 1100.00 元超过到位资金合计 1000.00 元", "exceeds arrivals total 1000.00 yuan"),
    ("disbursed_before_arrival", _set("disbursements.0.date", date(2023, 1, 15)),
     "disbursed_before_arrival", "project.toml: disbursements[0].date", "拨付早于资金到位", "paid before the money arrived"),
    ("arrived_exceeds_budget", _set("budget.amount", "900.00"),
     "arrived_exceeds_budget", "project.toml: arrivals", "到位资金合计 1000.00 元超过预算 900.00 元", "exceeds the budget 900.00 yuan"),
    ("duplicate_unit_key", _set("units.1.key", "a"),
     "duplicate_unit_key", "project.toml: units[1].key", "单位编码 a 与 project.toml: units[0] 重复", "unit key a duplicates"),
    ("duplicate_unit_name", _set("units.1.name", "甲单位"),
     "duplicate_unit_name", "project.toml: units[1].name", "单位名称 甲单位 与", "unit name 甲单位 duplicates"),
    ("duplicate_uscc", _set("units.1.uscc", VALID_USCC := "91110000600037341L"),
     "duplicate_uscc", "project.toml: units[1].uscc", "统一社会信用代码 91110000600037341L 与", "USCC 91110000600037341L duplicates"),
    ("duplicate_indicator_key", _set("indicators.1.key", "q1"),
     "duplicate_indicator_key", "project.toml: indicators[1].key", "指标编码 q1 与 project.toml: indicators[0] 重复", "indicator key q1 duplicates"),
    ("duplicate_indicator_name", _set("indicators.1.name", "甲"),
     "duplicate_indicator_name", "project.toml: indicators[1].name", "产出/数量 下的三级指标 甲", "indicator 甲 under 产出/数量 duplicates"),
    ("unknown_unit_disbursement", _set("disbursements.1.unit", "zz"),
     "unknown_unit", "project.toml: disbursements[1].unit", "拨付对象单位 zz 未在单位名单中", "disbursement to unknown unit zz"),
    ("unknown_unit_response", _set("responses.0.unit", "zz"),
     "unknown_unit", "project.toml: responses[0].unit", "答卷单位 zz 未在单位名单中", "response from unknown unit zz"),
    ("duplicate_response", _set("responses", [{"unit": "a", "answers": {"overall": "一般"}}] * 2),
     "duplicate_response", "project.toml: responses[1].unit", "单位 a 的答卷与", "unit a already answered"),
    ("uscc_checksum", _set("units.0.uscc", BAD_USCC),
     "uscc_checksum", "project.toml: units[0].uscc", f"统一社会信用代码 {BAD_USCC} 校验位错误", f"USCC {BAD_USCC} has a wrong check digit"),
    ("uscc_format", _set("units.0.uscc", "12345"),
     "uscc_format", "project.toml: units[0].uscc", "格式错误", "is malformed"),
    ("unknown_source", _set("indicators.0.source", "funds.magic"),
     "unknown_source", "project.toml: indicators[0].source", "未知的数据来源 funds.magic", "unknown source funds.magic"),
    ("source_rule_mismatch", _set("indicators.2.source", "funds.completion_date"),
     "source_rule_mismatch", "project.toml: indicators[2].rule.type", "不能用评分规则 satisfaction", "cannot be scored with rule satisfaction"),
    ("actual_for_computed", _set("indicators.2.actual", "95%"),
     "actual_for_computed", "project.toml: indicators[2].actual", "由系统计算，不能填写实际完成值", "are computed: do not enter an actual"),
    ("actual_type", _set("indicators.0.actual", True),
     "actual_type", "project.toml: indicators[0].actual", "实际完成值应为数值", "needs a number as the actual"),
    ("actual_invalid", _set("indicators.0.actual", "很多"),
     "actual_invalid", "project.toml: indicators[0].actual", "实际完成值 '很多' 无法识别", "actual '很多' is not understood"),
    ("satisfied_not_on_scale", _set("questionnaire.satisfied", ["非常满意", "很满意"]),
     "satisfied_not_on_scale", "project.toml: questionnaire.satisfied[1]", "计为满意的等级 很满意 不在量表", "satisfied level 很满意 is not on the scale"),
    ("satisfaction_question_unknown", _set("questionnaire.satisfaction_question", "nope"),
     "satisfaction_question_unknown", "project.toml: questionnaire.satisfaction_question", "满意度题目 nope 不存在", "satisfaction question nope does not exist"),
    ("satisfaction_question_kind", _set("questionnaire.satisfaction_question", "kind"),
     "satisfaction_question_kind", "project.toml: questionnaire.satisfaction_question", "应为量表题", "must be a scale question"),
    ("likert_weights_count", _set("questionnaire.likert_weights", [100, 80]),
     "likert_weights_count", "project.toml: questionnaire.likert_weights", "李克特权重有 2 个，量表有 5 级", "2 likert weights for a 5-level scale"),
    ("answer_not_in_options_scale", _set("responses.0.answers", {"overall": "很满意"}),
     "answer_not_in_options", "project.toml: responses[0].answers.overall", "答案 很满意 不是题目 overall 的选项", "answer 很满意 is not an option of question overall"),
    ("answer_not_in_options_single", _set("responses.0.answers", {"overall": "一般", "kind": "研究所"}),
     "answer_not_in_options", "project.toml: responses[0].answers.kind", "答案 研究所 不是题目 kind 的选项（企业/高校）", "answer 研究所 is not an option of question kind"),
    ("answer_required", _set("responses.0.answers", {"kind": "企业"}),
     "answer_required", "project.toml: responses[0].answers.overall", "必答题 overall 未作答", "required question overall is not answered"),
    ("unknown_question", _set("responses.0.answers", {"overall": "一般", "colour": "red"}),
     "unknown_question", "project.toml: responses[0].answers.colour", "问卷中没有题目 colour", "the questionnaire has no question colour"),
    ("override_exceeds_weight", _set("indicators.0.override", {"score": 31, "reason": "复核"}),
     "override_exceeds_weight", "project.toml: indicators[0].override.score", "人工调整得分 31 超过该指标分值 30", "override score 31 exceeds the weight 30"),
    ("override_no_reason", _set("indicators.0.override", {"score": 10}),
     "override_no_reason", "project.toml: indicators[0].override.reason", "必须写明理由", "needs a written reason"),
    ("channel_secret_inline", _set("units.1.channel", {"kind": "dingtalk", "address": "ding_b", "secret": "SEC123"}),
     "channel_secret_inline", "project.toml: units[1].channel", "文件中不得写密钥", "secrets must not be in files"),
    ("channel_secret_in_address", _set("units.1.channel", {"kind": "webhook", "address": "https://x.example/send?access_token=abc"}),
     "channel_secret_inline", "project.toml: units[1].channel", "渠道地址中含有令牌", "address carries a token"),
    ("channel_kind", _set("units.0.channel.kind", "fax"),
     "invalid_choice", "project.toml: units[0].channel.kind", "取值 'fax' 不在允许范围内", "'fax' is not one of"),
    ("channel_address", _set("units.0.channel.address", "not-an-email"),
     "channel_address", "project.toml: units[0].channel", "不是邮箱地址", "is not an email address"),
    ("period_order", _set("project.period", {"start": date(2023, 12, 31), "end": date(2023, 1, 1)}),
     "period_order", "project.toml: project", "评价期间开始日 2023-12-31 晚于结束日 2023-01-01", "period start 2023-12-31 is after period end 2023-01-01"),
    ("timezone_unknown", _set("project.timezone", "Mars/Olympus"),
     "timezone_unknown", "project.toml: project.timezone", "未知时区 Mars/Olympus", "unknown timezone Mars/Olympus"),
    ("project_code_format", _set("project.code", "Bad Code"),
     "invalid_format", "project.toml: project.code", "格式不符", "does not match"),
    ("required_name", _set("indicators.0.name", ...),
     "required", "project.toml: indicators[0].name", "缺少必填项", "required field is missing"),
    ("unknown_field", _set("indicators.0.colour", "red"),
     "unknown_field", "project.toml: indicators[0].colour", "未知字段 colour", "unknown field colour"),
    ("date_invalid", _set("arrivals.0.date", "2023/02/01"),
     "date_invalid", "project.toml: arrivals[0].date", "日期 '2023/02/01' 无效", "date '2023/02/01' is invalid"),
    ("number_invalid", _set("indicators.0.weight", "三十"),
     "number_invalid", "project.toml: indicators[0].weight", "分值 '三十' 不是有效数字", "weight '三十' is not a valid number"),
    ("options_missing", _set("questionnaire.questions.1.options", []),
     "options_missing", "project.toml: questionnaire.questions[1].options", "选择题 kind 没有选项", "choice question kind has no options"),
    ("responses_without_questionnaire", _all(_set("questionnaire", ...), _set("indicators.2.source", "entered")),
     "responses_without_questionnaire", "project.toml: responses", "未定义 [questionnaire]", "there is no [questionnaire]"),
    ("satisfaction_without_questionnaire", _all(_set("questionnaire", ...), _set("responses", [])),
     "satisfaction_without_questionnaire", "project.toml: indicators[2].source", "未定义 [questionnaire]", "needs a [questionnaire]"),
    ("grade_bands", _set("policy", {"grade_bands": [{"grade": "差", "min_score": 0}, {"grade": "优", "min_score": 90}]}),
     "grade_bands", "project.toml: policy.grade_bands", "从高到低排列", "highest first"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutation", "code", "location", "zh", "en"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_problem_is_reported_with_code_location_and_both_messages(
    base: dict[str, Any],
    mutation: Callable[[dict[str, Any]], None],
    code: str,
    location: str,
    zh: str,
    en: str,
) -> None:
    mutation(base)
    problems = problems_of(base)
    matching = [p for p in problems if p.code == code and p.location == location]
    assert matching, f"no {code} at {location}; got:\n" + "\n".join(f"{p.code} {p}" for p in problems)
    assert any(zh in p.zh and en in p.en for p in matching), "\n".join(str(p) for p in matching)
    assert code in PROBLEM_CODES


def test_a_single_mistake_gives_a_single_problem(base: dict[str, Any]) -> None:
    base["units"][0]["uscc"] = BAD_USCC
    assert [p.code for p in problems_of(base)] == ["uscc_checksum"]


def test_every_problem_in_one_file_is_reported_together(tmp_path: Path) -> None:
    text = """
[project]
code = "all-wrong"
name = "多处错误"
year = 2023
period = { start = 2023-01-01, end = 2023-12-31 }

[budget]
amount = 1000.5

[[arrivals]]
date = 2024-02-01
amount = "100.001"

[[units]]
key = "a"
name = "甲"
uscc = "91110000600037341A"

[[units]]
key = "b"
name = "甲"

[[disbursements]]
unit = "nobody"
amount = "-1"
date = 2023-03-01

[[indicators]]
key = "x"
level1 = "产出"
level2 = "数量"
name = "甲"
weight = 60
rule = "magic"

[[indicators]]
key = "y"
level1 = "产出"
level2 = "数量"
name = "乙"
weight = 30
rule = "proportional"
override = { score = 40 }
"""
    with pytest.raises(DefinitionError) as caught:
        parse_definition_text(text, base_dir=tmp_path, filename="project.toml")
    error = caught.value
    codes = set(error.codes())
    assert {
        "money_float",
        "money_precision",
        "uscc_checksum",
        "duplicate_unit_name",
        "money_negative",
        "unknown_rule_type",
        "target_missing",
        "override_no_reason",
        "weights_total",
    } <= codes
    lines = str(error).splitlines()
    assert len(lines) == len(error.problems) >= 9
    assert "project.toml: budget.amount: 金额 1000.5 不能写成小数形式的数字" in str(error)
    assert all(": " in line and " / " in line for line in lines)


def test_a_toml_float_for_money_is_refused_but_a_float_weight_is_exact(base: dict[str, Any]) -> None:
    text = """
[project]
code = "f"
name = "浮点"
year = 2023
period = { start = 2023-01-01, end = 2023-12-31 }
[budget]
amount = "100.00"
[[indicators]]
key = "a"
level1 = "产出"
level2 = "数量"
name = "甲"
weight = 99.9
rule = "binary"
[[indicators]]
key = "b"
level1 = "产出"
level2 = "数量"
name = "乙"
weight = 0.1
rule = "binary"
"""
    definition = parse_definition_text(text, filename="f.toml")
    assert [i.weight for i in definition.indicators] == [Decimal("99.9"), Decimal("0.1")]
    assert definition.total_weight == Decimal(100)


def test_toml_syntax_errors_name_the_file() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition_text("[project\nname=", filename="broken.toml")
    (problem,) = caught.value.problems
    assert problem.code == "toml_syntax" and problem.location == "broken.toml"
    assert "TOML 语法错误" in problem.zh and "TOML syntax error" in problem.en


# --------------------------------------------------------------------------- CSV files


def _csv_definition(base: dict[str, Any], tmp_path: Path, units: str, disbursements: str) -> dict[str, Any]:
    (tmp_path / "units.csv").write_text(units, encoding="utf-8")
    (tmp_path / "pay.csv").write_text(disbursements, encoding="utf-8")
    del base["units"], base["disbursements"]
    base["units_file"] = "units.csv"
    base["disbursements_file"] = "pay.csv"
    return base


UNITS_CSV = "key,name,uscc,channel_kind,channel_address,channel_secret_env\na,甲单位,91110000600037341L,email,a@example.com,\nb,乙单位,,dingtalk,ding_b,JIXIAO_SECRET_DINGTALK_1\n"
PAY_CSV = "unit,batch,amount,date,voucher\na,1,600.00,2023-03-01,V1\nb,1,400,2023-03-01,\n"


def test_units_and_disbursements_can_come_from_csv(base: dict[str, Any], tmp_path: Path) -> None:
    definition = validate_definition_dict(
        _csv_definition(base, tmp_path, UNITS_CSV, PAY_CSV), base_dir=tmp_path, filename=F
    )
    assert [u.key for u in definition.units] == ["a", "b"]
    assert definition.units[1].channel.config == {"secret_env": "JIXIAO_SECRET_DINGTALK_1"}
    assert definition.units[1].uscc is None
    assert [d.amount_fen for d in definition.disbursements] == [60000, 40000]


@pytest.mark.parametrize(
    ("units", "pay", "code", "location", "zh", "en"),
    [
        (
            UNITS_CSV.replace("341L", "341A"),
            PAY_CSV,
            "uscc_checksum",
            "units.csv:2 uscc",
            "校验位错误",
            "wrong check digit",
        ),
        (
            UNITS_CSV.replace("乙单位", "甲单位"),
            PAY_CSV,
            "duplicate_unit_name",
            "units.csv:3 name",
            "单位名称 甲单位 与 units.csv:2 重复",
            "duplicates units.csv:2",
        ),
        (
            UNITS_CSV.replace(",email,", ",fax,"),
            PAY_CSV,
            "invalid_choice",
            "units.csv:2 channel_kind",
            "不在允许范围内",
            "is not one of",
        ),
        (
            UNITS_CSV,
            PAY_CSV.replace("400,", "400.125,"),
            "money_precision",
            "pay.csv:3 amount",
            "超过2位小数",
            "more than 2 decimals",
        ),
        (
            UNITS_CSV,
            PAY_CSV.replace("b,1", "zz,1"),
            "unknown_unit",
            "pay.csv:3 unit",
            "拨付对象单位 zz",
            "unknown unit zz",
        ),
        (
            UNITS_CSV,
            PAY_CSV.replace("2023-03-01,V1", "2022-12-01,V1"),
            "date_outside_period",
            "pay.csv:2 date",
            "不在评价期间",
            "outside the period",
        ),
        (
            UNITS_CSV,
            "unit,batch,date\n",
            "csv_header",
            "pay.csv:1",
            "表头缺少列：amount",
            "missing column(s): amount",
        ),
        (
            UNITS_CSV,
            PAY_CSV + "a,2,1.00,2023-03-02,V9,extra\n",
            "csv_row",
            "pay.csv:4",
            "列数多于表头",
            "more cells than the header",
        ),
    ],
    ids=["uscc", "dup-name", "channel-kind", "money", "unknown-unit", "period", "header", "row-length"],
)
def test_csv_problems_carry_file_and_line(
    base: dict[str, Any], tmp_path: Path, units: str, pay: str, code: str, location: str, zh: str, en: str
) -> None:
    problems = problems_of(_csv_definition(base, tmp_path, units, pay), base_dir=tmp_path)
    assert any(p.code == code and p.location == location and zh in p.zh and en in p.en for p in problems), (
        "\n".join(f"{p.code} {p}" for p in problems)
    )


def test_a_missing_csv_file_is_reported_at_its_key(base: dict[str, Any], tmp_path: Path) -> None:
    del base["units"]
    base["units_file"] = "nope.csv"
    problems = problems_of(base, base_dir=tmp_path)
    assert any(p.code == "file_not_found" and p.location == "project.toml: units_file" for p in problems)
