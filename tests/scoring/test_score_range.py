"""The engine never publishes a score outside 0…分值: a rule that computes one (a bug, or a parameter
that slipped past validation) raises ``ScoreOutOfRange`` instead of becoming a 150-point total."""

from __future__ import annotations

import pytest

from scoring.engine import ScoreOutOfRange, score_indicator, score_table
from scoring.model import ReverseRule
from tests.scoring._build import D, le, num, policy, spec


def test_a_negative_per_point_that_bypassed_validation_is_an_error_not_a_score() -> None:
    # model_construct skips validation, as a hand-built or corrupted snapshot would
    rule = ReverseRule.model_construct(type="reverse", mode="per_point", per_point=D("-5"))
    bad = spec(rule, target=le("1", "%"), weight=10)  # type: ignore[arg-type]
    with pytest.raises(ScoreOutOfRange, match="outside 0..10"):
        score_indicator(bad, num("1.1", "%"), policy())
    with pytest.raises(ScoreOutOfRange):
        score_table([bad], {"k": num("1.1", "%")}, policy())


def test_a_valid_per_point_rule_stays_inside_the_weight() -> None:
    good = spec(ReverseRule(mode="per_point", per_point=D("5")), target=le("1", "%"), weight=10)
    result = score_indicator(good, num("1.5", "%"), policy())
    assert result.score is not None and D(0) <= result.score <= D(10)
