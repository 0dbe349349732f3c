"""Load the inputs of the computed facts with SQL aggregates (never row by row).

The database does the heavy grouping (1,000,000 responses become five counts), so a recompute
costs little more than the ``GROUP BY`` queries themselves. The result is plain data (integer
fen, dates, counts) for ``scoring.facts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import distinct, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.fact_sql import FACT_STATEMENTS, FactInputs, fold_fact_inputs
from store.models import Disbursement, FundArrival, Project


async def load_fact_inputs(session: AsyncSession, project: Project) -> FactInputs:
    """One grouped scan per large table (disbursements, confirmations, responses); the small
    remainders (per-date, per-status rows) are folded in Python. The statements and the fold are
    :mod:`store.fact_sql`'s, which ``jixiao score`` also runs on SQLite without the ORM."""
    params = {"pid": project.id}
    rows = {
        name: [tuple(r) for r in (await session.execute(text(sql), params)).all()]
        for name, sql in FACT_STATEMENTS.items()
    }
    return fold_fact_inputs(project.budget_fen, rows)


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
