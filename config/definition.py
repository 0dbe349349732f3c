"""The project definition: one evaluation project (项目支出绩效评价) as validated, normalised data.

This is the *inside* form. ``config.loader`` reads the file form (TOML + CSV, money in 元,
rates in %) and builds these models; the store keeps ``ProjectDefinition.model_dump(mode="json")``
as a snapshot and reloads it with ``ProjectDefinition.model_validate``.

Units and invariants (same as ``scoring.model``):

- money is integer **fen** (分) in every ``*_fen`` field; never float;
- weights (分值) are ``Decimal`` points;
- rates (targets and actuals written ``90%`` in the file) are ``Decimal`` **fractions** (0.9);
- dates are ``datetime.date`` in the project's timezone.

Models validate field by field; cross-field consistency (weights add up, money sums, references
between units/disbursements/responses) is checked by ``config.loader.check_definition`` so that
every problem is reported at once with its file location.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from stdnum.cn import uscc as _uscc
from stdnum.exceptions import InvalidChecksum
from stdnum.exceptions import ValidationError as StdnumValidationError

from config.secrets import missing_env
from config.text import clean_text
from scoring.model import (
    Actual,
    Comparator,
    DeclaredFunds,
    IndicatorSpec,
    Override,
    Rounding,
    Rule,
    ScoringPolicy,
    Target,
)

__all__ = [
    "CHANNEL_KINDS",
    "EVALUATION_KINDS",
    "LIKERT_WEIGHTS",
    "SATISFACTION_SCALE",
    "Arrival",
    "ChannelRef",
    "DisbursementDef",
    "IndicatorDef",
    "Level1Def",
    "Level2Def",
    "ProjectDefinition",
    "ProjectInfo",
    "QuestionDef",
    "QuestionnaireDef",
    "ResponseDef",
    "TargetDef",
    "UnitDef",
    "custom_error",
    "known_sources",
    "uscc_problem",
]

ChannelKind = Literal["wecom", "dingtalk", "feishu", "telegram", "slack", "email", "webhook", "console"]
CHANNEL_KINDS: tuple[str, ...] = (
    "wecom",
    "dingtalk",
    "feishu",
    "telegram",
    "slack",
    "email",
    "webhook",
    "console",
)
EvaluationKind = Literal["单位自评", "部门评价", "财政评价"]
EVALUATION_KINDS: tuple[str, ...] = ("单位自评", "部门评价", "财政评价")
QuestionKind = Literal["scale", "single", "multi", "number", "text"]

#: The 5-level satisfaction scale, best first (evaluation-rules.md §5).
SATISFACTION_SCALE: tuple[str, ...] = ("非常满意", "比较满意", "一般", "不太满意", "非常不满意")
#: Weighted-Likert points per level, same order as the scale (100/80/60/40/20).
LIKERT_WEIGHTS: tuple[Decimal, ...] = tuple(Decimal(w) for w in (100, 80, 60, 40, 20))

#: Computed fact sources, used when ``scoring.facts`` is not importable (it is the authority).
_FALLBACK_FACT_SOURCES: tuple[str, ...] = (
    "funds.arrival_rate",
    "funds.execution_rate",
    "funds.control_rate",
    "funds.completion_date",
    "survey.satisfaction",
)

_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SECRET_WORDS = ("secret", "token", "password", "passwd", "key", "sign", "credential")
_SECRET_QUERY = re.compile(r"[?&](access_token|token|key|secret|sign|password)=", re.IGNORECASE)


def known_sources() -> tuple[str, ...]:
    """Valid ``source`` values: ``scoring.facts.FACT_SOURCES`` (or the fallback list) plus ``entered``."""
    try:
        from scoring.facts import FACT_SOURCES  # type: ignore[import-not-found]
    except ImportError:  # the engine is written concurrently; keep in step with it
        FACT_SOURCES = _FALLBACK_FACT_SOURCES
    sources = tuple(FACT_SOURCES)
    return sources if "entered" in sources else (*sources, "entered")


def custom_error(code: str, zh: str, en: str) -> PydanticCustomError:
    """A pydantic error whose ``type`` is our problem code and whose ctx carries both messages."""
    return PydanticCustomError(code, "{zh} / {en}", {"zh": zh, "en": en})


def uscc_problem(value: str) -> tuple[str, str, str] | None:
    """Check a 统一社会信用代码; return ``(code, zh, en)`` when it is not valid, else None."""
    try:
        _uscc.validate(value)
    except InvalidChecksum:
        return (
            "uscc_checksum",
            f"统一社会信用代码 {value} 校验位错误",
            f"USCC {value} has a wrong check digit",
        )
    except StdnumValidationError:
        return (
            "uscc_format",
            f"统一社会信用代码 {value} 格式错误（应为18位）",
            f"USCC {value} is malformed (18 characters expected)",
        )
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- project


class ProjectInfo(_Model):
    """Who and when: the evaluated project, its period (both ends inclusive) and timezone."""

    code: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)
    name: str = Field(min_length=1)
    year: int = Field(ge=2000, le=2100)
    period_start: dt.date
    period_end: dt.date
    timezone: str = "Asia/Shanghai"
    department: str = ""
    evaluation: EvaluationKind = "单位自评"
    #: Note on invented / illustrative data (shown wherever the project is displayed).
    illustrative: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise custom_error(
                "timezone_unknown", f"未知时区 {value}", f"unknown timezone {value} (IANA name expected)"
            ) from exc
        return value

    @model_validator(mode="after")
    def _period_order(self) -> ProjectInfo:
        if self.period_start > self.period_end:
            raise custom_error(
                "period_order",
                f"评价期间开始日 {self.period_start} 晚于结束日 {self.period_end}",
                f"period start {self.period_start} is after period end {self.period_end}",
            )
        return self


# --------------------------------------------------------------------------- money


class Arrival(_Model):
    """One arrival of funds (资金到位). ``amount_fen`` in fen."""

    date: dt.date
    amount_fen: int = Field(ge=0)
    note: str = ""


class ChannelRef(_Model):
    """How to reach a unit: channel kind, its address (email, user id, chat id, webhook URL) and
    non-secret config. Secrets are never in the file: reference them by environment variable
    name under a key ending in ``_env`` (``secret_env = "JIXIAO_SECRET_DINGTALK_1"``)."""

    kind: ChannelKind
    address: str = Field(default="", max_length=500)
    config: dict[str, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict, max_length=20)

    @field_validator("address", mode="before")
    @classmethod
    def _clean_address(cls, value: Any) -> Any:
        return clean_text(value, multiline=False).strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _no_secrets(self) -> ChannelRef:
        for name, value in self.config.items():
            lowered = name.lower()
            if lowered.endswith("_env"):
                if not _ENV_NAME.match(value):
                    raise custom_error(
                        "channel_env_name",
                        f"渠道配置 {name} 应为环境变量名（大写字母、数字、下划线），而不是 {value!r}",
                        f"channel config {name} must be an environment variable name, not {value!r}",
                    )
            elif any(word in lowered for word in _SECRET_WORDS):
                raise custom_error(
                    "channel_secret_inline",
                    f'渠道配置 {name} 看起来是密钥：文件中不得写密钥，请改用 {name}_env = "环境变量名"',
                    f"channel config {name} looks like a secret: secrets must not be in files, "
                    f'use {name}_env = "ENV_VAR_NAME"',
                )
        if _SECRET_QUERY.search(self.address):
            raise custom_error(
                "channel_secret_inline",
                "渠道地址中含有令牌/密钥参数：文件中不得写密钥，请用 *_env 引用环境变量",
                "channel address carries a token/secret parameter: secrets must not be in files, "
                "reference an environment variable with *_env",
            )
        if self.kind == "email" and "@" not in self.address:
            raise custom_error(
                "channel_address",
                f"邮件渠道地址 {self.address!r} 不是邮箱地址",
                f"email channel address {self.address!r} is not an email address",
            )
        if self.kind == "webhook":
            # A generic webhook is signed with its secret; a reference to a variable that is not
            # set would mean sending unsigned, so it is refused when written (see config.secrets).
            for name, value in self.config.items():
                if name.lower().endswith("_env") and missing_env(value):
                    raise custom_error(
                        "channel_secret_missing",
                        f"渠道配置 {name} 引用的环境变量 {value} 未设置（环境变量和 .env 文件中都没有）："
                        "webhook 不会在无签名的情况下发送",
                        f"channel config {name} names the variable {value}, which is not set (neither in "
                        "the environment nor in .env): a webhook is never sent unsigned",
                    )
        if self.kind == "webhook" and not self.address.startswith(("http://", "https://")):
            raise custom_error(
                "channel_address",
                f"webhook 渠道地址 {self.address!r} 应以 http:// 或 https:// 开头",
                f"webhook channel address {self.address!r} must start with http:// or https://",
            )
        return self


class UnitDef(_Model):
    """A project-holding unit (项目承担单位). ``uscc`` is the 统一社会信用代码, checksum-validated."""

    key: str = Field(pattern=_KEY, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    uscc: str | None = None
    channel: ChannelRef = ChannelRef(kind="console")

    @field_validator("name", mode="before")
    @classmethod
    def _clean_name(cls, value: Any) -> Any:
        # one rule for control characters (config.text): a name is one line of text
        return clean_text(value, multiline=False).strip() if isinstance(value, str) else value

    @field_validator("uscc")
    @classmethod
    def _valid_uscc(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _uscc.compact(value)
        problem = uscc_problem(value)
        if problem:
            raise custom_error(*problem)
        return value


class DisbursementDef(_Model):
    """One payment to a unit (资金拨付). ``amount_fen`` in fen; ``batch`` labels the 批次."""

    unit_key: str = Field(min_length=1)
    batch: str = ""
    amount_fen: int = Field(ge=0)
    date: dt.date
    voucher: str = ""


# --------------------------------------------------------------------------- indicators


class TargetDef(_Model):
    """A target (指标值) with an unambiguous JSON form: exactly one of ``number`` (Decimal;
    rates as fractions), ``day`` (deadline) or ``text`` (qualitative, 达标/有效).

    Kept separate from ``scoring.model.Target`` because that model's ``Decimal | date | str``
    value does not survive a JSON round trip (it comes back as ``str``)."""

    op: Comparator = ">="
    number: Decimal | None = None
    day: dt.date | None = None
    text: str | None = None
    unit: str = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetDef:
        if sum(v is not None for v in (self.number, self.day, self.text)) != 1:
            raise custom_error(
                "target_invalid",
                "指标值须且只能是数值、日期或文字之一",
                "a target is exactly one of a number, a date or a text",
            )
        return self

    @property
    def kind(self) -> Literal["number", "day", "text"]:
        return "number" if self.number is not None else "day" if self.day is not None else "text"

    @property
    def value(self) -> Decimal | dt.date | str:
        value = self.number if self.number is not None else self.day if self.day is not None else self.text
        assert value is not None
        return value

    def to_target(self) -> Target:
        """The scoring engine's ``Target``."""
        return Target(op=self.op, value=self.value, unit=self.unit)

    def display(self) -> str:
        """``≥90%``, ``≤2023-12-31``, ``=达标`` (rates shown back as percentages)."""
        symbol = {">=": "≥", "<=": "≤", "=": "=", ">": ">", "<": "<"}[self.op]
        if self.number is not None and self.unit == "%":
            return f"{symbol}{(self.number * 100).normalize():f}%"
        if self.number is not None:
            return f"{symbol}{self.number.normalize():f}{self.unit}"
        return f"{symbol}{self.value}{self.unit}"


