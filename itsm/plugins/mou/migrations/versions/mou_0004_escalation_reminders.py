"""Escalation contacts with the time after a breach at which automatic escalation turns
to them (``itsm_escalation_path``; empty for the contacts agreed before), and the renewal
reminders sent before an agreement ends.

Revision ID: mou_0004
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "mou_0004"
down_revision = "mou_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mou_contact") as batch:
        batch.add_column(sa.Column("after_minutes", sa.Integer(), nullable=True))
    op.create_table(
        "mou_reminder",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("mou_id", sa.Integer(), sa.ForeignKey(
            "mou.id", name="fk_mou_reminder_mou", ondelete="CASCADE"), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("mou_id", "days", "ends_on", name="uq_mou_reminder_window"),
    )


def downgrade() -> None:
    op.drop_table("mou_reminder")
    with op.batch_alter_table("mou_contact") as batch:
        batch.drop_column("after_minutes")
