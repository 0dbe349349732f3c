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

from pydantic import BaseModel, ConfigDict, Field

Rounding = Literal["half_up", "down"]
Comparator = Literal[">=", "<=", "=", ">", "<"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- policy


class GradeBand(_Frozen):
    """A grade and the lowest total (inclusive) that earns it."""

    grade: str
    min_score: Decimal


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
    grade_bands: tuple[GradeBand, ...] = DEFAULT_GRADE_BANDS
    #: completion ratio A/T above which over-achievement must be explained (warning).
    overachievement_ratio: Decimal = Decimal("1.2")
    #: answered / invited below this raises a coverage warning on satisfaction indicators.
    coverage_threshold: Decimal = Decimal("0.6")


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
    per_point: Decimal = Decimal(1)


class Band(_Frozen):
    """One tier: applies when ``min <= x`` (and ``x < max`` when given). ``ratio`` of full marks."""

    min: Decimal | None = None
    max: Decimal | None = None
    ratio: Decimal = Field(ge=0, le=1)


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
    per_unit: Decimal = Field(gt=0)
    step: Decimal = Field(default=Decimal(1), gt=0)
    floor: Decimal = Field(default=Decimal(0), ge=0)


class TimelinessRule(_Frozen):
    """Timeliness (时效): actual completion date vs the target date (Target.value).

    On or before the target → S. Late with ``per_pct`` unset → 0. Late with ``per_pct`` set:
    deduct ``per_pct`` points per ``step_pct`` % of overrun relative to the planned duration
    (``start`` → target date), e.g. 每相差4%扣1分.
    """

    type: Literal["timeliness"] = "timeliness"
    start: date | None = None
    per_pct: Decimal | None = None
    step_pct: Decimal = Decimal(1)


class ChecklistRule(_Frozen):
    """Checklist of 评价要点: S × (weight of points met) / (weight of all points).

    ``mode = deduct``: S − ``per_miss`` per point not met, floored at 0.
    The points themselves and their judgments are the indicator's actual (``ChecklistActual``).
    """

    type: Literal["checklist"] = "checklist"
    mode: Literal["share", "deduct"] = "share"
    per_miss: Decimal = Decimal(1)


class SatisfactionRule(_Frozen):
    """Satisfaction: ``target`` mode scores like a positive indicator against the target
    (A ≥ T → S, else S·A/T); ``rate`` mode gives S × A regardless of target.
    The computation method (share of satisfied, or weighted Likert) is in the actual's detail.
    """

    type: Literal["satisfaction"] = "satisfaction"
    mode: Literal["target", "rate"] = "target"


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


class CheckPoint(_Frozen):
    """One 评价要点 and the evaluator's judgment."""

    text: str
    met: bool
    weight: Decimal = Decimal(1)
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
    unit: str = ""
    detail: str = ""
    evidence: str = ""
    coverage: Decimal | None = None


class Override(_Frozen):
    """A manual score set by an evaluator's judgement, with the written reason (required)."""

    score: Decimal = Field(ge=0)
    reason: str = Field(min_length=1)
    by: str = ""


# --------------------------------------------------------------------------- results


class Warning_(_Frozen):
    """A warning attached to an indicator or to the whole table."""

    code: Literal["shortfall", "overachievement", "coverage", "missing_actual", "override", "rescaled"]
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
    computed_score: Decimal | None = None
    warnings: tuple[Warning_, ...] = ()


class Subtotal(_Frozen):
    level1: str
    level2: str | None
    weight: Decimal
    score: Decimal


class ScoreTable(_Frozen):
    """The whole scored table. ``total`` is rounded by the policy; when indicators are not
    applicable the total is rescaled to 100 (``rescaled`` true, ``raw_total`` kept)."""

    total: Decimal
    raw_total: Decimal
    grade: str
    rescaled: bool
    indicators: tuple[IndicatorResult, ...]
    subtotals: tuple[Subtotal, ...]
    warnings: tuple[Warning_, ...]
    policy: ScoringPolicy
