"""A response version is stored once: ix_response_unit_versions becomes the unique index
uq_response_unit_versions (project, unit, questionnaire, version)

The unit page's submit on PostgreSQL writes in one statement without a transaction first; when
a concurrent submit for the same unit committed while it waited for the unit's lock, it would
insert that version again. The unique index refuses it (the page then falls back to its
transaction), and keeps every other writer (API, imports) honest too.

Revision ID: 0009_response_versions_unique
Revises: 0008_endpoint_project
Create Date: 2026-11-30 16:10:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0009_response_versions_unique"
down_revision: str | None = "0008_endpoint_project"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["project_id", "unit_id", "questionnaire_id", "version"]


def upgrade() -> None:
    with op.batch_alter_table("response", schema=None) as batch_op:
        batch_op.drop_index("ix_response_unit_versions")
        batch_op.create_index("uq_response_unit_versions", COLUMNS, unique=True)


def downgrade() -> None:
    with op.batch_alter_table("response", schema=None) as batch_op:
        batch_op.drop_index("uq_response_unit_versions")
        batch_op.create_index("ix_response_unit_versions", COLUMNS, unique=False)
