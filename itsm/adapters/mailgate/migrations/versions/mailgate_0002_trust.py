"""The whole Message-ID recognised by its hash, held messages, per-sender mail counts.

Message-IDs were cut to 255 characters before the duplicate check, so a different mail
with the same first 255 characters was dropped as a duplicate. Rows written before keep
the hash of what was stored (all that is known of them).

Revision ID: mailgate_0002
"""

import hashlib

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "mailgate_0002"
down_revision = "mailgate_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailgate_message", sa.Column("message_hash", sa.String(64), nullable=True))
    table = sa.table("mailgate_message", sa.column("id", sa.Integer()),
                     sa.column("message_id", sa.String(255)),
                     sa.column("message_hash", sa.String(64)))
    connection = op.get_bind()
    for row_id, message_id in connection.execute(sa.select(table.c.id, table.c.message_id)):
        digest = hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()
        connection.execute(table.update().where(table.c.id == row_id)
                           .values(message_hash=digest))
    with op.batch_alter_table("mailgate_message") as batch:
        batch.drop_constraint("uq_mailgate_message_message_id", type_="unique")
        batch.alter_column("message_hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_mailgate_message_message_hash", ["message_hash"])
    op.create_table(
        "mailgate_held",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_hash", sa.String(64), nullable=True),
        sa.Column("sender", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(length=2**32 - 1), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "mailgate_sender_window",
        sa.Column("sender", sa.String(254), primary_key=True),
        sa.Column("window_number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("mails", sa.Integer(), nullable=False),
    )
    op.create_index("ix_mailgate_sender_window_window_number", "mailgate_sender_window",
                    ["window_number"])


def downgrade() -> None:
    op.drop_table("mailgate_sender_window")
    op.drop_table("mailgate_held")
    with op.batch_alter_table("mailgate_message") as batch:
        batch.drop_constraint("uq_mailgate_message_message_hash", type_="unique")
        batch.drop_column("message_hash")
        batch.create_unique_constraint("uq_mailgate_message_message_id", ["message_id"])
