"""Changes, standard change templates, CAB rules, freeze windows, risk questions,
approvals and deployment gate calls.

The change plugin's own Alembic branch; it extends the core's ``record`` table.

Revision ID: change_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "change_0001"
down_revision = None
branch_labels = ("change",)
depends_on = "core_0004"


def _fk(column: str, table: str, target: str, ondelete: str = "CASCADE", **kw) -> sa.Column:
    return sa.Column(column, sa.Integer(), sa.ForeignKey(
        f"{target}.id", name=f"fk_{table}_{column}_{target}", ondelete=ondelete), **kw)


def upgrade() -> None:
    op.create_table(
        "change_request",
        _fk("id", "change_request", "record", primary_key=True),
        sa.Column("change_type", sa.String(16), nullable=False),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("config_items", sa.JSON(), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("implementation_plan", sa.Text(), nullable=False),
        sa.Column("backout_plan", sa.Text(), nullable=False),
        sa.Column("test_plan", sa.Text(), nullable=False),
        sa.Column("planned_start", UTCDateTime(), nullable=True),
        sa.Column("planned_end", UTCDateTime(), nullable=True),
        sa.Column("actual_start", UTCDateTime(), nullable=True),
        sa.Column("actual_end", UTCDateTime(), nullable=True),
        sa.Column("risk_answers", sa.JSON(), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=True),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("review_outcome", sa.String(16), nullable=False),
        sa.Column("lessons", sa.Text(), nullable=False),
    )
    op.create_index("ix_change_request_change_type", "change_request", ["change_type"])
    op.create_index("ix_change_request_planned_start", "change_request", ["planned_start"])
    op.create_index("ix_change_request_planned_end", "change_request", ["planned_end"])
    op.create_table(
        "change_template",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("implementation_plan", sa.Text(), nullable=False),
        sa.Column("backout_plan", sa.Text(), nullable=False),
        sa.Column("test_plan", sa.Text(), nullable=False),
        sa.Column("risk_level", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("name", name="uq_change_template_name"),
    )
    op.create_table(
        "change_cab_rule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        _fk("group_id", "change_cab_rule", "support_group", nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("quorum", sa.String(16), nullable=False),
        sa.Column("change_types", sa.JSON(), nullable=False),
        sa.Column("risk_levels", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("name", name="uq_change_cab_rule_name"),
    )
    op.create_index("ix_change_cab_rule_group_id", "change_cab_rule", ["group_id"])
    op.create_table(
        "change_freeze_window",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.UniqueConstraint("name", name="uq_change_freeze_window_name"),
    )
    op.create_index("ix_change_freeze_window_starts_at", "change_freeze_window", ["starts_at"])
    op.create_index("ix_change_freeze_window_ends_at", "change_freeze_window", ["ends_at"])
    op.create_table(
        "change_risk_question",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("key", name="uq_change_risk_question_key"),
    )
    op.create_table(
        "change_approval",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("record_id", "change_approval", "record", nullable=False),
        _fk("rule_id", "change_approval", "change_cab_rule", "SET NULL", nullable=True),
        _fk("group_id", "change_approval", "support_group", nullable=False),
        _fk("approver_id", "change_approval", "user_account", nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("quorum", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_change_approval_record_id", "change_approval", ["record_id"])
    op.create_index("ix_change_approval_approver_id", "change_approval", ["approver_id"])
    op.create_index("ix_change_approval_state", "change_approval", ["state"])
    op.create_table(
        "change_gate_call",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk("record_id", "change_gate_call", "record", nullable=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("caller", sa.String(254), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_change_gate_call_record_id", "change_gate_call", ["record_id"])
    op.create_index("ix_change_gate_call_created_at", "change_gate_call", ["created_at"])


def downgrade() -> None:
    op.drop_table("change_gate_call")
    op.drop_table("change_approval")
    op.drop_table("change_risk_question")
    op.drop_table("change_freeze_window")
    op.drop_table("change_cab_rule")
    op.drop_table("change_template")
    op.drop_table("change_request")