class IndicatorDef(_Model):
    """One 三级指标: where it sits (一级/二级), its 分值 (``weight``, Decimal points), scoring rule,
    target, the source of its actual, and — for ``source = "entered"`` — the entered actual
    (rates as fractions) with its evidence; optionally a manual override with its reason."""

    key: str = Field(pattern=_KEY, max_length=64)
    level1: str = Field(min_length=1)
    level2: str = Field(min_length=1)
    name: str = Field(min_length=1)
    weight: Decimal = Field(ge=0)
    rule: Rule
    target: TargetDef | None = None
    source: str = "entered"
    actual: Actual | None = None
    override: Override | None = None
    note: str = ""
    #: the row score a published table prints (checked against the computed one)
    published_score: Decimal | None = Field(default=None, ge=0)
    #: this row's rounding, when it differs from the project's (``None`` = the policy's)
    rounding: Rounding | None = None
    decimals: int | None = Field(default=None, ge=0, le=2)

    def spec(self) -> IndicatorSpec:
        """The scoring engine's ``IndicatorSpec`` for this indicator."""
        return IndicatorSpec(
            key=self.key,
            level1=self.level1,
            level2=self.level2,
            name=self.name,
            weight=self.weight,
            rule=self.rule,
            target=self.target.to_target() if self.target else None,
            source=self.source,
            published_score=self.published_score,
            rounding=self.rounding,
            decimals=self.decimals,
        )

    def entered_actual(self) -> Actual | None:
        """The entered actual (only for ``source == "entered"``), else None."""
        return self.actual if self.source == "entered" else None


