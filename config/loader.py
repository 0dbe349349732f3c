"""Load and validate a project definition (TOML + optional CSV) into ``ProjectDefinition``.

File form → inside form:

- money: 元 as a string (``"12345.67"``) or an integer → integer fen. A TOML float is refused
  (precision), so are more than 2 decimals and negative amounts;
- rates: written as percentages (``"≥90%"``, ``"21.7%"``, ``coverage_threshold = "60%"``) →
  ``Decimal`` fractions. An actual written as a bare number takes its target's unit, so with a
  ``%`` target ``actual = 21.7`` means 21.7 %;
- targets: ``"≥7个"``, ``"≤100%"``, ``"=达标"``, ``"≤2023-12-31"`` or ``{op, value, unit}``. When no
  operator is written, ``≤`` is used for reverse/timeliness rules, ``=`` for texts, else ``≥``;
- TOML floats are read as ``Decimal`` (``tomllib`` ``parse_float``) so weights such as ``2.5``
  never pass through binary floating point.

Validation collects every problem (it does not stop at the first) and raises one
``DefinitionError``. Each ``Problem`` has a location (``project.toml: indicators[3].weight`` —
indexes are 0-based — or ``units.csv:17 uscc`` — CSV line numbers are 1-based, header = 1), a
stable ``code`` and messages in Chinese and English.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import tomllib
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from config.definition import (
    Arrival,
    DisbursementDef,
    IndicatorDef,
    Level1Def,
    ProjectDefinition,
    ProjectInfo,
    QuestionnaireDef,
    ResponseDef,
    UnitDef,
    known_sources,
    uscc_problem,
)
from config.ledger import Entry, check_ledger
from config.tables import TableError, cell_text, decode, encoding_label, read_table
from scoring import money
from scoring.engine import score_indicator
from scoring.model import RULE_TYPES, Actual, DeclaredFunds, FundsRow, ScoringPolicy

__all__ = [
    "PROBLEM_CODES",
    "DefinitionError",
    "Problem",
    "check_definition",
    "load_definition",
    "parse_definition_text",
    "translate_error",
    "validate_definition_dict",
]

#: Every problem code the loader can report (for documentation and the API's clients).
PROBLEM_CODES: tuple[str, ...] = (
    # files and syntax
    "file_not_found", "toml_syntax", "json_syntax", "csv_header", "csv_row",
    # generic field problems (pydantic errors translated)
    "required", "unknown_field", "invalid_value", "invalid_choice", "invalid_format", "out_of_range",
    "too_short", "date_invalid", "number_invalid",
    # project
    "period_order", "timezone_unknown", "grade_bands",
    # money
    "money_float", "money_precision", "money_negative", "money_invalid",
    "date_outside_period", "arrived_exceeds_budget", "disbursed_exceeds_arrived", "disbursed_before_arrival",
    # units and channels
    "duplicate_unit_key", "duplicate_unit_name", "duplicate_uscc", "uscc_checksum", "uscc_format",
    "unknown_unit", "channel_secret_inline", "channel_env_name", "channel_address",
    # weights and levels
    "weights_total", "levels_total", "level_children_total", "level1_subtotal", "level2_subtotal",
    "level_undeclared", "duplicate_level",
    # indicators
    "unknown_rule_type", "rule_type_missing", "rule_invalid", "target_missing", "target_invalid", "target_type",
    "unknown_source", "source_rule_mismatch", "actual_for_computed", "actual_invalid", "actual_type",
    "duplicate_indicator_key", "duplicate_indicator_name", "override_exceeds_weight", "override_no_reason",
    "satisfaction_without_questionnaire", "rule_contradiction", "rating_unknown", "published_exceeds_weight",
    "override_not_applicable", "band_order", "money_too_large", "encoding",
    # questionnaire and responses
    "satisfied_not_on_scale", "likert_weights_count", "duplicate_question_key", "satisfaction_question_unknown",
    "satisfaction_question_kind", "options_missing", "responses_without_questionnaire", "duplicate_response",
    "unknown_question", "answer_not_in_options", "answer_required", "answer_invalid", "answer_out_of_range",
    "answer_too_long",
)  # fmt: skip

HUNDRED = Decimal(100)
M = TypeVar("M", bound=BaseModel)


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where, a stable code, and the message in zh and en."""

    location: str
    code: str
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.location}: {self.zh} / {self.en}"


class DefinitionError(Exception):
    """A definition could not be loaded; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def codes(self) -> list[str]:
        return [p.code for p in self.problems]


@dataclass(frozen=True)
class Loc:
    """A place in a definition file: TOML key path, or CSV ``file:line`` plus column."""

    file: str
    path: str = ""
    line: int | None = None

    def __truediv__(self, part: str | int) -> Loc:
        if isinstance(part, int):
            return Loc(self.file, f"{self.path}[{part}]", self.line)
        if self.line is not None:  # CSV: the column name
            return Loc(self.file, f"{self.path}_{part}" if self.path else part, self.line)
        return Loc(self.file, f"{self.path}.{part}" if self.path else part, self.line)

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}" + (f" {self.path}" if self.path else "")
        return f"{self.file}: {self.path}" if self.path else self.file


def _short(message: str, limit: int = 400) -> str:
    """A message cut to ``limit`` characters: a value of 200 KB is never echoed whole."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _clip(value: Any, limit: int = 60) -> str:
    """A value for a message: its repr, cut to ``limit`` characters (a 200 KB cell is not echoed)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros (``20``, ``2.5``)."""
    text = f"{value.normalize():f}"
    return text


_yuan = money.yuan


# --------------------------------------------------------------------------- value parsers


_BAD = object()  # normalisation failed (a problem has been recorded)
_TARGET_RE = re.compile(
    r"^\s*(≥|>=|≤|<=|==|=|>|<|不低于|不少于|不小于|大于等于|不高于|不多于|不大于|不超过|小于等于)?\s*(.*?)\s*$",
    re.DOTALL,
)
_WORD_OPS = {
    "不低于": ">=", "不少于": ">=", "不小于": ">=", "大于等于": ">=",
    "不高于": "<=", "不多于": "<=", "不大于": "<=", "不超过": "<=", "小于等于": "<=",
}  # fmt: skip
_OPS = {
    **_WORD_OPS,
    "≥": ">=",
    ">=": ">=",
    "≤": "<=",
    "<=": "<=",
    "=": "=",
    "==": "=",
    "＝": "=",
    ">": ">",
    "＞": ">",
    "<": "<",
    "＜": "<",
}
#: Comparators printed in published tables that NFKC does not fold, and what they mean.
_VARIANT_COMPARATORS = {"≧": "≥", "⩾": "≥", "≦": "≤", "⩽": "≤", "═": "=", "〓": "="}
#: The target forms the loader understands (shown when a target is not understood).
TARGET_FORMS_ZH = "≥7个、≧735 人次、≤100%、≦100 %、>0、＜5%、=达标、═100 %、≤2023-12-31、不低于90%"
_NUMBER_RE = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*(.*?)$", re.DOTALL | re.ASCII)
_PLAIN_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$", re.ASCII)
#: Largest magnitude of any number in a definition (weights, targets, actuals): far above any
#: real table, small enough that Decimal arithmetic stays exact.
_NUMBER_LIMIT = Decimal("1e12")
#: Most decimal places of a number in a definition (a ratio of two bounded numbers then fits the
#: scoring context's 28 digits).
_PLACES = 8


def _bounded(number: Decimal) -> bool:
    """Finite, below 10¹² in size and at most ``_PLACES`` decimals: every quotient the engine
    forms from such numbers is exact enough and never overflows its decimal context."""
    if not number.is_finite() or abs(number) >= _NUMBER_LIMIT:
        return False
    return number == number.quantize(Decimal(1).scaleb(-_PLACES))


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
_MONEY_RE = re.compile(r"^-?\d+(\.\d+)?$")
_TRUE = {"是", "达标", "已达标", "达成", "已达成", "有效", "完成", "已完成", "true", "yes", "met",
         "达成预期指标", "达到预期指标", "达成预期目标", "达到预期目标", "已达成预期指标"}  # fmt: skip
_FALSE = {"否", "未达标", "未达成", "无效", "未完成", "false", "no", "not met",
          "未达成预期指标", "未达到预期指标", "未达成预期目标"}  # fmt: skip
_AT_MOST_RULES = {"reverse", "timeliness"}
#: Declared amounts in ``[budget]`` (file key → ``DeclaredFunds`` field).
_DECLARED = {"initial": "initial_fen", "executed": "executed_fen", "arrived": "arrived_fen"}
#: Rounding names accepted in files, and the engine's name for each.
_ROUNDING_NAMES = {
    "floor": "down", "round_down": "down", "去尾": "down", "向下取整": "down", "截尾": "down",
    "half-up": "half_up", "round_half_up": "half_up", "四舍五入": "half_up",
}  # fmt: skip
_FUNDS_RATE_SOURCES = {"funds.arrival_rate", "funds.execution_rate", "funds.control_rate"}
_NUMBER_RULES = {"proportional", "reverse", "tiered", "deduction", "satisfaction"}


