"""One pure function per rule type: ``(spec, actual, policy) -> RuleOutcome``.

Scores returned here are **unrounded** points; ``scoring.engine`` rounds them once
(``scoring.rounding.round_score``). Rates are fractions (1 = 100 %). S = the indicator's
weight (分值), A = the actual, T = the target value.

Decisions written down once:

- **Missing actual** (no ``Actual``, or the value field the rule needs is ``None``): score 0,
  a ``missing_actual`` warning; never an exception, because facts arrive over time.
- **Spec/rule contradictions** (a proportional rule with a ``<=`` target, a timeliness rule with a
  numeric target, a tier on completion rate without a target, …) raise ``ValueError`` naming
  the indicator key: scoring them would silently produce a wrong number.
- **Units**: when both the target and the actual name a unit they must agree (``%`` vs ``个`` is
  a fraction against a count; ``项`` vs ``个`` is the kind of mismatch §7 of the rules note
  finds in published reports) — ``ValueError``.
- **Zero target** on positive rules (proportional, satisfaction, shortfall deduction): the
  target is met by any A ≥ 0, so full marks; the completion ratio is undefined (``None``).
  A negative target has no meaningful A/T and is rejected (use a tiered rule on values).
- **Negative actual** on a positive rule scores 0 (the ratio is floored at 0), e.g. a growth
  rate of −3 % against ≥ 5 %.
- ``>`` is treated as ``>=`` and ``=`` as "at least" for positive rules; ``<`` as ``<=`` for
  reverse rules: the proportional formulas cannot tell a strict bound apart at A = T.
  (Timeliness honours ``<`` strictly: completing *on* the date is late.)
- **Steps** (每相差3%扣1分, 每超过1个百分点扣1分, 每超出工期4%扣1分) count *whole* steps only
  (floor): the literal reading of 每…扣…; a partial step deducts nothing.
- Reverse ``per_point`` on a rate counts percentage points ((A − T) × 100); on a non-rate it
  counts units (A − T).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from scoring.explain import PERCENT, band_text, op_text, target_text, value_text
from scoring.model import (
    Actual,
    ChecklistRule,
    DeductionRule,
    IndicatorSpec,
    ProportionalRule,
    RatingRule,
    ReverseRule,
    SatisfactionRule,
    ScoringPolicy,
    TieredRule,
    TimelinessRule,
    Warning_,
)
from scoring.rounding import CONTEXT, fmt_number, fmt_pct

__all__ = ["RULES", "RuleOutcome", "apply_rule"]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
_POSITIVE_OPS = (">=", ">", "=")
_REVERSE_OPS = ("<=", "<")


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What a rule computed for one indicator.

    ``score``: unrounded points in [0, S] (above S only for an uncapped proportional rule);
    ``None`` only for not-applicable. ``completion``: A/T where the rule defines one (else
    ``None``). ``fragments``: explanation pieces joined by ``scoring.explain.sentence``.
    ``higher_is_better``: False for reverse rules, so that the engine does not read A/T < 1 as
    a shortfall. ``actual_text``: the actual as shown in the table's 实际值 column.
    """

    score: Decimal | None
    completion: Decimal | None = None
    fragments: tuple[str, ...] = ()
    warnings: tuple[Warning_, ...] = ()
    higher_is_better: bool = True
    actual_text: str = ""


# --------------------------------------------------------------------------- helpers


def _fail(spec: IndicatorSpec, problem: str) -> ValueError:
    return ValueError(f"indicator {spec.key!r} ({spec.name}), rule {spec.rule.type!r}: {problem}")


def _numeric_target(spec: IndicatorSpec, ops: tuple[str, ...]) -> Decimal:
    """The target value as a Decimal, after checking it exists and points the rule's way."""
    t = spec.target
    if t is None:
        raise _fail(spec, "needs a target")
    if not isinstance(t.value, Decimal):
        raise _fail(spec, f"needs a numeric target, got {t.value!r}")
    if t.op not in ops:
        want = " or ".join(repr(o) for o in ops)
        raise _fail(spec, f"target op {t.op!r} contradicts the rule (expected {want})")
    return t.value


