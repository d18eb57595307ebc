"""Signatures bound to the content they cover: its values and their digest.

Revision ID: mou_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "mou_0002"
down_revision = "mou_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mou_signatory") as batch:
        batch.add_column(sa.Column("scope", sa.JSON(), nullable=False,
                                   server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("scope_digest", sa.String(64), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("mou_signatory") as batch:
        batch.drop_column("scope_digest")
        batch.drop_column("scope")
