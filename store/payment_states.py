"""The states of a payment — the one rule, used by ledger, overview, facts, discrepancies and the
chat replies (see the comment above :func:`store.answers.follow_disbursed_amounts`). A module of
its own so that :mod:`store.facts` (every recompute, the CLI's ``score``) does not import the
answer-submission code to read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.models import PaymentConfirmation

#: :func:`amount_differs` as SQL text over the bare columns of ``payment_confirmation``, for the
#: fact statements that the stdlib ``sqlite3`` reader also runs (:mod:`store.fact_sql`). The same
#: rule, written twice only because that reader cannot import SQLAlchemy;
#: ``tests/store/test_payment_states.py`` proves both forms agree on every combination of status
#: and amounts (NULLs included), on SQLite and PostgreSQL.
AMOUNT_DIFFERS_SQL = "(status = 'confirmed' AND coalesce(amount_fen <> expected_fen, false))"


def amount_differs(c: Any) -> Any:
    """SQL: the current answer ``c`` (PaymentConfirmation or an alias) confirms another amount."""
    from sqlalchemy import and_, false, func  # here: store.fact_sql reads the text form without it

    # coalesce: an answer without an expected amount (none is stored so today) counts as agreeing,
    # so that NOT this expression is exactly "confirmed" too
    return and_(c.status == "confirmed", func.coalesce(c.amount_fen != c.expected_fen, false()))


def answer_state(c: PaymentConfirmation | None) -> str:
    """``pending`` (None) | ``disputed`` | ``amount_differs`` | ``confirmed`` — as :func:`amount_differs`."""
    if c is None:
        return "pending"
    if c.status == "disputed":
        return "disputed"
    differs = c.amount_fen is not None and c.expected_fen is not None and c.amount_fen != c.expected_fen
    return "amount_differs" if differs else "confirmed"
