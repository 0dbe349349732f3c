"""Payment states without a join: covering indexes for the ledger and its counts; answers compare
with the disbursement's current amount (expected_fen brought up to date)

Revision ID: 0006_payment_state_indexes
Revises: 0005_console_accounts
Create Date: 2026-11-30 12:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_payment_state_indexes"
down_revision: str | None = "0005_console_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment_confirmation", schema=None) as batch_op:
        batch_op.drop_index("ix_confirmation_state")
        batch_op.create_index(
            "ix_confirmation_amounts",
            ["project_id", "is_current", "status", "amount_fen", "expected_fen"],
            unique=False,
        )
    with op.batch_alter_table("disbursement", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disbursement_ledger", ["project_id", "paid_on", "key", "amount_fen"], unique=False
        )
    # Current answers compare with the disbursement's amount as it stands (store.answers
    # .follow_disbursed_amounts keeps it so from now on; before, a corrected amount left it behind).
    op.execute(
        sa.text(
            "UPDATE payment_confirmation SET expected_fen = (SELECT d.amount_fen FROM disbursement d "
            "WHERE d.id = payment_confirmation.disbursement_id) "
            "WHERE is_current = :t AND (expected_fen IS NULL OR expected_fen <> (SELECT d.amount_fen "
            "FROM disbursement d WHERE d.id = payment_confirmation.disbursement_id))"
        ).bindparams(t=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("disbursement", schema=None) as batch_op:
        batch_op.drop_index("ix_disbursement_ledger")
    with op.batch_alter_table("payment_confirmation", schema=None) as batch_op:
        batch_op.drop_index("ix_confirmation_amounts")
        batch_op.create_index("ix_confirmation_state", ["project_id", "is_current", "status"], unique=False)
