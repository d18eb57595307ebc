"""Per-user notification preferences of the e-mail adapter.

The e-mail plugin's own Alembic branch.

Revision ID: email_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "email_0001"
down_revision = None
branch_labels = ("email",)
depends_on = "core_0004"


def upgrade() -> None:
    op.create_table(
        "notification_preference",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_notification_preference_user_id_user_account",
            ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("user_id", "channel", "event",
                            name="uq_notification_preference_user_channel_event"),
    )
    op.create_index("ix_notification_preference_user_id", "notification_preference",
                    ["user_id"])


def downgrade() -> None:
    op.drop_table("notification_preference")
