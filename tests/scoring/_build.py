"""Small builders shared by the scoring tests (plain functions, no fixtures)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from scoring.model import Actual, IndicatorSpec, Rule, ScoringPolicy, Target

D = Decimal
SCALE = ("非常满意", "比较满意", "一般", "不太满意", "非常不满意")
SATISFIED = ("非常满意", "比较满意")


def spec(
    rule: Rule,
    *,
    target: Target | None = None,
    weight: str | int = 5,
    key: str = "k",
    name: str = "指标",
    level1: str = "产出",
    level2: str = "数量",
) -> IndicatorSpec:
    return IndicatorSpec(
        key=key, level1=level1, level2=level2, name=name, weight=D(weight), rule=rule, target=target
    )


def ge(value: str | int, unit: str = "") -> Target:
    return Target(op=">=", value=D(value), unit=unit)


def le(value: str | int, unit: str = "") -> Target:
    return Target(op="<=", value=D(value), unit=unit)


def due(day: date, op: str = "<=") -> Target:
    return Target(op=op, value=day)  # type: ignore[arg-type]


def num(value: str | int, unit: str = "", detail: str = "") -> Actual:
    return Actual(number=D(value), unit=unit, detail=detail)


def policy(decimals: int = 2, rounding: str = "half_up") -> ScoringPolicy:
    return ScoringPolicy(decimals=decimals, rounding=rounding)  # type: ignore[arg-type]


def assert_no_float(obj: object, path: str = "$") -> None:
    """Walk a model_dump() and fail on the first float (scores must be Decimal end to end)."""
    assert not isinstance(obj, float), f"float at {path}: {obj!r}"
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert_no_float(v, f"{path}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            assert_no_float(v, f"{path}[{i}]")
