"""Load the inputs of the computed facts with SQL aggregates (never row by row).

The database does the heavy grouping (1,000,000 responses become five counts), so a recompute
costs little more than the ``GROUP BY`` queries themselves. The result is plain data (integer
fen, dates, counts) for ``scoring.facts``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import case, distinct, exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Disbursement, FundArrival, Link, PaymentConfirmation, Project, Response, Unit
from store.payment_states import amount_differs


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


async def load_fact_inputs(session: AsyncSession, project: Project) -> FactInputs:
    """One grouped scan per large table (disbursements, confirmations, responses); the small
    remainders (per-date, per-status, per-unit×label rows) are folded here."""
    pid = project.id
    arrivals = [
        (d, int(a))
        for d, a in (
            await session.execute(
                select(FundArrival.arrived_on, func.sum(FundArrival.amount_fen))
                .where(FundArrival.project_id == pid)
                .group_by(FundArrival.arrived_on)
                .order_by(FundArrival.arrived_on)
            )
        ).all()
    ]
    by_date = (
        await session.execute(
            select(Disbursement.paid_on, func.sum(Disbursement.amount_fen), func.count())
            .where(Disbursement.project_id == pid)
            .group_by(Disbursement.paid_on)
            .order_by(Disbursement.paid_on)
        )
    ).all()
    disbursed = [(d, int(a)) for d, a, _ in by_date]
    # Current confirmations by status; a discrepancy is store.answers.amount_differs (the ledger's
    # rule: compared with ``expected_fen`` on the answer row, so no join is needed).
    conf = (
        await session.execute(
            select(
                PaymentConfirmation.status,
                func.count(),
                func.coalesce(func.sum(PaymentConfirmation.amount_fen), 0),
                func.sum(case((amount_differs(PaymentConfirmation), 1), else_=0)),
            )
            .where(PaymentConfirmation.project_id == pid, PaymentConfirmation.is_current.is_(True))
            .group_by(PaymentConfirmation.status)
        )
    ).all()
    by_status = {s: (int(n), int(fen or 0), int(diff or 0)) for s, n, fen, diff in conf}
    # Label counts: one grouped scan (a handful of groups, index-only on ix_response_current).
    satisfaction: Counter[str] = Counter()
    for label, n in (
        await session.execute(
            select(Response.satisfaction, func.count())
            .where(Response.project_id == pid, Response.is_current.is_(True))
            .group_by(Response.satisfaction)
        )
    ).all():
        if label is not None:
            satisfaction[str(label)] += int(n)
    # Responding and invited units: one index probe per unit of the project (``EXISTS`` on
    # ``response.unit_id`` / ``link.unit_id``). Grouping responses by (unit, label) shipped tens
    # of thousands of rows to Python, and ``count(DISTINCT link.unit_id)`` joined to ``unit``
    # became a nested loop over millions of rows when PostgreSQL had no statistics: these forms
    # cost the same whatever the planner believes.
    responded = await session.scalar(
        select(func.count())
        .select_from(Unit)
        .where(
            Unit.project_id == pid,
            exists().where(
                Response.unit_id == Unit.id, Response.project_id == pid, Response.is_current.is_(True)
            ),
        )
    )
    invited = await session.scalar(
        select(func.count())
        .select_from(Unit)
        .where(Unit.project_id == pid, exists().where(Link.unit_id == Unit.id, Link.revoked_at.is_(None)))
    )
    active_units = await session.scalar(
        select(func.count()).select_from(Unit).where(Unit.project_id == pid, Unit.active.is_(True))
    )
    confirmed = by_status.get("confirmed", (0, 0, 0))
    return FactInputs(
        budget_fen=project.budget_fen,
        arrivals=arrivals,
        disbursed_by_date=disbursed,
        disbursed_fen=sum(a for _, a in disbursed),
        disbursement_count=sum(int(n) for _, _, n in by_date),
        confirmed_fen=confirmed[1],
        confirmed_count=confirmed[0],
        disputed_count=by_status.get("disputed", (0, 0, 0))[0],
        discrepancy_count=confirmed[2],
        satisfaction_counts=dict(satisfaction),
        responded_units=int(responded or 0),
        # Before any campaign, the whole active population counts as invited (coverage = census).
        invited_units=int(invited or 0) or int(active_units or 0),
        active_units=int(active_units or 0),
    )


@dataclass(frozen=True)
class PaymentBatch:
    """One disbursement batch (拨付批次): its label, first and last payment date, total fen, and
    how many payments and distinct units it holds."""

    batch: str
    first_paid: date
    last_paid: date
    amount_fen: int
    payments: int
    units: int


@dataclass(frozen=True)
class FundsDetail:
    """The fund ledger as the 评价报告 tells it: arrivals by date, payment batches, units paid.
    Money in fen."""

    arrivals: list[tuple[date, int]]
    batches: list[PaymentBatch]
    paid_units: int
    disbursed_fen: int

    @property
    def arrived_fen(self) -> int:
        return sum(a for _, a in self.arrivals)


async def load_funds_detail(session: AsyncSession, project: Project) -> FundsDetail:
    """Arrivals per date, disbursements per batch and the number of distinct units paid (three
    grouped queries). Batches are ordered by their first payment date."""
    pid = project.id
    arrivals = [
        (d, int(a))
        for d, a in (
            await session.execute(
                select(FundArrival.arrived_on, func.sum(FundArrival.amount_fen))
                .where(FundArrival.project_id == pid)
                .group_by(FundArrival.arrived_on)
                .order_by(FundArrival.arrived_on)
            )
        ).all()
    ]
    rows = (
        await session.execute(
            select(
                Disbursement.batch,
                func.min(Disbursement.paid_on),
                func.max(Disbursement.paid_on),
                func.sum(Disbursement.amount_fen),
                func.count(),
                func.count(distinct(Disbursement.unit_id)),
            )
            .where(Disbursement.project_id == pid)
            .group_by(Disbursement.batch)
        )
    ).all()
    batches = sorted(
        (
            PaymentBatch(str(b or ""), first, last, int(fen or 0), int(n), int(u))
            for b, first, last, fen, n, u in rows
        ),
        key=lambda b: (b.first_paid, b.batch),
    )
    paid_units = await session.scalar(
        select(func.count(distinct(Disbursement.unit_id))).where(Disbursement.project_id == pid)
    )
    return FundsDetail(
        arrivals=arrivals,
        batches=batches,
        paid_units=int(paid_units or 0),
        disbursed_fen=sum(b.amount_fen for b in batches),
    )


#: The tables whose statistics the fact queries rely on.
FACT_TABLES = ("unit", "link", "response", "disbursement", "payment_confirmation", "fund_arrival")


async def ensure_statistics(session: AsyncSession, tables: tuple[str, ...] = FACT_TABLES) -> list[str]:
    """PostgreSQL: ``ANALYZE`` the tables never analysed or changed by more than 10 % (at least
    1,000 rows) since their last analysis — bulk launches, loads and imports, with autovacuum off
    or not yet run. Returns the tables analysed (none on SQLite). One catalogue query otherwise."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    stale = (
        (
            await session.execute(
                text(
                    "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:tables) AND ("
                    "(last_analyze IS NULL AND last_autoanalyze IS NULL AND n_live_tup + n_mod_since_analyze > 0)"
                    " OR n_mod_since_analyze > greatest(1000, n_live_tup / 10))"
                ),
                {"tables": list(tables)},
            )
        )
        .scalars()
        .all()
    )
    if stale:
        await session.execute(text("ANALYZE " + ", ".join(sorted(str(t) for t in stale if t in tables))))
    return sorted(stale)