def _percent(text: str) -> Decimal | None:
    """``"90%"``, ``"90 %"``, ``"９０％"`` → 0.9; None when the text is not a percentage."""
    text = unicodedata.normalize("NFKC", text).strip()
    if len(text) <= 40 and text.endswith("%") and _PLAIN_NUMBER_RE.match(text[:-1].strip()):
        return Decimal(text[:-1].strip()) / HUNDRED
    return None


def _printed(text: str) -> str:
    """Text as printed in a published table, normalised: full-width forms folded (NFKC: ＞ → >,
    ％ → %, ９ → 9) and the variant comparators seen in 自评表 mapped to ours (≧ → ≥, ≦ → ≤,
    ═ → =)."""
    text = unicodedata.normalize("NFKC", text)
    for variant, ours in _VARIANT_COMPARATORS.items():
        text = text.replace(variant, ours)
    return text.strip()


class _Reader:
    """Collects problems while turning the file form into model input."""

    def __init__(self, base_dir: Path | None, filename: str, encodings: dict[str, str] | None = None) -> None:
        self.base_dir = base_dir
        self.filename = filename
        self.problems: list[Problem] = []
        #: file name → encoding found (filled as files are read; reported by the CLI)
        self.encodings: dict[str, str] = {} if encodings is None else encodings

    def add(self, loc: Loc | str, code: str, zh: str, en: str) -> None:
        self.problems.append(Problem(str(loc), code, _short(zh), _short(en)))

    # ---- scalars

    def money(self, value: Any, loc: Loc) -> int | object:
        """元 (str or int) → fen (int). TOML floats are refused: their precision is already lost
        (TOML reads ``1.1`` as a binary float, and the loader sees ``Decimal`` for them)."""
        if isinstance(value, float | Decimal):
            self.add(loc, "money_float", f"金额 {value} 不能写成小数形式的数字（浮点数会丢失精度），请写成字符串如 \"12345.67\" 或整数",
                     f'amount {value} must not be a float (precision): write a string such as "12345.67" or an integer')  # fmt: skip
            return _BAD
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.add(loc, "money_invalid", f"金额 {value!r} 无效，应为以元为单位的字符串或整数",
                     f"amount {value!r} is invalid: 元 as a string or an integer expected")  # fmt: skip
            return _BAD
        try:
            return money.parse_yuan(value)
        except money.MoneyError as exc:
            self.add(loc, exc.code, exc.zh, exc.en)
            return _BAD

    def number(self, value: Any, loc: Loc, what: str = "数值 number") -> Decimal | object:
        """int, str or TOML float (already a Decimal) → Decimal. ``"5%"`` → 0.05."""
        found: Decimal | None = None
        if isinstance(value, bool):
            pass
        elif isinstance(value, int | Decimal):
            found = Decimal(value)
        elif isinstance(value, float):  # from JSON: the shortest repr is what the user wrote
            found = Decimal(repr(value)) if math.isfinite(value) else None
        elif isinstance(value, str) and len(value) <= 40:
            found = _percent(value)
            text = unicodedata.normalize("NFKC", value).strip()
            if found is None and _PLAIN_NUMBER_RE.match(text):
                found = Decimal(text)
        if found is not None and _bounded(found):
            return found
        zh, en = what.split(" ", 1) if " " in what else (what, what)
        bounds = (
            f"（绝对值小于 10¹²，至多 {_PLACES} 位小数）",
            f" (below 10^12 in size, at most {_PLACES} decimals)",
        )
        self.add(loc, "number_invalid", f"{zh} {_clip(value)} 不是有效数字{bounds[0] if found is not None else ''}",
                 f"{en} {_clip(value)} is not a valid number{bounds[1] if found is not None else ''}")  # fmt: skip
        return _BAD

    def date(self, value: Any, loc: Loc) -> dt.date | object:
        """A TOML date or ``"YYYY-MM-DD"`` → date."""
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str) and _DATE_RE.match(value.strip()):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        self.add(
            loc,
            "date_invalid",
            f"日期 {value!r} 无效，应为 YYYY-MM-DD",
            f"date {value!r} is invalid: YYYY-MM-DD expected",
        )
        return _BAD

    def table(self, value: Any, loc: Loc) -> dict[str, Any] | None:
        if isinstance(value, Mapping):
            return dict(value)
        self.add(loc, "invalid_value", "应为表（键值对）", "a table (key/value pairs) is expected")
        return None

    def array(self, value: Any, loc: Loc) -> list[Any]:
        if isinstance(value, list):
            return value
        self.add(loc, "invalid_value", "应为数组", "an array is expected")
        return []

    def unknown_keys(self, data: Mapping[str, Any], allowed: Iterable[str], loc: Loc) -> None:
        allowed = set(allowed)
        for key in data:
            if key not in allowed:
                self.add(loc / key, "unknown_field", f"未知字段 {key}", f"unknown field {key}")

    # ---- pydantic

    def validate(
        self, model: type[M], data: Mapping[str, Any], loc: Loc, *, rename: Mapping[str, str] | None = None,
        skip: Iterable[str] = (),
    ) -> M | None:  # fmt: skip
        """Validate ``data`` with ``model``, translating errors into problems at file locations.

        ``rename`` maps model field names to file keys; errors on fields in ``skip`` (already
        reported during normalisation) are dropped."""
        try:
            return model.model_validate(dict(data))
        except ValidationError as exc:
            skipped = set(skip)
            for error in exc.errors():
                if error["loc"] and error["loc"][0] in skipped:
                    continue
                self.add_pydantic(error, loc, rename or {})
            return None

    def add_pydantic(self, error: Any, loc: Loc, rename: Mapping[str, str]) -> None:
        parts = list(error["loc"])
        kind = error["type"]
        # a discriminated union puts the tag into the location: rule.reverse.mode → rule.mode
        for i in range(len(parts) - 1, 0, -1):
            if parts[i - 1] == "rule" and parts[i] in RULE_TYPES:
                del parts[i]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            parts.append("type")
        for part in parts:
            loc = loc / (part if isinstance(part, int) else rename.get(str(part), str(part)))
        code, zh, en = translate_error(error)
        self.add(loc, code, zh, en)


def translate_error(error: Any) -> tuple[str, str, str]:
    """A pydantic error → (code, zh, en): the one translation of model errors into problems
    (the loader's, and the store's for units edited through the API or an import)."""
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    if "zh" in ctx and "en" in ctx:
        return kind, str(ctx["zh"]), str(ctx["en"])
    if kind == "missing":
        return "required", "缺少必填项", "required field is missing"
    if kind == "extra_forbidden":
        return "unknown_field", "未知字段", "unknown field"
    if kind == "union_tag_invalid":
        tags = ", ".join(RULE_TYPES)
        return ("unknown_rule_type", f"未知的评分规则类型 {ctx.get('tag')!r}，可用：{tags}",
                f"unknown rule type {ctx.get('tag')!r}; known: {tags}")  # fmt: skip
    if kind == "union_tag_not_found":
        return "rule_type_missing", "评分规则缺少 type", "the rule has no type"
    if kind in ("literal_error", "enum"):
        return ("invalid_choice", f"取值 {value!r} 不在允许范围内：{ctx.get('expected')}",
                f"{value!r} is not one of {ctx.get('expected')}")  # fmt: skip
    if kind == "string_pattern_mismatch":
        return ("invalid_format", f"{value!r} 格式不符（应匹配 {ctx.get('pattern')}）",
                f"{value!r} does not match {ctx.get('pattern')}")  # fmt: skip
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "")
        sign = {"greater_than_equal": "≥", "greater_than": ">", "less_than_equal": "≤", "less_than": "<"}[
            kind
        ]
        return (
            "out_of_range",
            f"取值 {value!r} 超出范围（应 {sign} {bound}）",
            f"{value!r} is out of range (must be {sign} {bound})",
        )
    if kind in ("string_too_short", "too_short"):
        return "too_short", "不能为空", "must not be empty"
    return (
        "invalid_value",
        f"取值 {value!r} 无效（{error.get('msg')}）",
        f"invalid value {value!r}: {error.get('msg')}",
    )


# --------------------------------------------------------------------------- parsed parts


@dataclass
class _Indicator:
    """What is known of one indicator even when it did not validate (for sums and duplicates)."""

    loc: Loc
    key: Any
    level1: Any
    level2: Any
    name: Any
    weight: Decimal | None
    model: IndicatorDef | None = None
    #: fields that failed normalisation (already reported): their cross checks are skipped
    skipped: frozenset[str] = frozenset()


@dataclass
class _Parts:
    """The validated pieces with their locations, for the cross checks."""

    file: str
    project: ProjectInfo | None = None
    policy: ScoringPolicy | None = None
    declared: DeclaredFunds | None = None
    declared_loc: Loc | None = None
    budget_fen: int | None = None
    budget_loc: Loc | None = None
    arrivals: list[tuple[Loc, Arrival]] = field(default_factory=list)
    arrivals_complete: bool = True
    units: list[tuple[Loc, UnitDef]] = field(default_factory=list)
    unit_keys_seen: set[str] = field(default_factory=set)
    #: False when a units file could not be read: references to units are then not checked
    units_complete: bool = True
    disbursements: list[tuple[Loc, DisbursementDef]] = field(default_factory=list)
    disbursements_complete: bool = True
    disbursements_loc: Loc | None = None
    levels: list[tuple[Loc, Level1Def]] = field(default_factory=list)
    levels_complete: bool = True
    indicators: list[_Indicator] = field(default_factory=list)
    questionnaire: QuestionnaireDef | None = None
    questionnaire_loc: Loc | None = None
    questionnaire_given: bool = False
    responses: list[tuple[Loc, ResponseDef]] = field(default_factory=list)


