"""Problems: the table of the problem record type.

The plugin's own Alembic branch "problem": it starts from nothing and needs the core up
to core_0004 (the full-text index that known-error suggestions search).

Revision ID: problem_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "problem_0001"
down_revision = None
branch_labels = ("problem",)
depends_on = "core_0004"


def upgrade() -> None:
    op.create_table(
        "problem",
        sa.Column("id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_problem_id_record", ondelete="CASCADE"),
            primary_key=True),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("affected_service", sa.String(200), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=False),
        sa.Column("workaround", sa.Text(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("known_error_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("problem")
