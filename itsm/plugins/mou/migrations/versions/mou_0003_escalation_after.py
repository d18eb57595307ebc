"""Escalation contacts with the time after a breach at which automatic escalation turns
to them (``itsm_escalation_path``); empty for the contacts agreed before.

Revision ID: mou_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "mou_0003"
down_revision = "mou_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mou_contact") as batch:
        batch.add_column(sa.Column("after_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mou_contact") as batch:
        batch.drop_column("after_minutes")
