"""The one place where scores, rates and amounts are rounded and formatted.

Rules (all arithmetic is ``Decimal``; a float anywhere is a bug):

1. **Indicator scores** are computed unrounded by ``scoring.rules`` and then rounded once with
   :func:`round_score` to ``policy.decimals`` (0, 1 or 2) places:
   ``half_up`` = ``ROUND_HALF_UP`` (4.165 → 4.17), ``down`` = ``ROUND_DOWN`` (truncate toward
   zero: 9.8 → 9 with 0 decimals, as many published 自评表 do; the loader also accepts the
   name ``floor``, identical for scores, which are never negative). An indicator may carry its
   own rounding and decimals; the policy's are the default.
2. **Overrides** entered by an evaluator are rounded with the same rule.
3. **Total** = the sum of the *rounded* indicator scores (that is how published tables add up;
   the reader can check the sum by hand). When any indicator is not applicable (不适用) the sum
   is rescaled to 100: ``total = round_score(Σ scores × 100 / Σ applicable weights)`` and the
   unscaled sum is kept as ``raw_total``. Otherwise the sum is already on the grid and
   rounding it again changes nothing.
4. **Grade** is taken from the *rounded* total, lower bound inclusive (``total >= min``). So a
   raw 89.995 becomes 90.00 → 优 with 2 decimals ``half_up`` but 89.99 → 良 with ``down``.
5. **Rates** (完成率, 得分率, 到位率 …) are fractions (1 = 100 %) rounded with
   :func:`round_rate` to 4 decimals half-up, i.e. 0.01 %. Facts (``scoring.facts``) keep exact
   ratios so that 0.99996 is never promoted to "met" before scoring; only results are rounded.
6. **Money** is integer fen inside; shown in 万元 with exactly 2 decimals half-up
   (:func:`fmt_wan`), computed from the integer, never from a float.

Display helpers drop needless trailing zeros in sentences (得5分, not 得5.00分; 95.5%, 100%).

Every computation in this package runs under :data:`CONTEXT` (28 significant digits,
half-even for intermediate arithmetic) so that results do not depend on a caller's
thread-local decimal context.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal

from scoring.model import ScoringPolicy

__all__ = [
    "CONTEXT",
    "fmt_number",
    "fmt_pct",
    "fmt_points",
    "fmt_wan",
    "round_rate",
    "round_score",
]

#: Decimal context for all scoring arithmetic; explicit so that results are reproducible.
CONTEXT = Context(prec=28)

_RATE_QUANTUM = Decimal("0.0001")
_WAN_QUANTUM = Decimal("0.01")
_FEN_PER_WAN = Decimal(1_000_000)  # 1 万元 = 10 000 元 = 1 000 000 分
_MODES = {"half_up": ROUND_HALF_UP, "down": ROUND_DOWN}


def _require_decimal(x: object, what: str) -> Decimal:
    # bool/int are accepted as exact; float is refused because its binary value is not the
    # number the user typed (0.1 + 0.2 != 0.3) and would make totals irreproducible.
    if isinstance(x, Decimal):
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return Decimal(x)
    raise TypeError(f"{what} must be Decimal, got {type(x).__name__}: {x!r}")


def round_score(
    x: Decimal, policy: ScoringPolicy, *, rounding: str | None = None, decimals: int | None = None
) -> Decimal:
    """Round a score (points) to ``decimals`` places with ``rounding`` — an indicator's own
    setting (a published table may round one row half-up and another down) — defaulting to
    ``policy.decimals`` and ``policy.rounding``.

    The result always carries exactly that many places (``Decimal('5.00')``), so equal scores
    compare and serialise identically.
    """
    x = _require_decimal(x, "score")
    places = policy.decimals if decimals is None else decimals
    quantum = Decimal(1).scaleb(-places)
    return x.quantize(quantum, rounding=_MODES[rounding or policy.rounding], context=CONTEXT)


def round_rate(x: Decimal) -> Decimal:
    """Round a rate (fraction, 1 = 100 %) to 4 decimals half-up, i.e. to 0.01 %."""
    x = _require_decimal(x, "rate")
    return x.quantize(_RATE_QUANTUM, rounding=ROUND_HALF_UP, context=CONTEXT)


def fmt_number(x: Decimal) -> str:
    """Plain decimal text without exponent or needless trailing zeros: 7, 21.7, 0.05."""
    x = _require_decimal(x, "number")
    if x == 0:
        return "0"  # also turns Decimal('-0.00') into "0"
    text = format(x, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_pct(rate: Decimal) -> str:
    """A fraction as a percentage rounded to 0.01 %: 1 → "100%", 0.955 → "95.5%"."""
    return f"{fmt_number(round_rate(rate) * 100)}%"


def fmt_points(x: Decimal, policy: ScoringPolicy | None = None) -> str:
    """Points for sentences: rounded by ``policy`` when given, trailing zeros dropped (5, 4.17)."""
    x = _require_decimal(x, "points")
    if policy is not None:
        x = round_score(x, policy)
    return fmt_number(x)


def fmt_wan(fen: int) -> str:
    """Integer fen as 万元 with exactly 2 decimals, half-up: 2_244_840_000 → "2244.84万元"."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError(f"amount must be integer fen, got {type(fen).__name__}: {fen!r}")
    wan = CONTEXT.divide(Decimal(fen), _FEN_PER_WAN).quantize(
        _WAN_QUANTUM, rounding=ROUND_HALF_UP, context=CONTEXT
    )
    return f"{wan}万元"
