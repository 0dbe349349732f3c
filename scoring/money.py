"""Money at the edges: integer fen (分) inside, 元 text outside. One place for both directions.

Invariants: amounts are ``int`` fen everywhere inside the service; conversion to and from 元
goes through ``Decimal`` (never float); 元 text has exactly two decimals.

- :func:`yuan` — ``123456`` → ``"1234.56"`` (JSON, CSV, API: no separators, sign kept);
- :func:`yuan_display` — ``123456`` → ``"1,234.56"`` (pages and messages);
- :func:`wan` / :func:`wan_text` — fen → 万元 exactly (``2_244_840_000`` → ``Decimal("2244.84")`` /
  ``"2244.84"``), as the 自评表 prints amounts: at least 2 decimals, more only when the fen need
  them (1 万元 = 1 000 000 fen, so 6 decimals are always exact);
- :func:`parse_yuan` — 元 as typed or stored (``"1,234.5"``, ``"1234.50元"``, ``1234``, a
  ``Decimal``, a spreadsheet float cell) → fen, or :class:`MoneyError` saying what is wrong in
  Chinese and English (``code``: money_invalid, money_negative, money_precision, money_too_large,
  money_float).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
#: Largest accepted amount (元): far above any project budget, below BIGINT fen.
MAX_YUAN = Decimal("999999999999.99")
#: ASCII digits only: ``\d`` would also take Arabic-Indic (``١٢٣``) and full-width (``１２３``) digits.
_NUMBER = re.compile(r"^([0-9]{1,3}(,[0-9]{3})+|[0-9]+)(\.[0-9]+)?$")


class MoneyError(ValueError):
    """A 元 amount that cannot become fen; ``code`` is stable, ``zh``/``en`` are for people."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en


def yuan(fen: int) -> str:
    """Fen → 元 text with exactly 2 decimals, no separators: ``-12345`` → ``"-123.45"``."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def yuan_display(fen: int) -> str:
    """Fen → ``"1,234,567.89"`` (thousands separators, 2 decimals, exact)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"


#: Fen in one 万元 (10 000 元 × 100).
FEN_PER_WAN = 1_000_000


def wan(fen: int) -> Decimal:
    """Fen → 万元 as an exact ``Decimal`` (never rounded): ``2_244_840_000`` → ``2244.84``.

    At least 2 decimals are kept (``185.00``), trailing zeros beyond them dropped."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"amount must be integer fen, got {type(fen).__name__}: {fen!r}")
    exact = Decimal(fen).scaleb(-6)  # a pure exponent shift: exact at any size
    return exact.normalize() if exact != exact.quantize(CENT) else exact.quantize(CENT)


def wan_text(fen: int) -> str:
    """Fen → 万元 text, exact: ``"2244.84"``, ``"25.00005"``, ``"-3.50"`` (no separators, no unit)."""
    return format(wan(fen), "f")


def parse_yuan(value: str | int | Decimal | float, *, float_cells: bool = False) -> int:
    """元 → fen, refusing negatives, more than 2 decimals, non-numbers and absurd sizes.

    Text may carry thousands separators (``,``/``，``) and a trailing ``元``. A float is refused
    (``money_float``) unless ``float_cells`` — spreadsheet cells arrive as floats, and are then
    re-read from their shortest repr (``str(1.1)`` = ``"1.1"``), never computed with.
    """
    if isinstance(value, bool):
        raise MoneyError("money_invalid", f"金额 {value!r} 无效", f"amount {value!r} is invalid")
    if isinstance(value, float):
        if not float_cells:
            raise MoneyError(
                "money_float",
                f'金额 {value!r} 请写成字符串（如 "{value}"），浮点数会丢失精度',
                f'write amount {value!r} as a string (e.g. "{value}"): floats lose precision',
            )
        text = repr(value)
    elif isinstance(value, int | Decimal):
        text = str(value)
    else:
        text = str(value).strip().replace("，", ",").removesuffix("元").strip()
    negative = text.startswith("-")
    digits = text.removeprefix("-")
    if not _NUMBER.match(digits):
        raise MoneyError(
            "money_invalid",
            f"金额 {value!r} 无效，应为以元为单位的数字，如 1234.50",
            f"amount {value!r} is invalid: a number of 元 such as 1234.50 expected",
        )
    try:
        amount = Decimal(digits.replace(",", ""))
    except InvalidOperation:  # the pattern already excludes this; kept for safety
        raise MoneyError("money_invalid", f"金额 {value!r} 无效", f"amount {value!r} is invalid") from None
    if negative and amount != 0:
        raise MoneyError(
            "money_negative", f"金额 {text} 元不能为负数", f"amount {text} yuan must not be negative"
        )
    if amount > MAX_YUAN:  # first: quantizing a 30-digit amount would overflow the decimal context
        raise MoneyError(
            "money_too_large", f"金额 {text[:30]} 元过大，请核对", f"amount {text[:30]} yuan is too large"
        )
    if amount != amount.quantize(CENT):
        raise MoneyError(
            "money_precision",
            f"金额 {text} 元超过2位小数（最小单位为分）",
            f"amount {text} yuan has more than 2 decimals (the smallest unit is the fen)",
        )
    return int(amount.quantize(CENT) * 100)
