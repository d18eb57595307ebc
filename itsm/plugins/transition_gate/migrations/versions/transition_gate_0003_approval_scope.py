"""Approvals bound to scope: what each deliverable's approval and the service manager's
acceptance covered (values and digest).

Revision ID: transition_gate_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "transition_gate_0003"
down_revision = "transition_gate_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_transition") as batch:
        batch.add_column(sa.Column("accepted_scope", sa.JSON(), nullable=False,
                                   server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("accepted_digest", sa.String(64), nullable=False,
                                   server_default=""))
    with op.batch_alter_table("transition_deliverable") as batch:
        batch.add_column(sa.Column("approved_scope", sa.JSON(), nullable=False,
                                   server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("approved_digest", sa.String(64), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("transition_deliverable") as batch:
        batch.drop_column("approved_digest")
        batch.drop_column("approved_scope")
    with op.batch_alter_table("service_transition") as batch:
        batch.drop_column("accepted_digest")
        batch.drop_column("accepted_scope")