# --------------------------------------------------------------------------- the file reader

_TOP_KEYS = (
    "project", "policy", "budget", "arrivals", "units", "units_file", "disbursements", "disbursements_file",
    "levels", "indicators", "questionnaire", "responses",
)  # fmt: skip


class _DefinitionReader(_Reader):
    def read(self, data: Mapping[str, Any]) -> ProjectDefinition:
        root = Loc(self.filename)
        parts = _Parts(file=self.filename)
        self.unknown_keys(data, _TOP_KEYS, root)
        result: dict[str, Any] = {}

        project = self.table(data.get("project", {}), root / "project") or {}
        if "published_total" in project:
            project = dict(project)
            total = self.number(
                project.pop("published_total"), root / "project" / "published_total", "总分 total"
            )
            if total is not _BAD:
                if total < 0:  # type: ignore[operator]
                    self.add(root / "project" / "published_total", "out_of_range", "公布的总分不能为负", "a published total must not be negative")  # fmt: skip
                else:
                    result["published_total"] = total
        result["project"] = parts.project = self.read_project(project, root / "project")
        result["policy"] = parts.policy = self.read_policy(data.get("policy", {}), root / "policy")
        self.read_budget(data.get("budget"), root / "budget", parts, result)
        result["arrivals"] = self.read_arrivals(data.get("arrivals", []), root / "arrivals", parts)
        result["units"] = self.read_units(data, root, parts)
        result["disbursements"] = self.read_disbursements(data, root, parts)
        result["levels"] = self.read_levels(data.get("levels", []), root / "levels", parts)
        result["indicators"] = self.read_indicators(data.get("indicators"), root / "indicators", parts)
        result["questionnaire"] = self.read_questionnaire(
            data.get("questionnaire"), root / "questionnaire", parts
        )
        result["responses"] = self.read_responses(data.get("responses", []), root / "responses", parts)

        self.problems.extend(_cross_check(parts))
        if self.problems:
            raise DefinitionError(self.problems)
        return ProjectDefinition.model_validate(result)

    # ---- project, policy, budget

    def read_project(self, raw: dict[str, Any], loc: Loc) -> ProjectInfo | None:
        data = dict(raw)
        skip: set[str] = set()
        period = data.pop("period", None)
        if period is not None:
            period = self.table(period, loc / "period") or {}
            self.unknown_keys(period, ("start", "end"), loc / "period")
            if "start" in period:
                data["period_start"] = period["start"]
            if "end" in period:
                data["period_end"] = period["end"]
        rename = {"period_start": "period.start", "period_end": "period.end"} if period is not None else {}
        for name in ("period_start", "period_end"):
            if name in data:
                value = self.date(data[name], loc / rename.get(name, name))
                if value is _BAD:
                    skip.add(name)
                    data.pop(name)
                else:
                    data[name] = value
        return self.validate(ProjectInfo, data, loc, rename=rename, skip=skip)

    def read_policy(self, raw: Any, loc: Loc) -> ScoringPolicy | None:
        data = self.table(raw, loc)
        if data is None:
            return None
        skip: set[str] = set()
        if isinstance(data.get("rounding"), str):
            data["rounding"] = _ROUNDING_NAMES.get(data["rounding"].strip(), data["rounding"])
        for name in ("overachievement_ratio", "coverage_threshold", "total_weight"):
            if name in data:
                value = self.number(data[name], loc / name)
                data[name] = value
                if value is _BAD:
                    skip.add(name)
        policy = self.validate(ScoringPolicy, data, loc, skip=skip)
        if policy is not None:
            mins = [band.min_score for band in policy.grade_bands]
            if len({band.grade for band in policy.grade_bands}) != len(mins):
                self.add(loc / "grade_bands", "grade_bands", "等级名称重复", "a grade name is used twice")
            if mins != sorted(mins, reverse=True) or not mins or mins[-1] != 0:
                self.add(loc / "grade_bands", "grade_bands", "等级须按最低分从高到低排列，且最后一档最低分为0",
                         "grade bands must be ordered by min_score, highest first, the last one at 0")  # fmt: skip
        return policy

    def read_budget(self, raw: Any, loc: Loc, parts: _Parts, result: dict[str, Any]) -> None:
        if raw is None:
            self.add(loc, "required", "缺少 [budget] 预算", "the [budget] table is missing")
            return
        data = self.table(raw, loc) or {}
        self.unknown_keys(data, ("amount", "execution_denominator", *_DECLARED, "rows"), loc)
        declared: dict[str, Any] = {}
        for name, field_name in _DECLARED.items():
            if name in data:
                fen = self.money(data[name], loc / name)
                if fen is not _BAD:
                    declared[field_name] = fen
        rows = []
        for i, item in enumerate(self.array(data.get("rows", []), loc / "rows")):
            row = self.table(item, loc / "rows" / i)
            if row is None:
                continue
            self.unknown_keys(row, ("name", "initial", "amount", "executed"), loc / "rows" / i)
            values: dict[str, Any] = {"name": row.get("name")}
            for name, field_name in (
                ("initial", "initial_fen"),
                ("amount", "annual_fen"),
                ("executed", "executed_fen"),
            ):
                if name in row:
                    fen = self.money(row[name], loc / "rows" / i / name)
                    if fen is not _BAD:
                        values[field_name] = fen
            model = self.validate(
                FundsRow,
                values,
                loc / "rows" / i,
                rename={"annual_fen": "amount", "initial_fen": "initial", "executed_fen": "executed"},
            )
            if model is not None:
                rows.append(model)
        if declared or rows:
            result["declared"] = parts.declared = DeclaredFunds(**declared, rows=tuple(rows))
            parts.declared_loc = loc
        if "amount" not in data:
            self.add(loc / "amount", "required", "缺少预算金额（元）", "the budget amount (yuan) is missing")
        else:
            fen = self.money(data["amount"], loc / "amount")
            if fen is not _BAD:
                result["budget_fen"] = parts.budget_fen = fen  # type: ignore[assignment]
                parts.budget_loc = loc / "amount"
                if "declared" in result:
                    result["declared"] = parts.declared = result["declared"].model_copy(
                        update={"annual_fen": fen}
                    )
        denominator = data.get("execution_denominator", "arrived")
        if denominator not in ("arrived", "budget"):
            self.add(loc / "execution_denominator", "invalid_choice",
                     f"预算执行率分母 {denominator!r} 无效，应为 arrived（实际到位资金）或 budget（预算数）",
                     f"execution_denominator {denominator!r} is invalid: arrived or budget")  # fmt: skip
        result["execution_denominator"] = denominator

    # ---- money rows

    def read_arrivals(self, raw: Any, loc: Loc, parts: _Parts) -> list[Arrival]:
        out: list[Arrival] = []
        for i, item in enumerate(self.array(raw, loc)):
            here = loc / i
            data = self.table(item, here)
            if data is None:
                parts.arrivals_complete = False
                continue
            self.unknown_keys(data, ("date", "amount", "note"), here)
            model = self.money_row(Arrival, data, here, {"note"})
            if model is None:
                parts.arrivals_complete = False
            else:
                out.append(model)
                parts.arrivals.append((here, model))
        return out

    def money_row(self, model: type[M], data: dict[str, Any], loc: Loc, keep: set[str]) -> M | None:
        """Validate a row with ``amount`` (元) and ``date``; other kept keys pass through."""
        values: dict[str, Any] = {k: data[k] for k in keep if k in data}
        skip: set[str] = set()
        if "amount" in data:
            fen = self.money(data["amount"], loc / "amount")
            if fen is _BAD:
                skip.add("amount_fen")
            else:
                values["amount_fen"] = fen
        if "date" in data:
            day = self.date(data["date"], loc / "date")
            if day is _BAD:
                skip.add("date")
            else:
                values["date"] = day
        valid = self.validate(
            model, values, loc, rename={"amount_fen": "amount", "unit_key": "unit"}, skip=skip
        )
        return None if skip else valid

    def csv_rows(
        self, name: Any, loc: Loc, required: tuple[str, ...]
    ) -> list[tuple[Loc, dict[str, str]]] | None:
        """Rows of a CSV (or XLSX) file next to the definition, read by the one reader and
        decoder (``config.tables``): (location ``file:line``, non-empty cells as text)."""
        if not isinstance(name, str) or not name or len(name) > 255 or "\x00" in name:
            self.add(loc, "invalid_value", "应为 CSV 文件名", "a CSV file name is expected")
            return None
        path = (self.base_dir or Path(".")) / name
        try:
            found = path.is_file()
        except (OSError, ValueError):
            found = False
        if not found:
            self.add(loc, "file_not_found", f"找不到文件 {name}", f"file {name} not found")
            return None
        try:
            table = read_table(path.read_bytes(), name=name)
        except TableError as exc:
            for p in exc.problems:
                self.add(Loc(name, line=p.row) if p.row else Loc(name), p.code, p.zh, p.en)
            return None
        except OSError as exc:
            self.add(loc, "file_not_found", f"无法读取文件 {name}（{exc.strerror}）", f"cannot read file {name} ({exc.strerror})")  # fmt: skip
            return None
        self.encodings[name] = encoding_label(table.encoding)
        missing = [c for c in required if c not in table.header]
        if missing:
            self.add(Loc(name, line=1), "csv_header", f"表头缺少列：{', '.join(missing)}",
                     f"header is missing column(s): {', '.join(missing)}")  # fmt: skip
            return None
        rows: list[tuple[Loc, dict[str, str]]] = []
        for line, cells in table.rows:
            texts = {k: cell_text(v) for k, v in cells.items()}
            rows.append((Loc(name, line=line), {k: v for k, v in texts.items() if v}))
        return rows

    # ---- units

    def read_units(self, data: Mapping[str, Any], root: Loc, parts: _Parts) -> list[UnitDef]:
        rows: list[tuple[Loc, dict[str, Any]]] = []
        for i, item in enumerate(self.array(data.get("units", []), root / "units")):
            table = self.table(item, root / "units" / i)
            if table is not None:
                rows.append((root / "units" / i, table))
        if "units_file" in data:
            unit_rows = self.csv_rows(data["units_file"], root / "units_file", ("key", "name"))
            if unit_rows is None:
                parts.units_complete = False
            for here, cells in unit_rows or []:
                channel: dict[str, Any] = {}
                for column in list(cells):
                    if column.startswith("channel_"):
                        channel[column.removeprefix("channel_")] = cells.pop(column)
                if channel:
                    cells["channel"] = channel
                rows.append((here, cells))
        out: list[UnitDef] = []
        for here, raw in rows:
            unit = self.read_unit(raw, here)
            if isinstance(raw.get("key"), str):
                parts.unit_keys_seen.add(raw["key"])
            if unit is not None:
                out.append(unit)
                parts.units.append((here, unit))
        return out

    def read_unit(self, raw: dict[str, Any], loc: Loc) -> UnitDef | None:
        data = dict(raw)
        self.unknown_keys(data, ("key", "name", "uscc", "channel"), loc)
        skip: set[str] = set()
        uscc = data.get("uscc")
        if uscc in (None, ""):
            data["uscc"] = None
        elif isinstance(uscc, str):
            problem = uscc_problem(uscc.strip().upper())
            if problem:  # reported; validate the rest so duplicates etc. are still checked
                self.add(loc / "uscc", *problem)
                data["uscc"] = None
        if "channel" in data:
            channel = self.table(data["channel"], loc / "channel")
            if channel is None:
                skip.add("channel")
            else:
                config = dict(channel.pop("config", None) or {})
                for key in [k for k in channel if k not in ("kind", "address")]:
                    config[key] = channel.pop(key)
                channel["config"] = {k: str(v) for k, v in config.items()}
                data["channel"] = channel
        return self.validate(UnitDef, data, loc, skip=skip)

    # ---- disbursements

    def read_disbursements(self, data: Mapping[str, Any], root: Loc, parts: _Parts) -> list[DisbursementDef]:
        rows: list[tuple[Loc, dict[str, Any]]] = []
        parts.disbursements_loc = root / "disbursements"
        for i, item in enumerate(self.array(data.get("disbursements", []), root / "disbursements")):
            table = self.table(item, root / "disbursements" / i)
            if table is None:
                parts.disbursements_complete = False
            else:
                rows.append((root / "disbursements" / i, table))
        if "disbursements_file" in data:
            csv_rows = self.csv_rows(
                data["disbursements_file"], root / "disbursements_file", ("unit", "amount", "date")
            )
            if csv_rows is None:
                parts.disbursements_complete = False
            else:
                parts.disbursements_loc = Loc(str(data["disbursements_file"]))
            rows.extend(csv_rows or [])
        out: list[DisbursementDef] = []
        for here, raw in rows:
            self.unknown_keys(raw, ("unit", "batch", "amount", "date", "voucher"), here)
            values = dict(raw)
            if "unit" in values:
                values["unit_key"] = values.pop("unit")
            if "batch" in values:
                values["batch"] = str(values["batch"])
            model = self.money_row(DisbursementDef, values, here, {"unit_key", "batch", "voucher"})
            if model is None:
                parts.disbursements_complete = False
            else:
                out.append(model)
                parts.disbursements.append((here, model))
        return out

    # ---- levels and indicators

    def read_levels(self, raw: Any, loc: Loc, parts: _Parts) -> list[Level1Def]:
        out: list[Level1Def] = []
        for i, item in enumerate(self.array(raw, loc)):
            here = loc / i
            data = self.table(item, here)
            if data is None:
                parts.levels_complete = False
                continue
            self.unknown_keys(data, ("name", "weight", "sub"), here)
            values: dict[str, Any] = {"name": data.get("name"), "children": []}
            ok = True
            if "weight" in data:
                weight = self.number(data["weight"], here / "weight", "分值 weight")
                ok = weight is not _BAD
                values["weight"] = weight
            for name, value in (self.table(data.get("sub", {}), here / "sub") or {}).items():
                weight = self.number(value, here / "sub" / name, "分值 weight")
                ok = ok and weight is not _BAD
                values["children"].append({"name": name, "weight": weight})
            model = self.validate(Level1Def, values, here, rename={"children": "sub"}) if ok else None
            if model is None:
                parts.levels_complete = False
            else:
                out.append(model)
                parts.levels.append((here, model))
        return out

    def read_indicators(self, raw: Any, loc: Loc, parts: _Parts) -> list[IndicatorDef]:
        if raw is None:
            self.add(loc, "required", "缺少指标 [[indicators]]", "no [[indicators]] defined")
            return []
        out: list[IndicatorDef] = []
        for i, item in enumerate(self.array(raw, loc)):
            here = loc / i
            data = self.table(item, here)
            if data is None:
                continue
            record = self.read_indicator(data, here)
            parts.indicators.append(record)
            if record.model is not None:
                out.append(record.model)
        return out

    def read_indicator(self, raw: dict[str, Any], loc: Loc) -> _Indicator:
        allowed = ("key", "level1", "level2", "name", "weight", "rule", "target", "source", "actual", "points",
                   "evidence", "detail", "override", "note", "published_score", "rounding", "decimals")  # fmt: skip
        self.unknown_keys(raw, allowed, loc)
        values: dict[str, Any] = {
            k: raw[k] for k in ("key", "level1", "level2", "name", "note", "decimals") if k in raw
        }
        values["source"] = raw.get("source", "entered")
        skip: set[str] = set()
        if "rounding" in raw:
            rounding = raw["rounding"]
            values["rounding"] = (
                _ROUNDING_NAMES.get(rounding.strip(), rounding) if isinstance(rounding, str) else rounding
            )
        if "published_score" in raw:
            published = self.number(raw["published_score"], loc / "published_score", "得分 score")
            if published is _BAD:
                skip.add("published_score")
            else:
                values["published_score"] = published
        weight: Decimal | None = None
        if "weight" in raw:
            parsed = self.number(raw["weight"], loc / "weight", "分值 weight")
            if parsed is _BAD:
                skip.add("weight")
            else:
                weight = values["weight"] = parsed  # type: ignore[assignment]

        rule = self.read_rule(raw.get("rule"), loc / "rule")
        if rule is _BAD:
            skip.add("rule")
        else:
            values["rule"] = rule
        rule_type = rule.get("type") if isinstance(rule, dict) else None

        target = self.read_target(raw.get("target"), loc / "target", rule)
        if target is _BAD:
            skip.add("target")
        elif target is not None:
            values["target"] = target
        target_unit = target.get("unit", "") if isinstance(target, dict) else ""
        target_text = target.get("text") if isinstance(target, dict) else None

        actual = self.read_actual(raw, loc, target_unit, target_text, rule_type)
        if actual is _BAD:
            skip.add("actual")
        elif actual is not None:
            values["actual"] = actual
        elif raw.get("evidence"):
            values["note"] = "\n".join(filter(None, [values.get("note", ""), str(raw["evidence"])]))

        if "override" in raw:
            override = self.read_override(raw["override"], loc / "override")
            if override is _BAD:
                skip.add("override")
            else:
                values["override"] = override

        model = self.validate(IndicatorDef, values, loc, skip=skip)

        def text(name: str) -> str | None:  # a non-text key/name is reported by the model check
            value = raw.get(name)
            return value if isinstance(value, str) else None

        return _Indicator(
            loc=loc, key=text("key"), level1=text("level1"), level2=text("level2"), name=text("name"),
            weight=weight, model=model, skipped=frozenset(skip),
        )  # fmt: skip

    def read_rule(self, raw: Any, loc: Loc) -> dict[str, Any] | object:
        """``"proportional"`` or ``{type = "reverse", mode = "per_point", ...}`` (params may also sit in
        a ``params`` sub-table); strings like ``"90%"`` become fractions."""
        if raw is None:
            self.add(loc, "required", "缺少评分规则 rule", "the scoring rule is missing")
            return _BAD
        if isinstance(raw, str):
            return {"type": raw}
        if not isinstance(raw, Mapping):
            self.add(loc, "rule_invalid", "评分规则应为规则名或表", "a rule is a rule name or a table")
            return _BAD
        rule = dict(raw)
        params = rule.pop("params", None)
        if isinstance(params, Mapping):
            rule.update(params)

        def fractions(value: Any) -> Any:
            if isinstance(value, str) and (pct := _percent(value)) is not None:
                return pct
            if isinstance(value, list):
                return [fractions(v) for v in value]
            if isinstance(value, Mapping):
                return {k: fractions(v) for k, v in value.items()}
            return value

        return {k: fractions(v) for k, v in rule.items()}

    def read_target(self, raw: Any, loc: Loc, rule: Any) -> dict[str, Any] | None | object:
        """Friendly string or ``{op, value, unit}`` → TargetDef input (rates as fractions).

        Targets are read as printed: full-width and variant comparators (``≧735 人次``,
        ``≦100%``, ``＞``, ``═100 %``), units after the number, ``%`` after a space. A rule that
        needs a number but gets a text is told the accepted forms."""
        if raw is None:
            return None
        rule_type = rule.get("type") if isinstance(rule, dict) else None
        wants_number = rule_type in ("proportional", "reverse", "satisfaction") or (
            isinstance(rule, dict)
            and (
                (rule_type == "tiered" and rule.get("on", "rate") == "rate")
                or (rule_type == "deduction" and rule.get("basis") == "shortfall_pct")
            )
        )
        op: str | None = None
        unit: str | None = None
        if isinstance(raw, str):
            raw = _printed(raw)
        if isinstance(raw, Mapping):
            self.unknown_keys(raw, ("op", "value", "unit"), loc)
            if raw.get("op") is not None:
                op = _OPS.get(_printed(str(raw["op"])))
                if op is None:
                    self.add(loc / "op", "target_invalid", f"比较符 {raw['op']!r} 无效（可用 ≥ ≤ = > <）",
                             f"comparator {raw['op']!r} is invalid (use >= <= = > <)")  # fmt: skip
                    return _BAD
            unit = _printed(str(raw["unit"])) if raw.get("unit") is not None else None
            value = raw.get("value")
            if isinstance(value, str):
                value = _printed(value)
            if value is None:
                self.add(loc / "value", "target_invalid", "指标值缺少 value", "the target has no value")
                return _BAD
        else:
            value = raw
            if isinstance(raw, str):
                match = _TARGET_RE.match(raw)
                assert match is not None
                op = _OPS.get(match.group(1) or "")
                value = match.group(2)
        out: dict[str, Any] = {}
        if isinstance(value, dt.datetime):
            value = _BAD
        elif isinstance(value, dt.date):
            out["day"] = value
        elif isinstance(value, bool):
            value = _BAD
        elif isinstance(value, int | Decimal | float):
            number = self.number(value, loc)
            if number is _BAD:
                return _BAD
            out["number"] = number
        elif isinstance(value, str) and value.strip() and len(value) <= 200:
            text = value.strip()
            number = _NUMBER_RE.match(text)
            if _DATE_RE.match(text):
                try:
                    out["day"] = dt.date.fromisoformat(text)
                except ValueError:
                    value = _BAD
            elif number and _bounded(Decimal(number.group(1))):
                out["number"] = Decimal(number.group(1))
                if number.group(2) and unit is None:
                    unit = number.group(2).strip()
            else:
                out["text"] = text
        else:
            value = _BAD
        if wants_number and "number" in out and out["number"] < 0:
            self.add(loc, "out_of_range", f"指标值 {_clip(raw)} 不能为负（评分规则 {rule_type} 按完成比例计分）",
                     f"target {_clip(raw)} must not be negative (rule {rule_type} scores a completion ratio)")  # fmt: skip
            return _BAD
        if value is _BAD or ("text" in out and wants_number):
            self.add(loc, "target_invalid",
                     f"指标值 {_clip(raw)} 无法识别为数值（评分规则 {rule_type} 需要数值指标值）；可用写法：{TARGET_FORMS_ZH}"
                     if "text" in out else f"指标值 {_clip(raw)} 无法识别；可用写法：{TARGET_FORMS_ZH}",
                     f"target {_clip(raw)} is not understood"
                     + (f" as a number (rule {rule_type} needs one)" if "text" in out else "")
                     + f"; accepted forms: {TARGET_FORMS_ZH}")  # fmt: skip
            return _BAD
        unit = (unit or "").replace("％", "%").strip()
        if len(unit) > 20:
            self.add(loc, "target_invalid", f"指标值单位 {_clip(unit)} 过长（不超过20字）", "the target's unit is too long (20 characters at most)")  # fmt: skip
            return _BAD
        if "number" in out and unit == "%":
            out["number"] = out["number"] / HUNDRED
        if op is None:
            op = "=" if "text" in out else "<=" if rule_type in _AT_MOST_RULES else ">="
        out["op"] = op
        out["unit"] = unit
        return out

    def read_actual(
        self,
        raw: Mapping[str, Any],
        loc: Loc,
        target_unit: str,
        target_text: str | None,
        rule_type: Any = None,
    ) -> Any:
        """The entered actual (``actual`` and/or ``points``) → Actual input, or None when absent.
        For a ``rating`` rule the actual is the rating text as printed (较好, 程度较高)."""
        if "actual" not in raw and "points" not in raw:
            return None
        out: dict[str, Any] = {"evidence": str(raw.get("evidence", "")), "detail": str(raw.get("detail", ""))}
        bad = False
        if "points" in raw:
            points = []
            for i, item in enumerate(self.array(raw["points"], loc / "points")):
                here = loc / "points" / i
                point = self.table(item, here)
                if point is None:
                    bad = True
                    continue
                self.unknown_keys(point, ("text", "met", "weight", "evidence"), here)
                if not isinstance(point.get("met"), bool):
                    self.add(here / "met", "actual_invalid", "评价要点须写明 met = true 或 false",
                             "a check point needs met = true or false")  # fmt: skip
                    bad = True
                if "weight" in point:
                    weight = self.number(point["weight"], here / "weight", "权重 weight")
                    bad = bad or weight is _BAD
                    point["weight"] = weight
                points.append(point)
            out["checklist"] = points
        if "actual" in raw and rule_type == "rating":
            value = raw["actual"]
            if not isinstance(value, str) or not value.strip() or len(value) > 100:
                self.add(loc / "actual", "actual_invalid", f"评级 {_clip(value)} 应为评级文字（如 较好）",
                         f"rating {_clip(value)} must be a rating text (such as 较好)")  # fmt: skip
                return _BAD
            out["text"] = unicodedata.normalize("NFKC", value).strip()
        elif "actual" in raw:
            value = raw["actual"]
            unit = target_unit
            if isinstance(value, str):
                value = _printed(value)
            if isinstance(value, bool):
                out["met"] = value
            elif isinstance(value, dt.datetime):
                bad = True
            elif isinstance(value, dt.date):
                out["day"] = value
            elif isinstance(value, int | Decimal | float):
                number = self.number(value, loc / "actual")
                if number is _BAD:
                    return _BAD
                out["number"] = number / HUNDRED if unit == "%" else number  # type: ignore[operator]
            elif isinstance(value, str) and len(value) <= 200:
                text = value.strip()
                match = _NUMBER_RE.match(text)
                if match and not _bounded(Decimal(match.group(1))):
                    match = None
                if _DATE_RE.match(text):
                    try:
                        out["day"] = dt.date.fromisoformat(text)
                    except ValueError:
                        bad = True
                elif match:
                    unit = (match.group(2).strip() or unit).replace("％", "%")
                    number = Decimal(match.group(1))
                    out["number"] = number / HUNDRED if unit == "%" else number
                elif target_text is not None and text == target_text:
                    out["met"] = True
                elif text.lower() in _TRUE or text.lower() in _FALSE:
                    out["met"] = text.lower() in _TRUE
                else:
                    bad = True
            else:
                bad = True
            if bad and "met" not in out and "day" not in out and "number" not in out:
                self.add(loc / "actual", "actual_invalid",
                         f"实际完成值 {_clip(value)} 无法识别（数值如 7、21.7%，日期 YYYY-MM-DD，或 true/false）",
                         f"actual {_clip(value)} is not understood (a number such as 7 or 21.7%, a date, or true/false)")  # fmt: skip
            out["unit"] = unit
        return _BAD if bad else out

    def read_override(self, raw: Any, loc: Loc) -> dict[str, Any] | object:
        data = self.table(raw, loc)
        if data is None:
            return _BAD
        self.unknown_keys(data, ("score", "reason", "by", "source"), loc)
        bad = False
        reason = str(data.get("reason") or "").strip()
        source = data.get("source", "evaluator")
        if source not in ("evaluator", "published"):
            self.add(loc / "source", "invalid_choice", f"人工调整来源 {_clip(source)} 无效，应为 evaluator（评价人判断）或 published（照录已公布的表）",
                     f"override source {_clip(source)} is invalid: evaluator or published")  # fmt: skip
            return _BAD
        if source == "published" and not reason:
            reason = "已公布的自评表"
        if not reason:
            self.add(loc / "reason", "override_no_reason", "人工调整得分必须写明理由 reason",
                     "a manual override needs a written reason")  # fmt: skip
            bad = True
        if "score" not in data:
            self.add(loc / "score", "required", "人工调整缺少得分 score", "the override has no score")
            return _BAD
        score = self.number(data["score"], loc / "score", "得分 score")
        if score is _BAD:
            return _BAD
        if score < 0:  # type: ignore[operator]
            self.add(
                loc / "score",
                "out_of_range",
                "人工调整得分不能为负",
                "an override score must not be negative",
            )
            bad = True
        return (
            _BAD
            if bad
            else {"score": score, "reason": reason, "by": str(data.get("by", "")), "source": source}
        )

    # ---- questionnaire and responses

    def read_questionnaire(self, raw: Any, loc: Loc, parts: _Parts) -> QuestionnaireDef | None:
        if raw is None:
            return None
        parts.questionnaire_given = True
        parts.questionnaire_loc = loc
        data = self.table(raw, loc)
        if data is None:
            return None
        if "likert_weights" in data:
            weights = [
                self.number(w, loc / "likert_weights" / i, "权重 weight")
                for i, w in enumerate(self.array(data["likert_weights"], loc / "likert_weights"))
            ]
            if any(w is _BAD for w in weights):
                return None
            data["likert_weights"] = weights
        questions = []
        for i, item in enumerate(self.array(data.get("questions", []), loc / "questions")):
            question = self.table(item, loc / "questions" / i)
            if question is None:
                return None
            for bound in ("min", "max"):
                if bound in question:
                    value = self.number(question[bound], loc / "questions" / i / bound)
                    if value is _BAD:
                        return None
                    question[bound] = value
            questions.append(question)
        data["questions"] = questions
        parts.questionnaire = self.validate(QuestionnaireDef, data, loc)
        return parts.questionnaire

    def read_responses(self, raw: Any, loc: Loc, parts: _Parts) -> list[ResponseDef]:
        out: list[ResponseDef] = []
        for i, item in enumerate(self.array(raw, loc)):
            here = loc / i
            data = self.table(item, here)
            if data is None:
                continue
            self.unknown_keys(data, ("unit", "answers", "submitted_on"), here)
            values: dict[str, Any] = {}
            if "unit" in data:
                values["unit_key"] = data["unit"]
            skip: set[str] = set()
            if "submitted_on" in data:
                day = self.date(data["submitted_on"], here / "submitted_on")
                if day is _BAD:
                    skip.add("submitted_on")
                else:
                    values["submitted_on"] = day
            answers = self.table(data.get("answers", {}), here / "answers")
            if answers is None:
                continue

            def as_text(value: Any) -> Any:
                if isinstance(value, int | Decimal) and not isinstance(value, bool):
                    return _fmt(Decimal(value))
                if isinstance(value, list):
                    return [as_text(v) for v in value]
                return value

            values["answers"] = {k: as_text(v) for k, v in answers.items()}
            model = self.validate(ResponseDef, values, here, rename={"unit_key": "unit"}, skip=skip)
            if model is not None and not skip:
                out.append(model)
                parts.responses.append((here, model))
        return out


