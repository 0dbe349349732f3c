"""Typed inputs and outputs of the scoring engine.

This module is the contract between the project definition (``config``), the fact loaders
(``store``) and the engine (``scoring.engine``). It holds no I/O and no clock.

Units and invariants:
- weights (分值) and scores (得分) are ``Decimal`` points, never float;
- rates (完成率, 到位率, 满意度, 得分率) are ``Decimal`` fractions (1 = 100%);
- money is integer fen (分) wherever it appears;
- dates are ``datetime.date`` in the project's timezone.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

Rounding = Literal["half_up", "down"]
Comparator = Literal[">=", "<=", "=", ">", "<"]
#: A share of an indicator's weight (0 = nothing, 1 = full marks).
Ratio = Annotated[Decimal, Field(ge=0, le=1)]


def problem(code: str, zh: str, en: str) -> PydanticCustomError:
    """A validation error carrying a stable code and both messages (the loader shows them)."""
    return PydanticCustomError(code, "{zh} / {en}", {"zh": zh, "en": en})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- policy


class GradeBand(_Frozen):
    """A grade and the lowest total (inclusive) that earns it."""

    grade: str = Field(min_length=1, max_length=20)
    #: lowest percentage (0–100) that earns the grade, inclusive
    min_score: Decimal = Field(ge=0, le=100)


DEFAULT_GRADE_BANDS: tuple[GradeBand, ...] = (
    GradeBand(grade="优", min_score=Decimal(90)),
    GradeBand(grade="良", min_score=Decimal(80)),
    GradeBand(grade="中", min_score=Decimal(60)),
    GradeBand(grade="差", min_score=Decimal(0)),
)


class ScoringPolicy(_Frozen):
    """Project-wide scoring settings.

    ``decimals``/``rounding`` apply to every indicator score and to the total, in one place
    (``scoring.rounding``). Rates are kept at 4 decimals (0.01 %) half-up.
    """

    decimals: int = Field(default=2, ge=0, le=2)
    rounding: Rounding = "half_up"
    grade_bands: tuple[GradeBand, ...] = Field(default=DEFAULT_GRADE_BANDS, min_length=1)
    #: completion ratio A/T above which over-achievement must be explained (warning).
    overachievement_ratio: Decimal = Field(default=Decimal("1.2"), ge=1, le=100)
    #: answered / invited below this raises a coverage warning on satisfaction indicators.
    coverage_threshold: Decimal = Field(default=Decimal("0.6"), ge=0, le=1)
    #: full marks of the table (分值合计). 100 normally; a table whose budget row sits outside the
    #: 100 (110) or a partial table (60) states its own. The grade is taken from the percentage
    #: total × 100 / total_weight, and outputs say so.
    total_weight: Decimal = Field(default=Decimal(100), gt=0, le=1000)


# --------------------------------------------------------------------------- targets


class Target(_Frozen):
    """What the indicator aims at: ``≥ 7 个``, ``≤ 100 %``, ``= 达标``, ``≤ 2023-12-31``.

    ``value`` is a Decimal for quantities and rates (rates as fractions), a date for deadlines,
    or a string for qualitative targets (有效, 达标).
    """

    op: Comparator = ">="
    value: Decimal | date | str
    unit: str = ""


# --------------------------------------------------------------------------- rules


class ProportionalRule(_Frozen):
    """Positive indicator (higher is better): A ≥ T → full marks, else S·A/T (按完成比例记分).

    ``cap``: never above full marks (满分为止). With ``cap`` false, over-achievement can exceed
    the weight (rare; some local rules allow bonus points).
    """

    type: Literal["proportional"] = "proportional"
    cap: bool = True


class ReverseRule(_Frozen):
    """Reverse indicator (lower is better, e.g. 成本, 预算控制率 ≤ 100 %).

    ``ratio``: A ≤ T → S, else S·T/A.  ``per_point``: A ≤ T → S, else deduct ``per_point``
    points for every percentage point (or unit, for non-rates) above target, floored at 0.
    """

    type: Literal["reverse"] = "reverse"
    mode: Literal["ratio", "per_point"] = "ratio"
    per_point: Decimal = Field(default=Decimal(1), gt=0, le=1000)


class Band(_Frozen):
    """One tier: applies when ``min <= x`` (and ``x < max`` when given). ``ratio`` of full marks."""

    min: Decimal | None = None
    max: Decimal | None = None
    ratio: Ratio

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise problem(
                "band_order",
                f"分档下限 {self.min} 应小于上限 {self.max}",
                f"band min {self.min} must be below its max {self.max}",
            )
        return self


class TieredRule(_Frozen):
    """分档: the first band (in order) that contains x gives ``ratio × S``; no band → 0.

    ``on``: ``rate`` compares the completion rate A/T, ``value`` compares A itself.
    """

    type: Literal["tiered"] = "tiered"
    on: Literal["rate", "value"] = "rate"
    bands: tuple[Band, ...] = Field(min_length=1)


class DeductionRule(_Frozen):
    """Deduction per unit with a floor (扣完为止).

    ``basis = count``: A is a count of failures/violations; score = S − per_unit·A.
    ``basis = shortfall_pct``: deduct ``per_unit`` for every ``step`` percentage points the
    completion rate falls short of 100 % (e.g. 每相差3%扣1分 → step 3, per_unit 1).
    """

    type: Literal["deduction"] = "deduction"
    basis: Literal["count", "shortfall_pct"] = "count"
    per_unit: Decimal = Field(gt=0, le=1000)
    step: Decimal = Field(default=Decimal(1), gt=0, le=100)
    floor: Decimal = Field(default=Decimal(0), ge=0, le=1000)


class TimelinessRule(_Frozen):
    """Timeliness (时效): actual completion date vs the target date (Target.value).

    On or before the target → S. Late with ``per_pct`` unset → 0. Late with ``per_pct`` set:
    deduct ``per_pct`` points per ``step_pct`` % of overrun relative to the planned duration
    (``start`` → target date), e.g. 每相差4%扣1分.
    """

    type: Literal["timeliness"] = "timeliness"
    start: date | None = None
    per_pct: Decimal | None = Field(default=None, gt=0, le=1000)
    step_pct: Decimal = Field(default=Decimal(1), gt=0, le=100)


class ChecklistRule(_Frozen):
    """Checklist of 评价要点: S × (weight of points met) / (weight of all points).

    ``mode = deduct``: S − ``per_miss`` per point not met, floored at 0.
    The points themselves and their judgments are the indicator's actual (``ChecklistActual``).
    """

    type: Literal["checklist"] = "checklist"
    mode: Literal["share", "deduct"] = "share"
    per_miss: Decimal = Field(default=Decimal(1), gt=0, le=1000)


class SatisfactionRule(_Frozen):
    """Satisfaction: ``target`` mode scores like a positive indicator against the target
    (A ≥ T → S, else S·A/T); ``rate`` mode gives S × A regardless of target.
    The computation method (share of satisfied, or weighted Likert) is in the actual's detail.
    """

    type: Literal["satisfaction"] = "satisfaction"
    mode: Literal["target", "rate"] = "target"


class RatingRule(_Frozen):
    """Qualitative rating (定性评级): the actual is a rating text (好/较好/一般/较差, 优/良/中/差, or
    free text such as 程度较高) and ``levels`` maps each accepted rating to its share of the
    weight, e.g. ``{"好": 1, "较好": 0.8, "一般": 0.6, "较差": 0.3}`` (10号文: 100–80 %,
    80–60 %, 60–0 % bands). A rating not listed is refused by the loader."""

    type: Literal["rating"] = "rating"
    levels: dict[str, Ratio] = Field(min_length=1, max_length=50)


class BinaryRule(_Frozen):
    """Met (达标/有效/是) → S, otherwise 0. For qualitative targets."""

    type: Literal["binary"] = "binary"


class NotApplicableRule(_Frozen):
    """不适用: excluded; the remaining scores are rescaled to 100 (按百分制折算)."""

    type: Literal["not_applicable"] = "not_applicable"


Rule = Annotated[
    ProportionalRule
    | ReverseRule
    | TieredRule
    | DeductionRule
    | TimelinessRule
    | ChecklistRule
    | SatisfactionRule
    | RatingRule
    | BinaryRule
    | NotApplicableRule,
    Field(discriminator="type"),
]

RULE_TYPES: tuple[str, ...] = (
    "proportional",
    "reverse",
    "tiered",
    "deduction",
    "timeliness",
    "checklist",
    "satisfaction",
    "rating",
    "binary",
    "not_applicable",
)


# --------------------------------------------------------------------------- indicators


class IndicatorSpec(_Frozen):
    """One 三级指标 as defined by the project.

    ``key`` is stable across versions (used for history and overrides). ``source`` names where
    the actual comes from: a computed fact (``funds.arrival_rate``, ``funds.execution_rate``,
    ``funds.control_rate``, ``funds.completion_date``, ``survey.satisfaction``) or ``entered``.
    """

    key: str
    level1: str
    level2: str
    name: str
    weight: Decimal = Field(ge=0)
    rule: Rule
    target: Target | None = None
    source: str = "entered"
    #: the score a published table prints for this row (照录 check); a difference is a warning
    published_score: Decimal | None = Field(default=None, ge=0)
    #: this row's own rounding (a table may round one row half-up and another down);
    #: ``None`` = the policy's
    rounding: Rounding | None = None
    decimals: int | None = Field(default=None, ge=0, le=2)


class CheckPoint(_Frozen):
    """One 评价要点 and the evaluator's judgment."""

    text: str
    met: bool
    weight: Decimal = Field(default=Decimal(1), ge=0, le=1000)
    evidence: str = ""


