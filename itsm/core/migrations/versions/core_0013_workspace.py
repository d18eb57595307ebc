"""The agent workspace's two shared facts: a person's time zone and a customer's reply.

``user_account.time_zone`` is the IANA zone every page shows that person's times in (empty:
the install's zone). ``record.customer_reply_at`` is when the requester last replied while
the record's assignee had not yet looked; the queue marks such records "updated by
customer" and opening the record clears it.

Revision ID: core_0013
Revises: core_0012
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0013"
down_revision = "core_0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("user_account", sa.Column("time_zone", sa.String(64), nullable=False,
                                            server_default=""))
    op.add_column("record", sa.Column("customer_reply_at", sa.DateTime(), nullable=True))
    op.create_index("ix_record_customer_reply", "record", ["customer_reply_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_record_customer_reply", table_name="record")
    # Not a batch copy of ``record``: on SQLite that would rebuild the table and lose the
    # search triggers of core_0004 (SQLite drops a plain column in place since 3.35).
    op.drop_column("record", "customer_reply_at")
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("time_zone")
