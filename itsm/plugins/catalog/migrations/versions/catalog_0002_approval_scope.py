"""Approvals bound to scope: what a request's approver approved (values and digest).

Revision ID: catalog_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "catalog_0002"
down_revision = "catalog_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_request") as batch:
        batch.add_column(sa.Column("approved_scope", sa.JSON(), nullable=False,
                                   server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("approved_digest", sa.String(64), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("catalog_request") as batch:
        batch.drop_column("approved_digest")
        batch.drop_column("approved_scope")