# --------------------------------------------------------------------------- cross checks


def _sample_actual(source: str, project: ProjectInfo | None) -> Actual | None:
    """A representative computed actual (same kind and unit as ``scoring.facts`` produces), so
    that a definition's target is checked against what its source will deliver."""
    if source in _FUNDS_RATE_SOURCES or source == "survey.satisfaction":
        return Actual(number=Decimal(1), unit="%")
    if source == "funds.completion_date" and project is not None:
        return Actual(day=project.period_end)
    return None


def _cross_check(parts: _Parts) -> list[Problem]:
    """Every check that spans fields: sums, subtotals, references, duplicates, dates."""
    problems: list[Problem] = []
    file = parts.file
    root = Loc(file)

    def add(loc: Loc | str, code: str, zh: str, en: str) -> None:
        problems.append(Problem(str(loc), code, _short(zh), _short(en)))

    # ---- weights: total, declared levels, subtotals
    indicators = parts.indicators
    full = parts.policy.total_weight if parts.policy is not None else HUNDRED
    weights_known = all(r.weight is not None for r in indicators)
    applicable = [r for r in indicators if r.model is not None and r.model.rule.type != "not_applicable"]
    if (
        indicators
        and all(r.model is not None for r in indicators)
        and sum((r.model.weight for r in applicable if r.model), Decimal(0)) <= 0
    ):
        add(root / "indicators", "weights_total", "没有分值大于0的适用指标，无法计算总分",
            "no applicable indicator has a positive weight: the table cannot be totalled")  # fmt: skip
    if indicators and weights_known:
        total = sum((r.weight for r in indicators if r.weight is not None), Decimal(0))
        if total != full:
            hint = "" if full != HUNDRED else "（满分不是100分的表请在 [policy] 写明 total_weight）"
            hint_en = (
                ""
                if full != HUNDRED
                else " (a table whose full marks are not 100 states [policy] total_weight)"
            )
            add(root / "indicators", "weights_total", f"各三级指标分值合计 {_fmt(total)} 分，应为 {_fmt(full)} 分{hint}",
                f"indicator weights add up to {_fmt(total)}, not {_fmt(full)}{hint_en}")  # fmt: skip
    if parts.levels and parts.levels_complete:
        seen_level1: set[str] = set()
        for loc, level in parts.levels:
            if level.name in seen_level1:
                add(
                    loc / "name",
                    "duplicate_level",
                    f"一级指标 {level.name} 重复声明",
                    f"level-1 {level.name} is declared twice",
                )
            seen_level1.add(level.name)
        declared_total = sum((lv.weight for _, lv in parts.levels), Decimal(0))
        if declared_total != full:
            add(root / "levels", "levels_total", f"一级指标声明分值合计 {_fmt(declared_total)} 分，应为 {_fmt(full)} 分",
                f"declared level-1 weights add up to {_fmt(declared_total)}, not {_fmt(full)}")  # fmt: skip
        by_level1: dict[str, Decimal] = defaultdict(Decimal)
        by_level2: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for record in indicators:
            if record.weight is not None:
                by_level1[str(record.level1)] += record.weight
                by_level2[(str(record.level1), str(record.level2))] += record.weight
        declared = {lv.name: lv for _, lv in parts.levels}
        for record in indicators:
            level = declared.get(str(record.level1))
            if level is None:
                add(record.loc / "level1", "level_undeclared", f"一级指标 {record.level1} 未在 [[levels]] 中声明",
                    f"level-1 {record.level1} is not declared in [[levels]]")  # fmt: skip
            elif level.children and str(record.level2) not in {c.name for c in level.children}:
                add(record.loc / "level2", "level_undeclared", f"二级指标 {record.level1}/{record.level2} 未在 [[levels]] 中声明",
                    f"level-2 {record.level1}/{record.level2} is not declared in [[levels]]")  # fmt: skip
        if weights_known:
            for loc, level in parts.levels:
                children_total = sum((c.weight for c in level.children), Decimal(0))
                if level.children and children_total != level.weight:
                    add(loc / "sub", "level_children_total",
                        f"一级指标 {level.name} 声明 {_fmt(level.weight)} 分，其二级指标声明合计 {_fmt(children_total)} 分",
                        f"level-1 {level.name} declares {_fmt(level.weight)} but its level-2 weights add up to {_fmt(children_total)}")  # fmt: skip
                actual = by_level1.get(level.name, Decimal(0))
                if actual != level.weight:
                    add(loc / "weight", "level1_subtotal",
                        f"一级指标 {level.name} 声明 {_fmt(level.weight)} 分，其三级指标分值合计 {_fmt(actual)} 分",
                        f"level-1 {level.name} declares {_fmt(level.weight)} but its indicators add up to {_fmt(actual)}")  # fmt: skip
                for child in level.children:
                    actual = by_level2.get((level.name, child.name), Decimal(0))
                    if actual != child.weight:
                        add(loc / "sub" / child.name, "level2_subtotal",
                            f"二级指标 {level.name}/{child.name} 声明 {_fmt(child.weight)} 分，其三级指标分值合计 {_fmt(actual)} 分",
                            f"level-2 {level.name}/{child.name} declares {_fmt(child.weight)} but its indicators add up to {_fmt(actual)}")  # fmt: skip

    # ---- indicators: duplicates, sources, targets, actuals, overrides
    first_key: dict[Any, Loc] = {}
    first_name: dict[tuple[Any, Any, Any], Loc] = {}
    for record in indicators:
        if record.key is not None:
            if record.key in first_key:
                add(record.loc / "key", "duplicate_indicator_key", f"指标编码 {record.key} 与 {first_key[record.key]} 重复",
                    f"indicator key {record.key} duplicates {first_key[record.key]}")  # fmt: skip
            else:
                first_key[record.key] = record.loc
        triple = (record.level1, record.level2, record.name)
        if record.name is not None:
            if triple in first_name:
                add(record.loc / "name", "duplicate_indicator_name",
                    f"二级指标 {record.level1}/{record.level2} 下的三级指标 {record.name} 与 {first_name[triple]} 重复",
                    f"indicator {record.name} under {record.level1}/{record.level2} duplicates {first_name[triple]}")  # fmt: skip
            else:
                first_name[triple] = record.loc
    sources = known_sources()
    policy = parts.policy or ScoringPolicy()
    for record in indicators:
        model, loc = record.model, record.loc
        if model is None:
            continue
        rule = model.rule
        if model.source not in sources:
            add(loc / "source", "unknown_source", f"未知的数据来源 {model.source}，可用：{', '.join(sources)}",
                f"unknown source {model.source}; known: {', '.join(sources)}")  # fmt: skip
        else:
            expected = (
                {"timeliness"} if model.source == "funds.completion_date"
                else {"satisfaction", "proportional", "tiered"} if model.source == "survey.satisfaction"
                else {"proportional", "reverse", "tiered", "deduction"} if model.source in _FUNDS_RATE_SOURCES
                else None
            )  # fmt: skip
            if expected is not None and rule.type not in expected | {"not_applicable"}:
                add(loc / "rule" / "type", "source_rule_mismatch",
                    f"数据来源 {model.source} 不能用评分规则 {rule.type}（可用：{', '.join(sorted(expected))}）",
                    f"source {model.source} cannot be scored with rule {rule.type} (use {', '.join(sorted(expected))})")  # fmt: skip
            if model.source == "survey.satisfaction" and not parts.questionnaire_given:
                add(loc / "source", "satisfaction_without_questionnaire", "满意度来源于问卷，但未定义 [questionnaire]",
                    "the satisfaction source needs a [questionnaire]")  # fmt: skip
        needs: str | None = None
        if rule.type in ("proportional", "reverse"):
            needs = "number"
        elif rule.type == "satisfaction" and rule.mode == "target":
            needs = "number"
        elif rule.type == "tiered" and rule.on == "rate":
            needs = "number"
        elif rule.type == "deduction" and rule.basis == "shortfall_pct":
            needs = "number"
        elif rule.type == "timeliness":
            needs = "day"
        if "target" in record.skipped:
            pass
        elif needs and model.target is None:
            add(loc / "target", "target_missing", f"评分规则 {rule.type} 需要指标值 target",
                f"rule {rule.type} needs a target")  # fmt: skip
        elif needs and model.target is not None and model.target.kind != needs:
            what = ("数值", "a number") if needs == "number" else ("日期", "a date")
            add(loc / "target", "target_type", f"评分规则 {rule.type} 的指标值应为{what[0]}，而不是 {model.target.display()}",
                f"rule {rule.type} needs {what[1]} as target, not {model.target.display()}")  # fmt: skip
        actual = None if "actual" in record.skipped else model.actual
        if actual is not None and model.source != "entered":
            add(loc / "actual", "actual_for_computed",
                f"数据来源为 {model.source} 的指标由系统计算，不能填写实际完成值",
                f"indicators with source {model.source} are computed: do not enter an actual")  # fmt: skip
        elif actual is not None and rule.type != "not_applicable":
            ok = (
                actual.number is not None if rule.type in _NUMBER_RULES
                else actual.day is not None if rule.type == "timeliness"
                else actual.met is not None if rule.type == "binary"
                else bool(actual.checklist) if rule.type == "checklist"
                else True
            )  # fmt: skip
            if not ok:
                kind = {"timeliness": ("日期", "a date"), "binary": ("true/false", "true/false"),
                        "checklist": ("评价要点 points", "check points (points)")}.get(rule.type, ("数值", "a number"))  # fmt: skip
                add(loc / ("points" if rule.type == "checklist" else "actual"), "actual_type",
                    f"评分规则 {rule.type} 的实际完成值应为{kind[0]}", f"rule {rule.type} needs {kind[1]} as the actual")  # fmt: skip
        if model.override is not None and model.override.score > model.weight:
            add(loc / "override" / "score", "override_exceeds_weight",
                f"人工调整得分 {_fmt(model.override.score)} 超过该指标分值 {_fmt(model.weight)}",
                f"override score {_fmt(model.override.score)} exceeds the weight {_fmt(model.weight)}")  # fmt: skip
        elif model.override is not None and rule.type == "not_applicable":
            add(loc / "override", "override_not_applicable", "不适用的指标不能人工调整得分",
                "a not-applicable indicator cannot be overridden")  # fmt: skip
        if model.published_score is not None and model.published_score > model.weight:
            add(loc / "published_score", "published_exceeds_weight",
                f"公布的得分 {_fmt(model.published_score)} 超过该指标分值 {_fmt(model.weight)}",
                f"published score {_fmt(model.published_score)} exceeds the weight {_fmt(model.weight)}")  # fmt: skip
        if (
            rule.type == "rating"
            and actual is not None
            and actual.text is not None
            and actual.text not in rule.levels
        ):
            add(loc / "actual", "rating_unknown",
                f"评级 {actual.text} 未在评分规则的 levels 中配置（已配置：{'、'.join(rule.levels)}）",
                f"rating {actual.text} is not one of the rule's levels ({', '.join(rule.levels)})")  # fmt: skip
        elif "target" not in record.skipped and "actual" not in record.skipped:
            # The engine's own consistency checks (comparator vs rule, units of target and actual,
            # negative targets, deduction floors, planned start dates…) run here once, so that a
            # definition that loads always scores: each contradiction becomes a located problem.
            try:
                sample = actual if model.source == "entered" else _sample_actual(model.source, parts.project)
                score_indicator(model.spec(), sample, policy)
            except (ValueError, ArithmeticError) as exc:
                detail = str(exc).split(": ", 1)[-1] or type(exc).__name__
                add(loc / "rule", "rule_contradiction", f"评分规则与指标值/实际值矛盾：{detail}",
                    f"the rule contradicts the target or actual: {detail}")  # fmt: skip

    # ---- declared amounts (自评表 numbers): the same order as the ledger's
    declared = parts.declared
    if declared is not None:
        dloc = parts.declared_loc or root / "budget"
        if (
            declared.arrived_fen is not None
            and parts.budget_fen is not None
            and declared.arrived_fen > parts.budget_fen
        ):
            add(dloc / "arrived", "arrived_exceeds_budget",
                f"到位数 {_yuan(declared.arrived_fen)} 元超过全年预算数 {_yuan(parts.budget_fen)} 元",
                f"arrived {_yuan(declared.arrived_fen)} yuan exceeds the budget {_yuan(parts.budget_fen)} yuan")  # fmt: skip
        ceiling = declared.arrived_fen if declared.arrived_fen is not None else parts.budget_fen
        if declared.executed_fen is not None and ceiling is not None and declared.executed_fen > ceiling:
            add(dloc / "executed", "disbursed_exceeds_arrived",
                f"全年执行数 {_yuan(declared.executed_fen)} 元超过{'到位数' if declared.arrived_fen is not None else '全年预算数'} {_yuan(ceiling)} 元",
                f"executed {_yuan(declared.executed_fen)} yuan exceeds {'arrived' if declared.arrived_fen is not None else 'the budget'} {_yuan(ceiling)} yuan")  # fmt: skip

    # ---- money: period, sums, order (the one ledger check, ``config.ledger``)
    project = parts.project
    for problem in check_ledger(
        period=(project.period_start, project.period_end) if project is not None else None,
        budget_fen=parts.budget_fen,
        arrivals=[Entry(loc, a.date, a.amount_fen) for loc, a in parts.arrivals],
        disbursements=[Entry(loc, d.date, d.amount_fen) for loc, d in parts.disbursements],
        arrivals_complete=parts.arrivals_complete,
        disbursements_complete=parts.disbursements_complete,
    ):
        if problem.ref is not None:
            where: Loc = problem.ref / problem.field
        elif problem.scope == "arrivals":
            where = root / "arrivals"
        else:
            where = parts.disbursements_loc or root / "disbursements"
        add(where, problem.code, problem.zh, problem.en)

    # ---- units
    keys: dict[str, Loc] = {}
    names: dict[str, Loc] = {}
    usccs: dict[str, Loc] = {}
    for loc, unit in parts.units:
        for value, seen, column, code, zh, en in (
            (unit.key, keys, "key", "duplicate_unit_key", "单位编码", "unit key"),
            (unit.name, names, "name", "duplicate_unit_name", "单位名称", "unit name"),
            (unit.uscc, usccs, "uscc", "duplicate_uscc", "统一社会信用代码", "USCC"),
        ):
            if value is None:
                continue
            if value in seen:
                add(
                    loc / column,
                    code,
                    f"{zh} {value} 与 {seen[value]} 重复",
                    f"{en} {value} duplicates {seen[value]}",
                )
            else:
                seen[value] = loc
    for loc, row in parts.disbursements:
        if parts.units_complete and row.unit_key not in parts.unit_keys_seen:
            add(loc / "unit", "unknown_unit", f"拨付对象单位 {row.unit_key} 未在单位名单中",
                f"disbursement to unknown unit {row.unit_key}")  # fmt: skip

    # ---- questionnaire
    questionnaire = parts.questionnaire
    qloc = parts.questionnaire_loc or root / "questionnaire"
    if questionnaire is not None:
        for i, level in enumerate(questionnaire.satisfied):
            if level not in questionnaire.scale:
                add(qloc / "satisfied" / i, "satisfied_not_on_scale",
                    f"计为满意的等级 {level} 不在量表 {'/'.join(questionnaire.scale)} 中",
                    f"satisfied level {level} is not on the scale {'/'.join(questionnaire.scale)}")  # fmt: skip
        if len(questionnaire.likert_weights) != len(questionnaire.scale):
            add(qloc / "likert_weights", "likert_weights_count",
                f"李克特权重有 {len(questionnaire.likert_weights)} 个，量表有 {len(questionnaire.scale)} 级",
                f"{len(questionnaire.likert_weights)} likert weights for a {len(questionnaire.scale)}-level scale")  # fmt: skip
        seen_questions: set[str] = set()
        for i, question in enumerate(questionnaire.questions):
            if question.key in seen_questions:
                add(qloc / "questions" / i / "key", "duplicate_question_key", f"题目编码 {question.key} 重复",
                    f"question key {question.key} is used twice")  # fmt: skip
            seen_questions.add(question.key)
            if question.kind in ("single", "multi") and not question.options:
                add(qloc / "questions" / i / "options", "options_missing", f"选择题 {question.key} 没有选项",
                    f"choice question {question.key} has no options")  # fmt: skip
        target = questionnaire.question(questionnaire.satisfaction_question)
        if target is None:
            add(qloc / "satisfaction_question", "satisfaction_question_unknown",
                f"满意度题目 {questionnaire.satisfaction_question} 不存在", f"satisfaction question {questionnaire.satisfaction_question} does not exist")  # fmt: skip
        elif target.kind != "scale":
            add(qloc / "satisfaction_question", "satisfaction_question_kind",
                f"满意度题目 {target.key} 应为量表题（scale）", f"satisfaction question {target.key} must be a scale question")  # fmt: skip

    # ---- responses
    if parts.responses and not parts.questionnaire_given:
        add(root / "responses", "responses_without_questionnaire", "有问卷答卷但未定义 [questionnaire]",
            "responses are given but there is no [questionnaire]")  # fmt: skip
    answered: dict[str, Loc] = {}
    for loc, response in parts.responses:
        if parts.units_complete and response.unit_key not in parts.unit_keys_seen:
            add(loc / "unit", "unknown_unit", f"答卷单位 {response.unit_key} 未在单位名单中",
                f"response from unknown unit {response.unit_key}")  # fmt: skip
        elif response.unit_key in answered:
            add(loc / "unit", "duplicate_response", f"单位 {response.unit_key} 的答卷与 {answered[response.unit_key]} 重复",
                f"unit {response.unit_key} already answered at {answered[response.unit_key]}")  # fmt: skip
        else:
            answered[response.unit_key] = loc
        if questionnaire is None:
            continue
        for key, answer in response.answers.items():
            question = questionnaire.question(key)
            here = loc / "answers" / key
            if question is None:
                add(
                    here,
                    "unknown_question",
                    f"问卷中没有题目 {key}",
                    f"the questionnaire has no question {key}",
                )
                continue
            choices = questionnaire.options_for(question)
            values = answer if isinstance(answer, list) else [answer]
            if question.kind in ("scale", "single", "multi"):
                if question.kind != "multi" and isinstance(answer, list):
                    add(here, "answer_invalid", f"题目 {key} 只能选一项", f"question {key} takes one answer")
                for value in values:
                    if value not in choices:
                        add(here, "answer_not_in_options", f"答案 {value} 不是题目 {key} 的选项（{'/'.join(choices)}）",
                            f"answer {value} is not an option of question {key} ({'/'.join(choices)})")  # fmt: skip
            elif question.kind == "number":
                try:
                    number = Decimal(str(answer).strip())
                except InvalidOperation:
                    add(
                        here,
                        "answer_invalid",
                        f"题目 {key} 的答案 {answer} 不是数字",
                        f"answer {answer} to {key} is not a number",
                    )
                    continue
                if (question.min is not None and number < question.min) or (
                    question.max is not None and number > question.max
                ):
                    add(here, "answer_out_of_range", f"题目 {key} 的答案 {answer} 超出范围 {question.min}–{question.max}",
                        f"answer {answer} to {key} is outside {question.min}–{question.max}")  # fmt: skip
            elif (
                question.kind == "text"
                and question.max_length is not None
                and len(str(answer)) > question.max_length
            ):
                add(here, "answer_too_long", f"题目 {key} 的回答超过 {question.max_length} 字",
                    f"answer to {key} is longer than {question.max_length} characters")  # fmt: skip
        for question in questionnaire.questions:
            if question.required and question.key not in response.answers:
                add(loc / "answers" / question.key, "answer_required", f"必答题 {question.key} 未作答",
                    f"required question {question.key} is not answered")  # fmt: skip
    return problems