class Level2Def(_Model):
    """A declared 二级指标 and its weight (points)."""

    name: str = Field(min_length=1)
    weight: Decimal = Field(ge=0)


class Level1Def(_Model):
    """A declared 一级指标, its weight (points) and its 二级 children."""

    name: str = Field(min_length=1)
    weight: Decimal = Field(ge=0)
    children: list[Level2Def] = Field(default_factory=list)


# --------------------------------------------------------------------------- questionnaire


class QuestionDef(_Model):
    """One question. ``scale`` questions use the questionnaire's scale as options; ``single`` and
    ``multi`` use ``options``; ``number`` may bound the answer (``min``/``max``); ``text`` may
    limit its length (``max_length``, characters)."""

    key: str = Field(pattern=_KEY, max_length=64)
    text: str = Field(min_length=1)
    kind: QuestionKind = "scale"
    options: tuple[str, ...] = ()
    required: bool = True
    max_length: int | None = Field(default=None, gt=0)
    min: Decimal | None = None
    max: Decimal | None = None


class QuestionnaireDef(_Model):
    """The satisfaction questionnaire (满意度问卷).

    ``method``: ``share`` = satisfied answers / valid answers (levels in ``satisfied``);
    ``likert`` = Σ weight(level) / (100 × n), weights 100/80/60/40/20 by default. Both give a
    fraction. ``satisfaction_question`` is the key of the scale question that is scored."""

    title: str = Field(min_length=1)
    intro: str = ""
    scale: tuple[str, ...] = SATISFACTION_SCALE
    satisfied: tuple[str, ...] = SATISFACTION_SCALE[:2]
    method: Literal["share", "likert"] = "share"
    likert_weights: tuple[Annotated[Decimal, Field(ge=0, le=100)], ...] = LIKERT_WEIGHTS
    satisfaction_question: str = Field(min_length=1)
    questions: list[QuestionDef] = Field(min_length=1)

    def question(self, key: str) -> QuestionDef | None:
        return next((q for q in self.questions if q.key == key), None)

    def options_for(self, question: QuestionDef) -> tuple[str, ...]:
        """Allowed answers of a choice question (the scale for ``scale`` questions)."""
        return self.scale if question.kind == "scale" else question.options


