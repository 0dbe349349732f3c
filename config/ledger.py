"""The ledger invariants (资金到位 and 拨付), written once for every path that changes money.

The definition loader, the CSV/XLSX importer, and the API's disbursement create/update all call
:func:`check_ledger` on the ledger as it *would be* after the change, and refuse the change when it
returns problems. Each entry carries the caller's own handle (``ref``: a file location, an import
row number, a disbursement id) so that every problem is reported where the user can find it.

Invariants (money in integer fen, dates in the project's timezone):

1. every arrival and every disbursement is dated inside the evaluation period (both ends
   inclusive) — ``date_outside_period``;
2. arrivals add up to at most the budget — ``arrived_exceeds_budget``;
3. disbursements add up to at most the arrivals — ``disbursed_exceeds_arrived`` (an import once
   drove 预算执行率 to 545 %);
4. at no date have more been paid than has arrived — ``disbursed_before_arrival``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from scoring.money import yuan

__all__ = ["LEDGER_CODES", "Entry", "LedgerProblem", "check_ledger"]

R = TypeVar("R")

LEDGER_CODES: tuple[str, ...] = (
    "date_outside_period",
    "arrived_exceeds_budget",
    "disbursed_exceeds_arrived",
    "disbursed_before_arrival",
)


@dataclass(frozen=True)
class Entry(Generic[R]):
    """One arrival or disbursement: the caller's handle, its date and amount (fen)."""

    ref: R
    day: dt.date
    amount_fen: int


@dataclass(frozen=True)
class LedgerProblem(Generic[R]):
    """A broken invariant. ``ref`` is the entry at fault, or None for a whole-ledger total
    (``scope`` then says which list: ``arrivals`` or ``disbursements``). ``field`` is the
    entry's field at fault (``date``/``amount``) or ""."""

    ref: R | None
    scope: str
    field: str
    code: str
    zh: str
    en: str


def check_ledger(
    *,
    period: tuple[dt.date, dt.date] | None,
    budget_fen: int | None,
    arrivals: Sequence[Entry[R]],
    disbursements: Sequence[Entry[R]],
    arrivals_complete: bool = True,
    disbursements_complete: bool = True,
) -> list[LedgerProblem[R]]:
    """Every broken invariant of the ledger (see the module docstring), in a stable order.

    ``*_complete`` False means some rows could not be read (already reported elsewhere): the
    totals are then not compared, to avoid a second, misleading problem."""
    problems: list[LedgerProblem[R]] = []
    if period is not None:
        start, end = period
        for scope, entries in (("arrivals", arrivals), ("disbursements", disbursements)):
            for e in entries:
                if not start <= e.day <= end:
                    problems.append(
                        LedgerProblem(
                            e.ref,
                            scope,
                            "date",
                            "date_outside_period",
                            f"日期 {e.day} 不在评价期间 {start} 至 {end} 内",
                            f"date {e.day} is outside the period {start} to {end}",
                        )  # fmt: skip
                    )
    arrived = sum(e.amount_fen for e in arrivals)
    disbursed = sum(e.amount_fen for e in disbursements)
    if arrivals_complete and budget_fen is not None and arrived > budget_fen:
        problems.append(
            LedgerProblem(
                None,
                "arrivals",
                "amount",
                "arrived_exceeds_budget",
                f"到位资金合计 {yuan(arrived)} 元超过预算 {yuan(budget_fen)} 元",
                f"arrivals total {yuan(arrived)} yuan exceeds the budget {yuan(budget_fen)} yuan",
            )  # fmt: skip
        )
    if not (arrivals_complete and disbursements_complete and disbursements):
        return problems
    if disbursed > arrived:
        problems.append(
            LedgerProblem(
                None,
                "disbursements",
                "amount",
                "disbursed_exceeds_arrived",
                f"拨付合计 {yuan(disbursed)} 元超过到位资金合计 {yuan(arrived)} 元",
                f"disbursements total {yuan(disbursed)} yuan exceeds arrivals total {yuan(arrived)} yuan",
            )  # fmt: skip
        )
        return problems
    # Arrivals of a day count before that day's payments.
    events = sorted(
        [(e.day, 0, e.amount_fen, e) for e in arrivals]
        + [(e.day, 1, -e.amount_fen, e) for e in disbursements],
        key=lambda item: (item[0], item[1]),
    )
    balance = 0
    for day, kind, amount, entry in events:
        balance += amount
        if kind == 1 and balance < 0:
            problems.append(
                LedgerProblem(
                    entry.ref,
                    "disbursements",
                    "date",
                    "disbursed_before_arrival",
                    f"截至 {day} 累计拨付超过累计到位资金 {yuan(-balance)} 元（拨付早于资金到位）",
                    f"by {day} cumulative disbursements exceed cumulative arrivals by {yuan(-balance)} yuan "
                    "(paid before the money arrived)",
                )  # fmt: skip
            )
            break
    return problems
