"""Service transitions, their deliverables, meetings, milestones, roles and gate
exceptions, and the checklist templates.

The transition gate plugin's own Alembic branch; it extends the core's ``record`` table.

Revision ID: transition_gate_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "transition_gate_0001"
down_revision = None
branch_labels = ("transition_gate",)
depends_on = "core_0004"


def _record(table: str) -> sa.Column:
    return sa.Column("transition_id", sa.Integer(), sa.ForeignKey(
        "record.id", name=f"fk_{table}_transition_id_record", ondelete="CASCADE"),
        nullable=False, index=True)


def upgrade() -> None:
    op.create_table(
        "service_transition",
        sa.Column("id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_service_transition_id_record", ondelete="CASCADE"),
            primary_key=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("service", sa.String(200), nullable=False, index=True),
        sa.Column("service_name", sa.String(200), nullable=False),
        sa.Column("catalog_key", sa.String(100), nullable=False, index=True),
        sa.Column("project_manager", sa.String(254), nullable=False),
        sa.Column("service_manager", sa.String(254), nullable=False),
        sa.Column("go_live_date", sa.Date(), nullable=True),
        sa.Column("support_days", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("accepted_by", sa.String(254), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.Column("gate_passed_at", UTCDateTime(), nullable=True),
        sa.Column("support_until", UTCDateTime(), nullable=True, index=True),
    )
    op.create_table(
        "transition_template",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
    )
    op.create_table(
        "transition_deliverable",
        sa.Column("id", sa.Integer(), primary_key=True),
        _record("transition_deliverable"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("mandatory", sa.Boolean(), nullable=False),
        sa.Column("document_url", sa.String(500), nullable=False),
        sa.Column("owner", sa.String(254), nullable=False),
        sa.Column("approver", sa.String(254), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True, index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("evidence_kind", sa.String(16), nullable=False),
        sa.Column("evidence", sa.String(500), nullable=False),
        sa.Column("evidence_note", sa.Text(), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(254), nullable=False),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "transition_meeting",
        sa.Column("id", sa.Integer(), primary_key=True),
        _record("transition_meeting"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scheduled_at", UTCDateTime(), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("attendees", sa.JSON(), nullable=False),
        sa.Column("minutes", sa.Text(), nullable=False),
    )
    op.create_table(
        "transition_milestone",
        sa.Column("id", sa.Integer(), primary_key=True),
        _record("transition_milestone"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=True),
    )
    op.create_table(
        "transition_role",
        sa.Column("id", sa.Integer(), primary_key=True),
        _record("transition_role"),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(50), nullable=False),
        sa.Column("responsibility", sa.Text(), nullable=False),
    )
    op.create_table(
        "transition_exception",
        sa.Column("id", sa.Integer(), primary_key=True),
        _record("transition_exception"),
        sa.Column("deliverable_id", sa.Integer(), sa.ForeignKey(
            "transition_deliverable.id", name="fk_transition_exception_deliverable",
            ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("granted_by", sa.String(254), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("transition_exception", "transition_role", "transition_milestone",
                  "transition_meeting", "transition_deliverable", "transition_template",
                  "service_transition"):
        op.drop_table(table)