class Actual(_Frozen):
    """An indicator's actual value (实际完成值) with its provenance.

    Exactly one of the value fields is meaningful for a rule: ``number`` (quantities, rates as
    fractions, counts), ``day`` (timeliness), ``met`` (binary), ``checklist`` (checklist).
    ``detail`` is a short Chinese note on how it was obtained (e.g. 满意度口径).
    ``coverage`` (answered / invited) is set for survey facts.
    """

    number: Decimal | None = None
    day: date | None = None
    met: bool | None = None
    checklist: tuple[CheckPoint, ...] = ()
    #: a qualitative rating as written (rating rule)
    text: str | None = None
    unit: str = ""
    detail: str = ""
    evidence: str = ""
    coverage: Decimal | None = None


class Override(_Frozen):
    """A manual score set by an evaluator's judgement, with the written reason (required)."""

    score: Decimal = Field(ge=0)
    reason: str = Field(min_length=1)
    by: str = ""
    #: ``evaluator``: a judgement (reason required); ``published``: copied from a published
    #: table (照录), ``reason`` names the source
    source: Literal["evaluator", "published"] = "evaluator"


# --------------------------------------------------------------------------- results


class Warning_(_Frozen):
    """A warning attached to an indicator or to the whole table."""

    code: Literal[
        "shortfall",
        "overachievement",
        "coverage",
        "missing_actual",
        "override",
        "rescaled",
        "published",
        "funds_difference",
        "total_weight",
    ]
    message: str
    indicator: str | None = None


