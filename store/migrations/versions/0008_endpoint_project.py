"""Coordinator endpoints added in the console belong to a project: channel_endpoint.project_id
(nullable; endpoints registered by a send keep None and are scoped by their units and messages)

Revision ID: 0008_endpoint_project
Revises: 0007_response_unit_versions
Create Date: 2026-11-30 13:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_endpoint_project"
down_revision: str | None = "0007_response_unit_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel_endpoint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_channel_endpoint_project_id_project", "project", ["project_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_endpoint", schema=None) as batch_op:
        batch_op.drop_constraint("fk_channel_endpoint_project_id_project", type_="foreignkey")
        batch_op.drop_column("project_id")
