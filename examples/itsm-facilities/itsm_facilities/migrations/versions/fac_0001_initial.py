"""Facility requests: the table of the facility_request record type.

The plugin's own Alembic branch: it starts from nothing (``down_revision = None``) and
needs the core's first revision, whose ``record`` table it extends.

Revision ID: fac_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "fac_0001"
down_revision = None
branch_labels = ("facilities",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "facility_request",
        sa.Column("id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_facility_request_id_record", ondelete="CASCADE"),
            primary_key=True),
        sa.Column("building", sa.String(100), nullable=False),
        sa.Column("room", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=True),
        sa.Column("completion_note", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("facility_request")
