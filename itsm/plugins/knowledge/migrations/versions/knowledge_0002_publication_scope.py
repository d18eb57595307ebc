"""Approvals bound to scope: who published an article, what, and its digest.

Revision ID: knowledge_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "knowledge_0002"
down_revision = "knowledge_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kb_article") as batch:
        batch.add_column(sa.Column("published_by", sa.String(254), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("published_scope", sa.JSON(), nullable=False,
                                   server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("published_digest", sa.String(64), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("kb_article") as batch:
        batch.drop_column("published_digest")
        batch.drop_column("published_scope")
        batch.drop_column("published_by")
