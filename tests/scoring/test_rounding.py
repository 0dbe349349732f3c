"""Rounding and display rules (scoring.rounding), hand-computed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from scoring.engine import grade_for
from scoring.model import DEFAULT_GRADE_BANDS
from scoring.rounding import fmt_number, fmt_pct, fmt_points, fmt_wan, round_rate, round_score
from tests.scoring._build import D, policy


@pytest.mark.parametrize(
    ("x", "decimals", "mode", "expected"),
    [
        pytest.param(
            "9.8", 0, "down", "9", id="9.8 rounds down to 9 with zero decimals as published tables do"
        ),
        pytest.param("9.8", 0, "half_up", "10", id="9.8 rounds half up to 10 with zero decimals"),
        pytest.param("4.25", 1, "half_up", "4.3", id="a half at one decimal goes up not to even"),
        pytest.param("4.25", 1, "down", "4.2", id="a half at one decimal is truncated with down"),
        pytest.param("4.165", 2, "half_up", "4.17", id="a half at two decimals goes up"),
        pytest.param("4.1666666", 2, "down", "4.16", id="down truncates at two decimals"),
        pytest.param("89.995", 2, "half_up", "90.00", id="89.995 becomes 90.00 half up"),
        pytest.param("89.995", 2, "down", "89.99", id="89.995 becomes 89.99 down"),
        pytest.param("5", 2, "half_up", "5.00", id="whole scores carry the policy decimals"),
        pytest.param("0.005", 2, "half_up", "0.01", id="tiny halves round up"),
    ],
)
def test_round_score_follows_policy_decimals_and_mode(
    x: str, decimals: int, mode: str, expected: str
) -> None:
    got = round_score(D(x), policy(decimals, mode))
    assert str(got) == expected


@pytest.mark.parametrize(
    ("total", "mode", "grade"),
    [
        pytest.param("89.995", "half_up", "优", id="89.995 rounded half up is 90.00 and grades 优"),
        pytest.param("89.995", "down", "良", id="89.995 rounded down is 89.99 and grades 良"),
        pytest.param("90", "down", "优", id="exactly 90 is 优 because lower bounds are inclusive"),
        pytest.param("79.99", "half_up", "中", id="79.99 grades 中"),
        pytest.param("80", "half_up", "良", id="exactly 80 is 良"),
        pytest.param("59.999", "down", "差", id="59.999 rounded down stays below 60 and grades 差"),
        pytest.param("59.995", "half_up", "中", id="59.995 rounded half up reaches 60 and grades 中"),
    ],
)
def test_grade_is_taken_from_the_rounded_total(total: str, mode: str, grade: str) -> None:
    assert grade_for(round_score(D(total), policy(2, mode)), DEFAULT_GRADE_BANDS) == grade


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        pytest.param("0.95555", "0.9556", id="rates keep four decimals half up"),
        pytest.param("0.99995", "1.0000", id="a rate of 99.995 percent rounds to 100 percent"),
        pytest.param("0.123449", "0.1234", id="below the half stays"),
    ],
)
def test_round_rate_keeps_hundredths_of_a_percent(x: str, expected: str) -> None:
    assert str(round_rate(D(x))) == expected


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        pytest.param("1", "100%", id="one is 100 percent without decimals"),
        pytest.param("0.955", "95.5%", id="trailing zeros are stripped"),
        pytest.param("0.95555", "95.56%", id="percent shows at most two decimals"),
        pytest.param("0", "0%", id="zero is 0 percent"),
        pytest.param("4.34", "434%", id="over 100 percent prints plainly"),
    ],
)
def test_fmt_pct(rate: str, text: str) -> None:
    assert fmt_pct(D(rate)) == text


def test_fmt_points_and_numbers_drop_needless_zeros() -> None:
    assert fmt_points(D("5.00")) == "5"
    assert fmt_points(D("4.10")) == "4.1"
    assert fmt_points(D("4.166"), policy(2)) == "4.17"
    assert fmt_points(D("9.8"), policy(0, "down")) == "9"
    assert fmt_number(D("1E+2")) == "100"
    assert fmt_number(D("-0.00")) == "0"
    assert fmt_number(D("21.70")) == "21.7"


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        pytest.param(2_244_840_000, "2244.84万元", id="the reference budget prints as 2244.84万元"),
        pytest.param(1_234_567, "1.23万元", id="fen below the display grid round down under the half"),
        pytest.param(1_235_000, "1.24万元", id="an exact half of 0.01万元 rounds up"),
        pytest.param(0, "0.00万元", id="zero keeps two decimals"),
    ],
)
def test_fmt_wan_is_exact_from_integer_fen(fen: int, text: str) -> None:
    assert fmt_wan(fen) == text


def test_floats_are_refused_everywhere_rounding_happens() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        round_score(9.8, policy())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Decimal"):
        round_rate(0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer fen"):
        fmt_wan(1.5)  # type: ignore[arg-type]


def test_rounding_ignores_the_callers_decimal_context() -> None:
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = decimal.ROUND_FLOOR
        assert round_score(Decimal("89.995"), policy(2, "half_up")) == Decimal("90.00")
        assert fmt_wan(2_244_840_000) == "2244.84万元"
