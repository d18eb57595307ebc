"""The requester's rating of a fulfilled request (1-5) and its comment.

Revision ID: catalog_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "catalog_0004"
down_revision = "catalog_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_request") as batch:
        batch.add_column(sa.Column("satisfaction", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("satisfaction_comment", sa.Text(), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("catalog_request") as batch:
        batch.drop_column("satisfaction_comment")
        batch.drop_column("satisfaction")