def _unit(spec: IndicatorSpec, actual: Actual | None) -> str:
    """The unit shared by target and actual; either may leave it blank."""
    t_unit = spec.target.unit if spec.target is not None else ""
    a_unit = actual.unit if actual is not None else ""
    if t_unit and a_unit and t_unit != a_unit:
        raise _fail(spec, f"target unit {t_unit!r} differs from actual unit {a_unit!r}")
    return t_unit or a_unit


def _with_detail(text: str, actual: Actual) -> str:
    return f"{text}（{actual.detail}）" if actual.detail else text


def _target_fragment(spec: IndicatorSpec) -> str:
    text = target_text(spec.target)
    return f"目标{text}" if text else ""


def _missing(spec: IndicatorSpec, actual: Actual | None, *, higher_is_better: bool = True) -> RuleOutcome:
    note = f"（{actual.detail}）" if actual is not None and actual.detail else ""
    return RuleOutcome(
        score=_ZERO,
        fragments=(_target_fragment(spec), f"未取得实际完成值{note}"),
        warnings=(
            Warning_(
                code="missing_actual",
                message=f"{spec.name}：缺少实际完成值{note}，暂按0分计",
                indicator=spec.key,
            ),
        ),
        higher_is_better=higher_is_better,
        actual_text="",
    )


def _show(x: Decimal) -> str:
    """A derived quantity (percentage points, overrun %) for sentences: 2 decimals half-up."""
    return fmt_number(x.quantize(_CENT, rounding=ROUND_HALF_UP))


def _whole_steps(amount: Decimal, step: Decimal) -> Decimal:
    """Number of whole ``step``s in ``amount`` (floor, never negative)."""
    if amount <= 0:
        return _ZERO
    return (amount / step).to_integral_value(rounding=ROUND_FLOOR)


def _positive_ratio(spec: IndicatorSpec, a: Decimal, t: Decimal) -> Decimal | None:
    """A/T for a positive rule; ``None`` for T = 0 (met by any A ≥ 0, see module docstring)."""
    if t < 0:
        raise _fail(spec, f"negative target {t} has no completion ratio; use a tiered rule on values")
    if t == 0:
        return None
    return a / t


# --------------------------------------------------------------------------- rules