# --------------------------------------------------------------------------- public API


def load_definition(path: Path | str, *, encodings: dict[str, str] | None = None) -> ProjectDefinition:
    """Load ``config/projects/<code>/`` (reads its ``project.toml``) or a single ``.toml`` file.

    CSV (or XLSX) files named by ``units_file``/``disbursements_file`` are read relative to the
    TOML file. Every file goes through the one decoder (``config.tables.decode``: UTF-8 ± BOM,
    UTF-16 with BOM, GB18030); ``encodings``, when given, receives file name → encoding found.
    Raises ``DefinitionError`` listing every problem."""
    path = Path(path)
    if path.is_dir():
        path = path / "project.toml"
    if not path.is_file():
        raise DefinitionError(
            [Problem(str(path), "file_not_found", f"找不到文件 {path}", f"file {path} not found")]
        )
    try:
        decoded = decode(path.read_bytes(), name=path.name)
    except TableError as exc:
        first = exc.problems[0]
        raise DefinitionError([Problem(path.name, first.code, first.zh, first.en)]) from None
    if encodings is not None:
        encodings[path.name] = decoded.label
    return parse_definition_text(decoded.text, base_dir=path.parent, filename=path.name, encodings=encodings)


def parse_definition_text(
    text: str,
    *,
    base_dir: Path | str | None = None,
    filename: str = "project.toml",
    encodings: dict[str, str] | None = None,
) -> ProjectDefinition:
    """Parse definition text: JSON when it starts with ``{``, TOML otherwise."""
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text, parse_float=Decimal)
        else:
            data = tomllib.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            [
                Problem(
                    f"{filename}:{exc.lineno}",
                    "json_syntax",
                    f"JSON 语法错误：{exc.msg}",
                    f"JSON syntax error: {exc.msg}",
                )
            ]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(
            [Problem(filename, "toml_syntax", f"TOML 语法错误：{exc}", f"TOML syntax error: {exc}")]
        ) from None
    return validate_definition_dict(data, base_dir=base_dir, filename=filename, encodings=encodings)


