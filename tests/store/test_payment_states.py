"""The payment-state rule has two forms — :func:`store.payment_states.amount_differs` (SQLAlchemy)
and :data:`store.payment_states.AMOUNT_DIFFERS_SQL` (text, for the fact statements the stdlib
reader runs) — and both must say the same of every answer, and of its negation, on both
databases; :func:`store.payment_states.answer_state` (Python) agrees with them too."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from sqlalchemy import case, literal_column, not_, select

from config.loader import load_definition
from store.db import SessionMaker, transaction
from store.models import Disbursement, PaymentConfirmation
from store.payment_states import AMOUNT_DIFFERS_SQL, amount_differs, answer_state
from store.projects import load_project
from tests.conftest import EXAMPLE_PROJECT

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def _flag(condition: object) -> object:
    return case((condition, 1), else_=0)  # type: ignore[arg-type]


async def test_both_forms_of_amount_differs_agree_on_every_answer(sessionmaker: SessionMaker) -> None:
    async with transaction(sessionmaker) as s:
        pid = (await load_project(s, load_definition(EXAMPLE_PROJECT), now=NOW)).project.id
    combos = list(itertools.product(("confirmed", "disputed"), (None, 100, 200), (None, 100, 200)))
    async with transaction(sessionmaker) as s:
        pay = (
            await s.execute(select(Disbursement).where(Disbursement.project_id == pid).limit(1))
        ).scalar_one()
        for i, (status, amount, expected) in enumerate(combos):
            s.add(PaymentConfirmation(project_id=pid, disbursement_id=pay.id, unit_id=pay.unit_id, status=status,
                                      amount_fen=amount, expected_fen=expected, submission_key=f"k{i}",
                                      submitted_at=NOW, is_current=i == 0))  # fmt: skip
    text_form = literal_column(AMOUNT_DIFFERS_SQL)
    stmt = select(
        PaymentConfirmation,
        _flag(amount_differs(PaymentConfirmation)),
        _flag(text_form),
        _flag(not_(amount_differs(PaymentConfirmation))),
        _flag(not_(text_form)),
    ).order_by(PaymentConfirmation.id)
    async with sessionmaker() as s:
        rows = (await s.execute(stmt)).all()
    assert len(rows) == len(combos)
    differs = []
    for answer, orm, text, orm_not, text_not in rows:
        assert (orm, orm_not) == (text, text_not), (answer.status, answer.amount_fen, answer.expected_fen)
        assert orm + orm_not == 1  # never NULL: NOT amount_differs is exactly the other states
        assert orm == (answer_state(answer) == "amount_differs")
        if orm:
            differs.append((answer.amount_fen, answer.expected_fen))
    assert sorted(differs) == [(100, 200), (200, 100)]
