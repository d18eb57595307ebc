"""Message-IDs of ingested mails, for the inbound e-mail adapter.

The mailgate plugin's own Alembic branch.

Revision ID: mailgate_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "mailgate_0001"
down_revision = None
branch_labels = ("mailgate",)
depends_on = "core_0004"


def upgrade() -> None:
    op.create_table(
        "mailgate_message",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(254), nullable=False),
        sa.Column("record_number", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("message_id", name="uq_mailgate_message_message_id"),
    )


def downgrade() -> None:
    op.drop_table("mailgate_message")