def validate_definition_dict(
    data: Mapping[str, Any] | str,
    *,
    base_dir: Path | str | None = None,
    filename: str = "definition.toml",
    encodings: dict[str, str] | None = None,
) -> ProjectDefinition:
    """Validate a definition already parsed into a dict (file form: 元, %, friendly targets), as
    posted to the admin API. ``base_dir`` resolves ``units_file``/``disbursements_file``; text
    (TOML or JSON) is parsed first. Raises ``DefinitionError`` listing every problem."""
    if isinstance(data, str):
        return parse_definition_text(data, base_dir=base_dir, filename=filename)
    if not isinstance(data, Mapping):
        raise DefinitionError(
            [Problem(filename, "invalid_value", "定义应为表（键值对）", "a definition is a table")]
        )
    reader = _DefinitionReader(Path(base_dir) if base_dir is not None else None, filename, encodings)
    return reader.read(data)


def check_definition(definition: ProjectDefinition, *, filename: str = "definition") -> list[Problem]:
    """Re-run the cross checks on an already built definition (e.g. a JSON snapshot or an edit
    made through the API). Locations use the inside field names (``indicators[3].weight``)."""
    root = Loc(filename)
    parts = _Parts(
        file=filename,
        project=definition.project,
        budget_fen=definition.budget_fen,
        policy=definition.policy,
        declared=definition.declared,
    )
    parts.arrivals = [(root / "arrivals" / i, a) for i, a in enumerate(definition.arrivals)]
    parts.units = [(root / "units" / i, u) for i, u in enumerate(definition.units)]
    parts.unit_keys_seen = {u.key for u in definition.units}
    parts.disbursements = [(root / "disbursements" / i, d) for i, d in enumerate(definition.disbursements)]
    parts.levels = [(root / "levels" / i, lv) for i, lv in enumerate(definition.levels)]
    parts.indicators = [
        _Indicator(root / "indicators" / i, m.key, m.level1, m.level2, m.name, m.weight, m)
        for i, m in enumerate(definition.indicators)
    ]
    parts.questionnaire = definition.questionnaire
    parts.questionnaire_given = definition.questionnaire is not None
    parts.responses = [(root / "responses" / i, r) for i, r in enumerate(definition.responses)]
    return _cross_check(parts)


def problem_counts(problems: Iterable[Problem]) -> Counter[str]:
    """How many problems of each code (handy for summaries)."""
    return Counter(p.code for p in problems)
