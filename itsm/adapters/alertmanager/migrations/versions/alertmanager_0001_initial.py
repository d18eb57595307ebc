"""Alert groups and the records they opened.

The alertmanager plugin's own Alembic branch.

Revision ID: alertmanager_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "alertmanager_0001"
down_revision = None
branch_labels = ("alertmanager",)
depends_on = "core_0004"


def upgrade() -> None:
    op.create_table(
        "alert_incident",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("group_key", sa.String(500), nullable=False),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_alert_incident_record_id_record", ondelete="SET NULL"),
            nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("group_key", name="uq_alert_incident_group_key"),
    )


def downgrade() -> None:
    op.drop_table("alert_incident")
