"""The catalog's stable id of a transition's service, so a rename keeps the gate's veto.

Revision ID: transition_gate_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "transition_gate_0002"
down_revision = "transition_gate_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_transition") as batch:
        batch.add_column(sa.Column("catalog_id", sa.Integer(), nullable=True))
        batch.create_index("ix_service_transition_catalog_id", ["catalog_id"])


def downgrade() -> None:
    with op.batch_alter_table("service_transition") as batch:
        batch.drop_index("ix_service_transition_catalog_id")
        batch.drop_column("catalog_id")
