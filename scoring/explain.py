"""Chinese explanation sentences for scored indicators.

One sentence per indicator, built from fragments that each rule produces
(``scoring.rules.RuleOutcome.fragments``) and closed with the score::

    目标≥7个，完成7个，完成率100%，得5分
    目标≤100%，实际100%，得3分
    评价要点5项，符合5项，得4分
    计划2023-12-31前完成，实际2023-07-13完成，得5分
    …，得10分；评价人调整为9分（原计算10分），理由：…

Display conventions (shared by ``rules`` and ``engine``):

- a unit of ``"%"`` marks a rate: the value is a fraction (1 = 100 %) and is printed as a
  percentage rounded to 0.01 % (``fmt_pct``); any other unit is appended to the plain number
  (``7个``, ``21.7万元``);
- comparators print as ≥ ≤ > <; ``=`` prints as nothing (``目标3个``);
- points are printed with trailing zeros dropped (得5分, 得4.17分); they are already rounded
  by the policy when they reach this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from scoring.model import Band, Rule, Target
from scoring.rounding import fmt_number, fmt_pct, fmt_points

__all__ = [
    "PERCENT",
    "band_text",
    "describe_rule",
    "op_text",
    "override_text",
    "sentence",
    "target_text",
    "value_text",
]

#: The unit that marks a value as a fraction shown in percent.
PERCENT = "%"

_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "=": ""}


def op_text(op: str) -> str:
    """Comparator as printed in tables (``>=`` → ``≥``; ``=`` → empty)."""
    return _OPS[op]


def value_text(value: Decimal | date | str, unit: str = "") -> str:
    """A target or actual value with its unit: ``100%`` (unit %), ``7个``, ``2023-12-31``, ``达标``."""
    if isinstance(value, Decimal):
        if unit == PERCENT:
            return fmt_pct(value)
        return f"{fmt_number(value)}{unit}"
    if isinstance(value, date):
        return value.isoformat()
    return f"{value}{unit}"


def target_text(target: Target | None) -> str:
    """The target as shown in the table's 指标值 column (``≥7个``, ``≤100%``); empty when none."""
    if target is None:
        return ""
    return f"{op_text(target.op)}{value_text(target.value, target.unit)}"


def band_text(band: Band, unit: str) -> str:
    """A tier's range: ``≥90%且<100%``, ``≥90%``, ``<60%``; ``任意值`` when unbounded."""
    parts = []
    if band.min is not None:
        parts.append(f"≥{value_text(band.min, unit)}")
    if band.max is not None:
        parts.append(f"<{value_text(band.max, unit)}")
    return "且".join(parts) if parts else "任意值"


def describe_rule(rule: Rule) -> str:
    """A short Chinese statement of the scoring rule (the table's 评(扣)分标准 column)."""
    match rule.type:
        case "proportional":
            tail = "满分为止" if rule.cap else "超额可超过满分"
            return f"完成目标得满分，未完成按完成比例记分，{tail}"
        case "reverse":
            if rule.mode == "ratio":
                return "不超过目标得满分，超过按目标值/实际值比例记分"
            return f"不超过目标得满分，每超过1个百分点（或1个单位）扣{fmt_number(rule.per_point)}分，扣完为止"
        case "tiered":
            basis = "完成率" if rule.on == "rate" else "实际值"
            return f"按{basis}分档记分"
        case "deduction":
            if rule.basis == "count":
                head = f"每出现一项扣{fmt_number(rule.per_unit)}分"
            else:
                head = f"完成率每相差{fmt_number(rule.step)}%扣{fmt_number(rule.per_unit)}分"
            floor = "扣完为止" if rule.floor == 0 else f"最低{fmt_number(rule.floor)}分"
            return f"{head}，{floor}"
        case "timeliness":
            if rule.per_pct is None:
                return "按计划时间完成得满分，逾期不得分"
            return (
                f"按计划时间完成得满分，逾期每超出计划工期{fmt_number(rule.step_pct)}%"
                f"扣{fmt_number(rule.per_pct)}分，扣完为止"
            )
        case "checklist":
            if rule.mode == "share":
                return "按符合的评价要点所占比重记分"
            return f"每项评价要点不符合扣{fmt_number(rule.per_miss)}分，扣完为止"
        case "satisfaction":
            if rule.mode == "target":
                return "达到目标满意度得满分，未达到按实际/目标比例记分"
            return "按满意度×分值记分"
        case "rating":
            levels = "、".join(f"{label}{fmt_pct(share)}" for label, share in rule.levels.items())
            return f"按评级记分（{levels}）"
        case "binary":
            return "达成得满分，未达成不得分"
        case "not_applicable":
            return "不适用，不计分"
    raise AssertionError(f"unknown rule type {rule.type!r}")  # pragma: no cover - union is closed


def sentence(fragments: Iterable[str], score: Decimal) -> str:
    """Join fragments with ``，`` and close with ``得X分`` (X already rounded by the policy)."""
    parts = [f for f in fragments if f]
    parts.append(f"得{fmt_points(score)}分")
    return "，".join(parts)


def override_text(score: Decimal, computed: Decimal, reason: str, source: str = "evaluator") -> str:
    """The evaluator's adjustment: ``评价人调整为9分（原计算10分），理由：…``; a score copied
    from a published table: ``照录9分（来源：…；计算得分10分）``."""
    if source == "published":
        return f"照录{fmt_points(score)}分（来源：{reason}；计算得分{fmt_points(computed)}分）"
    return f"评价人调整为{fmt_points(score)}分（原计算{fmt_points(computed)}分），理由：{reason}"