class ResponseDef(_Model):
    """A response collected outside the service, to import. ``answers`` maps question key to the
    chosen option (str), the chosen options (list, for ``multi``), a number written as a decimal
    string, or free text."""

    unit_key: str = Field(min_length=1)
    answers: dict[str, str | list[str]]
    submitted_on: dt.date | None = None


# --------------------------------------------------------------------------- the whole


class ProjectDefinition(_Model):
    """One evaluation project, validated. Money in fen, rates as fractions, weights in points.

    ``execution_denominator``: 预算执行率 = 支出 / 到位资金 (``arrived``, 10号文 framework) or
    支出 / 预算 (``budget``, 自评表)."""

    project: ProjectInfo
    policy: ScoringPolicy = ScoringPolicy()
    budget_fen: int = Field(ge=0)
    execution_denominator: Literal["arrived", "budget"] = "arrived"
    arrivals: list[Arrival] = Field(default_factory=list)
    units: list[UnitDef] = Field(default_factory=list)
    disbursements: list[DisbursementDef] = Field(default_factory=list)
    questionnaire: QuestionnaireDef | None = None
    responses: list[ResponseDef] = Field(default_factory=list)
    indicators: list[IndicatorDef] = Field(min_length=1)
    #: Declared 一级/二级 weights (may be empty: then only the 100-point total is checked).
    levels: list[Level1Def] = Field(default_factory=list)
    #: Amounts stated as numbers (年初预算数, 全年执行数, 到位数), as a 自评表 prints them.
    declared: DeclaredFunds | None = None
    #: The total a published table prints (照录 check; a difference is a warning).
    published_total: Decimal | None = Field(default=None, ge=0)

    # ---- derived views (no I/O)

    @property
    def arrived_fen(self) -> int:
        """Total arrived funds, fen."""
        return sum(a.amount_fen for a in self.arrivals)

    @property
    def disbursed_fen(self) -> int:
        """Total disbursed funds, fen."""
        return sum(d.amount_fen for d in self.disbursements)

    @property
    def total_weight(self) -> Decimal:
        return sum((i.weight for i in self.indicators), Decimal(0))

    def unit(self, key: str) -> UnitDef | None:
        return next((u for u in self.units if u.key == key), None)

    def indicator_specs(self) -> list[IndicatorSpec]:
        """Every indicator as a ``scoring.model.IndicatorSpec``, in file order."""
        return [i.spec() for i in self.indicators]

    def entered_actuals(self) -> dict[str, Actual]:
        """Entered actuals by indicator key (indicators with ``source = "entered"`` and a value)."""
        return {i.key: a for i in self.indicators if (a := i.entered_actual()) is not None}

    def overrides(self) -> dict[str, Override]:
        """Manual overrides by indicator key."""
        return {i.key: i.override for i in self.indicators if i.override is not None}

    def with_sources(self, overrides: dict[str, Override]) -> dict[str, Override]:
        """Stored overrides, marked ``published`` (照录) where they are this definition's own
        transcribed score (same score): the store keeps score, reason and author only."""
        mine = self.overrides()
        out = {}
        for key, override in overrides.items():
            own = mine.get(key)
            if own is not None and own.source == "published" and own.score == override.score:
                override = override.model_copy(update={"source": "published", "reason": own.reason})
            out[key] = override
        return out

    def summary(self) -> dict[str, Any]:
        """Small JSON-able summary (for listings and logs)."""
        return {
            "code": self.project.code,
            "name": self.project.name,
            "year": self.project.year,
            "indicators": len(self.indicators),
            "units": len(self.units),
            "budget_fen": self.budget_fen,
        }
