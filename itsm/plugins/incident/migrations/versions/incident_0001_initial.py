"""Incidents, post-incident reviews and escalation steps.

The incident plugin's own Alembic branch; it extends the core's ``record`` table.

Revision ID: incident_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "incident_0001"
down_revision = None
branch_labels = ("incident",)
depends_on = "core_0004"


def _record_fk(table: str) -> sa.Column:
    return sa.Column("id", sa.Integer(), sa.ForeignKey(
        "record.id", name=f"fk_{table}_id_record", ondelete="CASCADE"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "incident",
        _record_fk("incident"),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("subcategory", sa.String(64), nullable=False),
        sa.Column("affected_service", sa.String(200), nullable=False),
        sa.Column("impact", sa.Integer(), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("major", sa.Boolean(), nullable=False),
        sa.Column("workaround", sa.Text(), nullable=False),
        sa.Column("hold_kind", sa.String(20), nullable=False),
        sa.Column("hold_reason", sa.String(500), nullable=False),
        sa.Column("resolution_code", sa.String(32), nullable=False),
        sa.Column("resolution_notes", sa.Text(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("satisfaction_comment", sa.Text(), nullable=False),
    )
    op.create_index("ix_incident_category", "incident", ["category"])
    op.create_table(
        "incident_review",
        _record_fk("incident_review"),
        sa.Column("incident_number", sa.String(32), nullable=False),
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("lessons", sa.Text(), nullable=False),
    )
    op.create_index("ix_incident_review_incident_number", "incident_review",
                    ["incident_number"])
    op.create_table(
        "incident_escalation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_incident_escalation_record_id_record", ondelete="CASCADE"),
            nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("action", sa.String(300), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("record_id", "metric", "level", name="uq_incident_escalation_step"),
    )
    op.create_index("ix_incident_escalation_record_id", "incident_escalation", ["record_id"])


def downgrade() -> None:
    op.drop_table("incident_escalation")
    op.drop_table("incident_review")
    op.drop_table("incident")
