"""元 ↔ fen at the edges: exact both ways, every bad amount refused with its reason."""

from __future__ import annotations

from decimal import Decimal

import pytest

from scoring.money import MoneyError, parse_yuan, yuan, yuan_display


@pytest.mark.parametrize(
    ("fen", "text", "display"),
    [
        pytest.param(0, "0.00", "0.00", id="zero"),
        pytest.param(5, "0.05", "0.05", id="five fen"),
        pytest.param(2_244_840_000, "22448400.00", "22,448,400.00", id="the reference budget"),
        pytest.param(-12_345, "-123.45", "-123.45", id="a negative difference keeps its sign"),
    ],
)
def test_fen_prints_as_exact_yuan(fen: int, text: str, display: str) -> None:
    assert (yuan(fen), yuan_display(fen)) == (text, display)


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        pytest.param("1234.5", 123_450, id="one decimal"),
        pytest.param("1,234.56元", 123_456, id="separators and the 元 sign"),
        pytest.param("1，234", 123_400, id="a full-width comma"),
        pytest.param(1234, 123_400, id="an integer"),
        pytest.param(Decimal("0.07"), 7, id="a decimal"),
        pytest.param("-0", 0, id="minus zero is zero"),
    ],
)
def test_yuan_text_parses_to_fen(value: object, fen: int) -> None:
    assert parse_yuan(value) == fen  # type: ignore[arg-type]


def test_spreadsheet_floats_are_read_from_their_shortest_form_only_when_allowed() -> None:
    assert parse_yuan(1.1, float_cells=True) == 110
    assert parse_yuan(2.25, float_cells=True) == 225
    with pytest.raises(MoneyError) as err:
        parse_yuan(1.1)
    assert err.value.code == "money_float"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        pytest.param("-5", "money_negative", id="negative"),
        pytest.param("1.005", "money_precision", id="three decimals"),
        pytest.param("1e3", "money_invalid", id="exponent"),
        pytest.param("NaN", "money_invalid", id="not a number"),
        pytest.param("12,34", "money_invalid", id="misplaced separator"),
        pytest.param("", "money_invalid", id="empty"),
        pytest.param(True, "money_invalid", id="a boolean"),
        pytest.param("1000000000000", "money_too_large", id="absurdly large"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(value: object, code: str) -> None:
    with pytest.raises(MoneyError) as err:
        parse_yuan(value)  # type: ignore[arg-type]
    assert err.value.code == code and err.value.zh and err.value.en


def test_wan_is_exact_from_fen_with_at_least_two_decimals() -> None:
    from decimal import Decimal

    from scoring.money import wan, wan_text

    assert wan(2_244_840_000) == Decimal("2244.84") and wan_text(2_244_840_000) == "2244.84"
    assert wan_text(185_000_000) == "185.00"
    assert wan_text(25_000_050) == "25.00005"  # 250 000.50 元: never rounded away
    assert wan_text(1) == "0.000001" and wan_text(0) == "0.00"
    assert wan_text(10**17) == "100000000000.00"  # no exponent at any size
    with pytest.raises(TypeError):
        wan(1.5)  # type: ignore[arg-type]
