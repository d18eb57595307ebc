"""In-app notifications: each person's inbox and which kinds also go by e-mail.

``inbox_notification`` holds one row per person and event (the ``inbox`` channel's
deliveries, see itsm.core.inbox); ``inbox_preference`` says, per person and kind of
notification, whether it also goes by e-mail.

Revision ID: core_0015
Revises: core_0014
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0015"
down_revision = "core_0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_notification",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", ondelete="CASCADE",
            name="fk_inbox_notification_user_id_user_account"), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", ondelete="SET NULL",
            name="fk_inbox_notification_record_id_record"), nullable=True),
        sa.Column("record_type", sa.String(64), nullable=False),
        sa.Column("record_number", sa.String(32), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("excerpt", sa.String(300), nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_inbox_notification"),
        sa.UniqueConstraint("user_id", "event_id", name="uq_inbox_notification_user_event"),
    )
    op.create_index("ix_inbox_notification_user", "inbox_notification", ["user_id", "id"])
    op.create_index("ix_inbox_notification_unread", "inbox_notification",
                    ["user_id", "read_at"])
    op.create_index("ix_inbox_notification_record", "inbox_notification", ["record_id"])
    op.create_table(
        "inbox_preference",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", ondelete="CASCADE",
            name="fk_inbox_preference_user_id_user_account"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "kind", name="pk_inbox_preference"),
    )


def downgrade() -> None:
    op.drop_table("inbox_preference")
    op.drop_index("ix_inbox_notification_record", table_name="inbox_notification")
    op.drop_index("ix_inbox_notification_unread", table_name="inbox_notification")
    op.drop_index("ix_inbox_notification_user", table_name="inbox_notification")
    op.drop_table("inbox_notification")
