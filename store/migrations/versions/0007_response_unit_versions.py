"""One unit's response versions by index: ix_response_unit_versions (project, unit,
questionnaire, version) for the last version, the current one and the latest in a campaign

Revision ID: 0007_response_unit_versions
Revises: 0006_payment_state_indexes
Create Date: 2026-11-30 12:30:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0007_response_unit_versions"
down_revision: str | None = "0006_payment_state_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("response", schema=None) as batch_op:
        batch_op.create_index(
            "ix_response_unit_versions", ["project_id", "unit_id", "questionnaire_id", "version"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("response", schema=None) as batch_op:
        batch_op.drop_index("ix_response_unit_versions")