def proportional(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """A ≥ T → S; else S·A/T; uncapped rules keep S·A/T above S. T = 0 → S when A ≥ 0."""
    rule = spec.rule
    assert isinstance(rule, ProportionalRule)
    t = _numeric_target(spec, _POSITIVE_OPS)
    unit = _unit(spec, actual)
    if actual is None or actual.number is None:
        return _missing(spec, actual)
    a = actual.number
    ratio = _positive_ratio(spec, a, t)
    shown = value_text(a, unit)
    verb = "实际" if unit == PERCENT else "完成"
    fragments = [_target_fragment(spec), _with_detail(f"{verb}{shown}", actual)]
    if ratio is None:
        fragments.append("目标值为0，视为完成")
        factor = _ONE if a >= 0 else _ZERO
    else:
        fragments.append(f"完成率{fmt_pct(ratio)}")
        factor = max(ratio, _ZERO)
        if rule.cap:
            factor = min(factor, _ONE)
    return RuleOutcome(
        score=spec.weight * factor,
        completion=ratio,
        fragments=tuple(fragments),
        actual_text=shown,
    )


def reverse(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """Lower is better. A ≤ T → S (so A = 0 → S). Over target: ``ratio`` S·T/A; ``per_point``
    S − per_point × whole points over (percentage points for rates), floored at 0."""
    rule = spec.rule
    assert isinstance(rule, ReverseRule)
    t = _numeric_target(spec, _REVERSE_OPS)
    if t < 0:
        raise _fail(spec, f"negative target {t} for a reverse rule")
    unit = _unit(spec, actual)
    if actual is None or actual.number is None:
        return _missing(spec, actual, higher_is_better=False)
    a = actual.number
    shown = value_text(a, unit)
    fragments = [_target_fragment(spec), _with_detail(f"实际{shown}", actual)]
    completion = a / t if t != 0 else None
    if a <= t:
        score = spec.weight
    elif rule.mode == "ratio":
        score = spec.weight * t / a
        fragments.append(f"超出目标，按{fmt_pct(t / a)}计分")
    else:
        is_rate = unit == PERCENT
        over = (a - t) * _HUNDRED if is_rate else a - t
        steps = _whole_steps(over, _ONE)
        deducted = min(rule.per_point * steps, spec.weight)
        score = spec.weight - deducted
        amount, each = (
            (f"{_show(over)}个百分点", "每个百分点")
            if is_rate
            else (f"{_show(over)}{unit}", f"每{unit or '单位'}")
        )
        fragments.append(
            f"超出目标{amount}，{each}扣{fmt_number(rule.per_point)}分，扣{fmt_number(deducted)}分"
        )
    return RuleOutcome(
        score=score,
        completion=completion,
        fragments=tuple(fragments),
        higher_is_better=False,
        actual_text=shown,
    )


def tiered(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """The first band (in order) with ``min <= x < max`` gives ``ratio × S``; no band → 0.

    ``on = rate``: x = A/T (needs a positive, non-zero numeric target; bands are fractions of
    the target, 0.9 = 90 %). ``on = value``: x = A in the actual's own unit.
    """
    rule = spec.rule
    assert isinstance(rule, TieredRule)
    t: Decimal | None = None
    if rule.on == "rate":
        t = _numeric_target(spec, _POSITIVE_OPS)
        if t <= 0:
            raise _fail(spec, "a tier on completion rate needs a target above 0; use on='value'")
    unit = _unit(spec, actual)
    if actual is None or actual.number is None:
        return _missing(spec, actual)
    a = actual.number
    shown = value_text(a, unit)
    fragments = [_target_fragment(spec), _with_detail(f"实际{shown}", actual)]
    if t is not None:
        x = a / t
        completion: Decimal | None = x
        band_unit = PERCENT
        fragments.append(f"完成率{fmt_pct(x)}")
    else:
        x = a
        completion = None
        band_unit = unit
    for band in rule.bands:
        if (band.min is None or band.min <= x) and (band.max is None or x < band.max):
            fragments.append(f"适用{band_text(band, band_unit)}档，按{fmt_pct(band.ratio)}计分")
            score = spec.weight * band.ratio
            break
    else:
        fragments.append("不在任何分档内")
        score = _ZERO
    return RuleOutcome(
        score=score,
        completion=completion,
        fragments=tuple(fragments),
        higher_is_better=t is not None or spec.target is None or spec.target.op in _POSITIVE_OPS,
        actual_text=shown,
    )


def deduction(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """扣完为止. ``count``: S − per_unit·A (A = number of violations, ≥ 0).
    ``shortfall_pct``: S − per_unit × whole ``step``s of percentage points below 100 %
    completion (A/T against a positive target; T = 0 counts as met). Floored at ``floor``."""
    rule = spec.rule
    assert isinstance(rule, DeductionRule)
    if rule.floor > spec.weight:
        raise _fail(spec, f"floor {rule.floor} is above the weight {spec.weight}")
    t: Decimal | None = None
    if rule.basis == "shortfall_pct":
        t = _numeric_target(spec, _POSITIVE_OPS)
    unit = _unit(spec, actual)
    if actual is None or actual.number is None:
        return _missing(spec, actual)
    a = actual.number
    shown = value_text(a, unit)
    completion: Decimal | None = None
    if rule.basis == "count":
        if a < 0:
            raise _fail(spec, f"a count of violations cannot be negative, got {a}")
        noun = unit or "项"
        fragments = [
            _target_fragment(spec),
            _with_detail(f"不符合要求{shown if unit else shown + noun}", actual),
        ]
        wanted = rule.per_unit * a
        fragments.append(f"每{noun}扣{fmt_number(rule.per_unit)}分")
    else:
        assert t is not None
        completion = _positive_ratio(spec, a, t)
        verb = "实际" if unit == PERCENT else "完成"
        fragments = [_target_fragment(spec), _with_detail(f"{verb}{shown}", actual)]
        if completion is None:
            fragments.append("目标值为0，视为完成")
            short = _ZERO
        else:
            short = max((_ONE - completion) * _HUNDRED, _ZERO)
            fragments.append(f"完成率{fmt_pct(completion)}")
        wanted = rule.per_unit * _whole_steps(short, rule.step)
        if short > 0:
            fragments.append(
                f"相差{_show(short)}个百分点，"
                f"每相差{fmt_number(rule.step)}个百分点扣{fmt_number(rule.per_unit)}分"
            )
    score = max(spec.weight - wanted, rule.floor)
    deducted = spec.weight - score
    if wanted > deducted:
        fragments.append(f"扣{fmt_number(deducted)}分（{'扣完为止' if rule.floor == 0 else '不低于最低分'}）")
    elif deducted > 0:
        fragments.append(f"扣{fmt_number(deducted)}分")
    return RuleOutcome(score=score, completion=completion, fragments=tuple(fragments), actual_text=shown)


def timeliness(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """On or before the target date → S (``<`` means strictly before). Late without ``per_pct``
    → 0. Late with ``per_pct``: overrun % = days late × 100 / planned days (``start`` → target);
    deduct ``per_pct`` per whole ``step_pct``, floored at 0."""
    rule = spec.rule
    assert isinstance(rule, TimelinessRule)
    tgt = spec.target
    if tgt is None or not isinstance(tgt.value, date):
        raise _fail(spec, "needs a target date")
    if tgt.op not in (*_REVERSE_OPS, "="):
        raise _fail(spec, f"target op {tgt.op!r} contradicts a deadline (expected '<=' or '<')")
    due = tgt.value
    planned_days: int | None = None
    if rule.per_pct is not None:
        if rule.start is None:
            raise _fail(spec, "per_pct deduction needs the planned start date (rule.start)")
        planned_days = (due - rule.start).days
        if planned_days <= 0:
            raise _fail(spec, f"start {rule.start} is not before the target date {due}")
    plan = f"计划{due.isoformat()}前完成"
    if actual is None or actual.day is None:
        missing = _missing(spec, actual)
        return RuleOutcome(
            score=missing.score,
            fragments=(plan, *missing.fragments[1:]),
            warnings=missing.warnings,
        )
    done = actual.day
    shown = done.isoformat()
    fragments = [plan, _with_detail(f"实际{shown}完成", actual)]
    on_time = done < due if tgt.op == "<" else done <= due
    if on_time:
        score = spec.weight
    else:
        late = (done - due).days
        fragments.append(f"逾期{late}天")
        if rule.per_pct is None:
            score = _ZERO
            fragments.append("逾期不得分")
        else:
            assert planned_days is not None
            overrun = Decimal(late) * _HUNDRED / Decimal(planned_days)
            deducted = min(rule.per_pct * _whole_steps(overrun, rule.step_pct), spec.weight)
            score = spec.weight - deducted
            fragments.append(
                f"超出计划工期{planned_days}天的{_show(overrun)}%，"
                f"每超{fmt_number(rule.step_pct)}%扣{fmt_number(rule.per_pct)}分，扣{fmt_number(deducted)}分"
            )
    return RuleOutcome(score=score, fragments=tuple(fragments), actual_text=shown)


def checklist(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """``share``: S × Σweight(met) / Σweight(all). ``deduct``: S − per_miss × misses, floor 0."""
    rule = spec.rule
    assert isinstance(rule, ChecklistRule)
    if actual is None or not actual.checklist:
        missing = _missing(spec, actual)
        return RuleOutcome(score=missing.score, fragments=missing.fragments[1:], warnings=missing.warnings)
    points = actual.checklist
    met = [p for p in points if p.met]
    missed = [p for p in points if not p.met]
    fragments = [f"评价要点{len(points)}项", f"符合{len(met)}项"]
    if missed:
        fragments[-1] += f"（不符合：{'；'.join(p.text for p in missed)}）"
    if rule.mode == "share":
        total_w = sum((p.weight for p in points), _ZERO)
        met_w = sum((p.weight for p in met), _ZERO)
        if total_w <= 0:
            raise _fail(spec, "checklist points carry no weight")
        if any(p.weight != points[0].weight for p in points):
            fragments.append(f"按权重符合{fmt_number(met_w)}/{fmt_number(total_w)}")
        score = spec.weight * met_w / total_w
    else:
        deducted = min(rule.per_miss * len(missed), spec.weight)
        score = spec.weight - deducted
        if missed:
            fragments.append(f"每项扣{fmt_number(rule.per_miss)}分，扣{fmt_number(deducted)}分")
    return RuleOutcome(score=score, fragments=tuple(fragments), actual_text=f"符合{len(met)}/{len(points)}项")


def satisfaction(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """``target``: A ≥ T → S, else S·A/T (never above S; T = 0 → S). ``rate``: S × A
    (A clamped to [0, 1]). A is a fraction; the method is in ``actual.detail``."""
    rule = spec.rule
    assert isinstance(rule, SatisfactionRule)
    t: Decimal | None = None
    if rule.mode == "target":
        t = _numeric_target(spec, _POSITIVE_OPS)
    elif spec.target is not None and isinstance(spec.target.value, Decimal):
        t = spec.target.value
    unit = _unit(spec, actual)
    if unit not in ("", PERCENT):
        raise _fail(spec, f"satisfaction is a rate (unit '%'), got unit {unit!r}")
    if actual is None or actual.number is None:
        return _missing(spec, actual)
    a = actual.number
    shown = value_text(a, PERCENT)
    fragments = [_target_fragment(spec), _with_detail(f"实际{shown}", actual)]
    completion = _positive_ratio(spec, a, t) if t is not None else None
    if rule.mode == "target":
        factor = _ONE if completion is None else min(max(completion, _ZERO), _ONE)
        if completion is not None and completion < 1:
            fragments.append(f"完成率{fmt_pct(completion)}")
    else:
        factor = min(max(a, _ZERO), _ONE)
        fragments.append(f"按满意度{shown}×分值计分")
    return RuleOutcome(
        score=spec.weight * factor,
        completion=completion,
        fragments=tuple(fragments),
        actual_text=shown,
    )


def rating(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """定性评级: the rating's configured share of S (``levels``); an unknown rating is a
    contradiction (the loader refuses it first)."""
    rule = spec.rule
    assert isinstance(rule, RatingRule)
    if actual is None or actual.text is None:
        return _missing(spec, actual)
    share = rule.levels.get(actual.text)
    if share is None:
        raise _fail(spec, f"rating {actual.text!r} is not one of {sorted(rule.levels)}")
    return RuleOutcome(
        score=spec.weight * share,
        fragments=(
            _target_fragment(spec),
            _with_detail(f"评级“{actual.text}”", actual),
            f"按{fmt_pct(share)}计分",
        ),
        actual_text=actual.text,
    )


def binary(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """Met (达标/有效/是) → S, otherwise 0."""
    if actual is None or actual.met is None:
        return _missing(spec, actual)
    shown = "达成" if actual.met else "未达成"
    target = spec.target
    head = f"目标{op_text(target.op)}{value_text(target.value, target.unit)}" if target is not None else ""
    return RuleOutcome(
        score=spec.weight if actual.met else _ZERO,
        fragments=(head, _with_detail(f"实际{shown}", actual)),
        actual_text=shown,
    )


def not_applicable(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """不适用: no score; the engine excludes it and rescales the total to 100."""
    return RuleOutcome(score=None, fragments=("不适用，不计分",), actual_text="不适用")


RuleFn = Callable[[IndicatorSpec, Actual | None, ScoringPolicy], RuleOutcome]

#: rule type → function; every name in ``scoring.model.RULE_TYPES`` has one.
RULES: dict[str, RuleFn] = {
    "proportional": proportional,
    "reverse": reverse,
    "tiered": tiered,
    "deduction": deduction,
    "timeliness": timeliness,
    "checklist": checklist,
    "satisfaction": satisfaction,
    "rating": rating,
    "binary": binary,
    "not_applicable": not_applicable,
}


def apply_rule(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> RuleOutcome:
    """Dispatch on ``spec.rule.type`` under the package's decimal context."""
    with localcontext(CONTEXT):
        return RULES[spec.rule.type](spec, actual, policy)
