"""Incident rules changed from the admin pages (categories, priority matrix, routing).

Revision ID: incident_0003
Revises: incident_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "incident_0003"
down_revision = "incident_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident_setting",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(),
                  sa.ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("incident_setting")
