"""The fact queries as SQL text, and how their rows become :class:`FactInputs` — shared by the
ORM (:func:`store.facts.load_fact_inputs`, every recompute on either database) and the stdlib
``sqlite3`` reader of ``jixiao score`` (:mod:`store.lite`), so the rules cannot drift apart.

This module imports no SQLAlchemy: a short-lived command on SQLite reads the facts without it.
The statements are portable (SQLite and PostgreSQL): named parameters (``:pid``), ``= true`` on
boolean columns, and the three unit counts as scalar subqueries of one statement. Rows come
back as each driver gives them (SQLite: dates as ISO text; PostgreSQL: ``sum`` of a BIGINT as
``Decimal``); the fold functions accept both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from store.payment_states import AMOUNT_DIFFERS_SQL


@dataclass(frozen=True)
class FactInputs:
    """Aggregated inputs for one project. Money in fen."""

    budget_fen: int
    arrivals: list[tuple[date, int]]
    disbursed_by_date: list[tuple[date, int]]
    disbursed_fen: int
    disbursement_count: int
    confirmed_fen: int
    confirmed_count: int
    disputed_count: int
    discrepancy_count: int
    satisfaction_counts: dict[str, int]
    responded_units: int
    invited_units: int
    active_units: int
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def unconfirmed_count(self) -> int:
        return self.disbursement_count - self.confirmed_count - self.disputed_count


#: Fen arrived per date, oldest first: (arrived_on, fen).
ARRIVALS_SQL = (
    "SELECT arrived_on, sum(amount_fen) FROM fund_arrival WHERE project_id = :pid "
    "GROUP BY arrived_on ORDER BY arrived_on"
)

#: Fen paid and payments per date, oldest first: (paid_on, fen, count).
DISBURSED_BY_DATE_SQL = (
    "SELECT paid_on, sum(amount_fen), count(*) FROM disbursement WHERE project_id = :pid "
    "GROUP BY paid_on ORDER BY paid_on"
)

#: Current confirmations per status: (status, count, fen, how many confirm another amount). A
#: discrepancy is the payment-state rule (:data:`store.payment_states.AMOUNT_DIFFERS_SQL`),
#: compared with ``expected_fen`` on the answer row, so no join; index-only on
#: ``ix_confirmation_amounts``.
CONFIRMATIONS_SQL = (
    "SELECT status, count(*), coalesce(sum(amount_fen), 0), "
    f"sum(CASE WHEN {AMOUNT_DIFFERS_SQL} THEN 1 ELSE 0 END) "
    "FROM payment_confirmation WHERE project_id = :pid AND is_current = true GROUP BY status"
)

#: Current responses per satisfaction label (a handful of groups, index-only on
#: ``ix_response_current``): (label or NULL, count).
SATISFACTION_SQL = (
    "SELECT satisfaction, count(*) FROM response WHERE project_id = :pid AND is_current = true "
    "GROUP BY satisfaction"
)

#: (responding units, invited units, active units). One index probe per unit of the project
#: (``EXISTS`` on ``response.unit_id`` / ``link.unit_id``): grouping responses by (unit, label)
#: shipped tens of thousands of rows to Python, and ``count(DISTINCT link.unit_id)`` joined to
#: ``unit`` became a nested loop over millions of rows when PostgreSQL had no statistics; these
#: forms cost the same whatever the planner believes.
UNIT_COUNTS_SQL = (
    "SELECT "
    "(SELECT count(*) FROM unit WHERE unit.project_id = :pid AND EXISTS (SELECT 1 FROM response "
    "WHERE response.unit_id = unit.id AND response.project_id = :pid AND response.is_current = true)), "
    "(SELECT count(*) FROM unit WHERE unit.project_id = :pid AND EXISTS (SELECT 1 FROM link "
    "WHERE link.unit_id = unit.id AND link.revoked_at IS NULL)), "
    "(SELECT count(*) FROM unit WHERE unit.project_id = :pid AND unit.active = true)"
)

#: Every statement :func:`fold_fact_inputs` needs, by name; each takes ``{"pid": project id}``.
FACT_STATEMENTS: dict[str, str] = {
    "arrivals": ARRIVALS_SQL,
    "disbursed": DISBURSED_BY_DATE_SQL,
    "confirmations": CONFIRMATIONS_SQL,
    "satisfaction": SATISFACTION_SQL,
    "units": UNIT_COUNTS_SQL,
}


def _date(value: Any) -> date:
    """A DATE column's value: ``date`` from PostgreSQL, ISO text from SQLite."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def fold_fact_inputs(budget_fen: int, rows: dict[str, Sequence[Sequence[Any]]]) -> FactInputs:
    """:class:`FactInputs` from the rows of each of :data:`FACT_STATEMENTS` (by the same name)."""
    arrivals = [(_date(d), int(a)) for d, a in rows["arrivals"]]
    by_date = [(_date(d), int(a), int(n)) for d, a, n in rows["disbursed"]]
    disbursed = [(d, a) for d, a, _ in by_date]
    by_status = {str(s): (int(n), int(fen or 0), int(diff or 0)) for s, n, fen, diff in rows["confirmations"]}
    satisfaction: Counter[str] = Counter()
    for label, n in rows["satisfaction"]:
        if label is not None:
            satisfaction[str(label)] += int(n)
    responded, invited, active = (int(v or 0) for v in rows["units"][0])
    confirmed = by_status.get("confirmed", (0, 0, 0))
    return FactInputs(
        budget_fen=int(budget_fen),
        arrivals=arrivals,
        disbursed_by_date=disbursed,
        disbursed_fen=sum(a for _, a in disbursed),
        disbursement_count=sum(n for _, _, n in by_date),
        confirmed_fen=confirmed[1],
        confirmed_count=confirmed[0],
        disputed_count=by_status.get("disputed", (0, 0, 0))[0],
        discrepancy_count=confirmed[2],
        satisfaction_counts=dict(satisfaction),
        responded_units=responded,
        # Before any campaign, the whole active population counts as invited (coverage = census).
        invited_units=invited or active,
        active_units=active,
    )