class IndicatorResult(_Frozen):
    """One row of the scored table. ``rate`` is 得分率 = score / weight (None for weight 0 or N/A).
    ``completion`` is the completion ratio A/T for quantitative rules (None otherwise)."""

    key: str
    level1: str
    level2: str
    name: str
    weight: Decimal
    score: Decimal | None
    rate: Decimal | None
    completion: Decimal | None
    actual: str
    target: str
    rule: str
    explanation: str
    applicable: bool = True
    overridden: bool = False
    override_reason: str = ""
    #: ``evaluator`` or ``published`` (照录) when overridden, else ""
    override_source: str = ""
    computed_score: Decimal | None = None
    published_score: Decimal | None = None
    #: the rounding this row used: ``half_up``/``down`` and its decimals
    rounding: str = ""
    decimals: int = 2
    warnings: tuple[Warning_, ...] = ()


class Subtotal(_Frozen):
    level1: str
    level2: str | None
    weight: Decimal
    score: Decimal


class FundsRow(_Frozen):
    """One row of the 自评表 funds block (当年财政拨款 / 上年结转 / 其他资金), fen."""

    name: str = Field(min_length=1, max_length=50)
    initial_fen: int | None = Field(default=None, ge=0)
    annual_fen: int | None = Field(default=None, ge=0)
    executed_fen: int | None = Field(default=None, ge=0)


class DeclaredFunds(_Frozen):
    """Amounts a 自评表 states as numbers (fen), usable without a ledger:
    年初预算数 (``initial``), 全年预算数 (``annual``), 全年执行数 (``executed``), 到位数
    (``arrived``), and optionally the funds block's rows."""

    initial_fen: int | None = Field(default=None, ge=0)
    annual_fen: int | None = Field(default=None, ge=0)
    executed_fen: int | None = Field(default=None, ge=0)
    arrived_fen: int | None = Field(default=None, ge=0)
    rows: tuple[FundsRow, ...] = ()


class FundsStatement(_Frozen):
    """The funds figures a table was scored with, and where they came from (fen).

    ``source``: ``declared`` (the project states the amounts, as a 自评表 prints them) or
    ``ledger`` (arrivals and disbursements recorded in the service). Both sets are kept when
    both exist; ``execution_rate`` is the one used (fraction, exact)."""

    source: Literal["declared", "ledger"]
    budget_fen: int
    initial_fen: int | None = None
    annual_fen: int
    executed_fen: int
    arrived_fen: int
    execution_denominator: Literal["arrived", "budget"]
    execution_rate: Decimal | None
    declared: DeclaredFunds | None = None
    ledger_arrived_fen: int | None = None
    ledger_executed_fen: int | None = None
    warnings: tuple[Warning_, ...] = ()


class ScoreTable(_Frozen):
    """The whole scored table. ``total`` is rounded by the policy; when indicators are not
    applicable the total is rescaled to the full marks (``rescaled`` true, ``raw_total`` kept).

    ``total_weight`` is the table's full marks (100 unless the definition states otherwise);
    ``percentage`` = total × 100 / total_weight, and the grade comes from it. ``published_total``
    is the total a published table prints, when the definition states it."""

    total: Decimal
    raw_total: Decimal
    grade: str
    rescaled: bool
    indicators: tuple[IndicatorResult, ...]
    subtotals: tuple[Subtotal, ...]
    warnings: tuple[Warning_, ...]
    policy: ScoringPolicy
    total_weight: Decimal = Decimal(100)
    percentage: Decimal | None = None
    published_total: Decimal | None = None
    funds: FundsStatement | None = None
