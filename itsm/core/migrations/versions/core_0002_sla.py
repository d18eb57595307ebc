"""SLA clocks: one row per record and metric, with indexed due times for the sweep.

Revision ID: core_0002
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sla_clock",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_sla_clock_record_id_record", ondelete="CASCADE"),
            nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("target_minutes", sa.Integer(), nullable=True),
        sa.Column("calendar", sa.String(64), nullable=False),
        sa.Column("warn_at", sa.Double(), nullable=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("started_at"),
        sa.Column("elapsed_seconds", sa.Double(), nullable=False),
        _ts("as_of"),
        _ts("met_at", True),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("breached", sa.Boolean(), nullable=False),
        _ts("warn_due_at", True),
        _ts("breach_due_at", True),
        sa.Column("warning_sent", sa.Boolean(), nullable=False),
        sa.Column("breach_sent", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("record_id", "metric", name="uq_sla_clock_record_metric"),
    )
    op.create_index("ix_sla_clock_warn_due", "sla_clock", ["warning_sent", "warn_due_at"])
    op.create_index("ix_sla_clock_breach_due", "sla_clock", ["breach_sent", "breach_due_at"])


def downgrade() -> None:
    op.drop_table("sla_clock")
