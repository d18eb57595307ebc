"""Approvals bound to scope: what each CAB approval covered, and what a standard change
template allows.

Revision ID: change_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "change_0002"
down_revision = "change_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("change_approval") as batch:
        batch.add_column(sa.Column("scope", sa.JSON(), nullable=False,
                                   server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("scope_digest", sa.String(64), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("record_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("change_template") as batch:
        batch.add_column(sa.Column("environments", sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("max_window_hours", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("change_template") as batch:
        batch.drop_column("max_window_hours")
        batch.drop_column("environments")
    with op.batch_alter_table("change_approval") as batch:
        batch.drop_column("record_version")
        batch.drop_column("scope_digest")
        batch.drop_column("scope")
