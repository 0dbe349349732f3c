"""Score a whole indicator table: rules → rounding → overrides → rates, subtotals, total, grade.

Pure and deterministic: the same inputs give the same ``ScoreTable`` byte for byte, with no
float anywhere. Rounding happens only through ``scoring.rounding`` (see its docstring for the
rules: indicator scores rounded once; total = Σ rounded scores, rescaled to 100 when some
indicators are not applicable, rounded again; grade from the rounded total, lower bound
inclusive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, localcontext

from scoring.explain import describe_rule, override_text, sentence, target_text
from scoring.model import (
    Actual,
    FundsStatement,
    GradeBand,
    IndicatorResult,
    IndicatorSpec,
    Override,
    ScoreTable,
    ScoringPolicy,
    Subtotal,
    Warning_,
)
from scoring.rounding import CONTEXT, fmt_number, fmt_pct, fmt_points, round_rate, round_score
from scoring.rules import RuleOutcome, apply_rule

__all__ = ["ScoreOutOfRange", "grade_for", "score_indicator", "score_table"]

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


def grade_for(total: Decimal, bands: Sequence[GradeBand]) -> str:
    """The grade of the first band (highest ``min_score`` first) with ``total >= min_score``.

    ``total`` must already be rounded by the policy. A total below every band is a
    configuration error (bands should end at 0), reported as ``ValueError``.
    """
    for band in sorted(bands, key=lambda b: b.min_score, reverse=True):
        if total >= band.min_score:
            return band.grade
    raise ValueError(
        f"total {total} is below every grade band {[(b.grade, str(b.min_score)) for b in bands]}"
    )


def _shortfall(spec: IndicatorSpec, outcome: RuleOutcome, score: Decimal) -> Warning_ | None:
    """偏差: completion below target (positive rules) or points lost; says by how much."""
    parts: list[str] = []
    c = outcome.completion
    if outcome.higher_is_better and c is not None and c < 1:
        parts.append(f"完成率{fmt_pct(c)}，距目标差{fmt_number(round_rate(1 - c) * _HUNDRED)}个百分点")
    if score < spec.weight:
        parts.append(
            f"得{fmt_points(score)}分，较分值{fmt_points(spec.weight)}分少{fmt_points(spec.weight - score)}分"
        )
    if not parts:
        return None
    return Warning_(
        code="shortfall",
        message=f"{spec.name}未完全达成：{'；'.join(parts)}，需分析偏差原因并提出改进措施",
        indicator=spec.key,
    )


def _overachievement(spec: IndicatorSpec, outcome: RuleOutcome, policy: ScoringPolicy) -> Warning_ | None:
    c = outcome.completion
    if not outcome.higher_is_better or c is None or c <= policy.overachievement_ratio:
        return None
    return Warning_(
        code="overachievement",
        message=(
            f"{spec.name}完成率{fmt_pct(c)}，超过{fmt_pct(policy.overachievement_ratio)}：需说明超额原因，"
            "目标值可能偏低"
        ),
        indicator=spec.key,
    )


def _coverage(spec: IndicatorSpec, actual: Actual | None, policy: ScoringPolicy) -> Warning_ | None:
    if spec.rule.type != "satisfaction" or actual is None or actual.coverage is None:
        return None
    if actual.coverage >= policy.coverage_threshold:
        return None
    return Warning_(
        code="coverage",
        message=(
            f"{spec.name}：问卷覆盖率{fmt_pct(actual.coverage)}，低于{fmt_pct(policy.coverage_threshold)}，"
            "样本可能不足以代表服务对象"
        ),
        indicator=spec.key,
    )


class ScoreOutOfRange(ValueError):
    """An indicator scored outside [0, weight]: a bug in a rule or an unchecked parameter, never
    a score to publish."""


def _check_range(spec: IndicatorSpec, score: Decimal, what: str) -> None:
    uncapped = _uncapped(spec)
    if score < 0 or (score > spec.weight and not uncapped):
        raise ScoreOutOfRange(
            f"indicator {spec.key!r} ({spec.name}): {what} {score} is outside 0..{spec.weight} "
            f"(rule {spec.rule.type!r}); refusing to publish it"
        )


def _published(spec: IndicatorSpec, score: Decimal) -> Warning_ | None:
    if spec.published_score is None or spec.published_score == score:
        return None
    return Warning_(
        code="published",
        message=(
            f"{spec.name}：公布的得分{fmt_number(spec.published_score)}分与计算得分{fmt_number(score)}分不一致"
        ),
        indicator=spec.key,
    )


def score_indicator(
    spec: IndicatorSpec,
    actual: Actual | None,
    policy: ScoringPolicy,
    override: Override | None = None,
) -> IndicatorResult:
    """Score one indicator: rule → round (the indicator's rounding, else the policy's) →
    override (≤ weight) → 得分率 and warnings. Every score is checked to lie in [0, weight]
    (``ScoreOutOfRange`` otherwise; an uncapped proportional rule may exceed the weight)."""
    with localcontext(CONTEXT):
        outcome = apply_rule(spec, actual, policy)
        rounding = spec.rounding or policy.rounding
        decimals = policy.decimals if spec.decimals is None else spec.decimals
        common = {
            "key": spec.key,
            "level1": spec.level1,
            "level2": spec.level2,
            "name": spec.name,
            "weight": spec.weight,
            "actual": outcome.actual_text,
            "target": target_text(spec.target),
            "rule": describe_rule(spec.rule),
            "published_score": spec.published_score,
            "rounding": rounding,
            "decimals": decimals,
        }
        if outcome.score is None:  # not applicable
            if override is not None:
                raise ValueError(
                    f"indicator {spec.key!r} ({spec.name}) is not applicable and cannot be overridden"
                )
            return IndicatorResult(
                **common,
                score=None,
                rate=None,
                completion=None,
                explanation="，".join(outcome.fragments),
                applicable=False,
            )

        _check_range(spec, outcome.score, "computed score")
        computed = round_score(outcome.score, policy, rounding=rounding, decimals=decimals)
        score = computed
        explanation = sentence(outcome.fragments, computed)
        warnings = list(outcome.warnings)
        if override is not None:
            score = round_score(override.score, policy, rounding=rounding, decimals=decimals)
            if score > spec.weight:
                raise ValueError(
                    f"indicator {spec.key!r} ({spec.name}): override {fmt_number(override.score)} "
                    f"exceeds the weight {fmt_number(spec.weight)}"
                )
            adjusted = override_text(score, computed, override.reason, override.source)
            explanation = f"{explanation}；{adjusted}"
            by = f"（{override.by}）" if override.by else ""
            warnings.append(
                Warning_(code="override", message=f"{spec.name}：{adjusted}{by}", indicator=spec.key)
            )
        _check_range(spec, score, "score")

        missing = any(w.code == "missing_actual" for w in warnings)
        checks = (
            () if missing else (_shortfall(spec, outcome, score), _overachievement(spec, outcome, policy))
        )
        warnings.extend(
            w for w in (*checks, _coverage(spec, actual, policy), _published(spec, score)) if w is not None
        )

        return IndicatorResult(
            **common,
            score=score,
            rate=round_rate(score / spec.weight) if spec.weight != 0 else None,
            completion=round_rate(outcome.completion) if outcome.completion is not None else None,
            explanation=explanation,
            overridden=override is not None,
            override_reason=override.reason if override is not None else "",
            override_source=override.source if override is not None else "",
            computed_score=computed,
            warnings=tuple(warnings),
        )


def _subtotals(results: Sequence[IndicatorResult]) -> tuple[Subtotal, ...]:
    """Per 一级 and per (一级, 二级), first-seen order; each 一级 row precedes its 二级 rows.
    Not-applicable indicators count in neither weight nor score (unscaled points)."""
    sums: dict[tuple[str, str | None], list[Decimal]] = {}
    for r in results:
        for key in ((r.level1, None), (r.level1, r.level2)):
            acc = sums.setdefault(key, [_ZERO, _ZERO])
            if r.applicable and r.score is not None:
                acc[0] += r.weight
                acc[1] += r.score
    out: list[Subtotal] = []
    for level1, level2 in sums:
        if level2 is not None:
            continue
        for (l1, l2), (weight, score) in sums.items():
            # dict order is first-seen order; the 一级 key was inserted before its 二级 keys
            if l1 == level1:
                out.append(Subtotal(level1=l1, level2=l2, weight=weight, score=score))
    return tuple(out)


def score_table(
    indicators: Sequence[IndicatorSpec],
    actuals: Mapping[str, Actual],
    policy: ScoringPolicy,
    overrides: Mapping[str, Override] | None = None,
    *,
    published_total: Decimal | None = None,
    funds: FundsStatement | None = None,
) -> ScoreTable:
    """Score every indicator and total the table.

    ``actuals`` and ``overrides`` are keyed by ``IndicatorSpec.key``; actuals for unknown keys
    are ignored (fact sets carry more than a table uses) but an override for an unknown key is
    a ``ValueError`` (a judgement that lands nowhere must not vanish silently). Duplicate keys
    and a table with no applicable weight are ``ValueError``s.

    The table's full marks are ``policy.total_weight`` (100 by default); the grade is taken from
    the percentage total × 100 / full marks. ``published_total`` (the total a published table
    prints) is compared with the computed total; ``funds`` (the funds figures used, with their
    source) is kept in the result and its warnings are added.

    ``ScoreTable.warnings`` lists every indicator's warnings in table order, then the
    table-level ones (``rescaled``, ``total_weight``, ``published``, ``funds_difference``), so a
    summary need read only one list.
    """
    overrides = overrides or {}
    keys = [spec.key for spec in indicators]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate indicator keys: {', '.join(dupes)}")
    unknown = sorted(set(overrides) - set(keys))
    if unknown:
        raise ValueError(f"override for unknown indicator key(s): {', '.join(unknown)}")

    with localcontext(CONTEXT):
        results = tuple(
            score_indicator(spec, actuals.get(spec.key), policy, overrides.get(spec.key))
            for spec in indicators
        )
        applicable = [r for r in results if r.applicable]
        weight = sum((r.weight for r in applicable), _ZERO)
        if weight <= 0:
            raise ValueError("no applicable indicator with a positive weight: the table cannot be totalled")
        full = policy.total_weight
        # The total keeps the finest places any row was rounded to (a sum of a 0-decimal row and a
        # 1-decimal row is exact at 1 decimal), never fewer than the policy's.
        places = max([policy.decimals, *(r.decimals for r in applicable)])
        raw_total = sum((r.score for r in applicable if r.score is not None), _ZERO)
        rescaled = len(applicable) < len(results)
        table_warnings: list[Warning_] = []
        if rescaled:
            total = round_score(raw_total * full / weight, policy, decimals=places)
            dropped = "、".join(r.name for r in results if not r.applicable)
            table_warnings.append(
                Warning_(
                    code="rescaled",
                    message=(
                        f"不适用指标（{dropped}）不计分，适用指标满分{fmt_number(weight)}分，"
                        f"得分{fmt_points(raw_total)}分按"
                        + ("百分制" if full == _HUNDRED else f"满分{fmt_number(full)}分")
                        + f"折算为{fmt_points(total)}分"
                    ),
                )
            )
        else:
            total = round_score(raw_total, policy, decimals=places)
        raw_total = round_score(raw_total, policy, decimals=places)
        if total < 0 or (total > full and all(not _uncapped(s) for s in indicators)):
            raise ScoreOutOfRange(f"total {total} is outside 0..{full}; refusing to publish it")
        percentage = round_score(total * _HUNDRED / full, policy, decimals=places)
        if full != _HUNDRED:
            table_warnings.append(
                Warning_(
                    code="total_weight",
                    message=(
                        f"本表满分{fmt_number(full)}分（非100分），得分{fmt_points(total)}分，"
                        f"折合百分制{fmt_points(percentage)}分，按百分制评定等级"
                    ),
                )
            )
        if published_total is not None and published_total != total:
            table_warnings.append(
                Warning_(
                    code="published",
                    message=f"公布的总分{fmt_number(published_total)}分与计算总分{fmt_number(total)}分不一致",
                )
            )
        if funds is not None:
            table_warnings.extend(funds.warnings)
        return ScoreTable(
            total=total,
            raw_total=raw_total,
            grade=grade_for(min(percentage, _HUNDRED), policy.grade_bands),
            rescaled=rescaled,
            indicators=results,
            subtotals=_subtotals(results),
            warnings=(*(w for r in results for w in r.warnings), *table_warnings),
            policy=policy,
            total_weight=full,
            percentage=percentage,
            published_total=published_total,
            funds=funds,
        )


def _uncapped(spec: IndicatorSpec) -> bool:
    return spec.rule.type == "proportional" and not getattr(spec.rule, "cap", True)
