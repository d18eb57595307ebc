"""Agreements: the mou record table, templates, versions, sections, targets,
signatories, contacts and compliance alerts.

The plugin's own Alembic branch "mou": it starts from nothing and needs the core's
record table (core_0001) and SLA clocks (core_0002).

Revision ID: mou_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "mou_0001"
down_revision = None
branch_labels = ("mou",)
depends_on = "core_0002"


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True)


def _mou_id(table: str, index: bool = False) -> sa.Column:
    return sa.Column("mou_id", sa.Integer(), sa.ForeignKey(
        "mou.id", name=f"fk_{table}_mou_id_mou", ondelete="CASCADE"), nullable=False,
        index=index)


def upgrade() -> None:
    op.create_table(
        "mou",
        sa.Column("id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_mou_id_record", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("provider_group", sa.String(100), nullable=False),
        sa.Column("customer_group", sa.String(100), nullable=False),
        sa.Column("ola_types", sa.String(200), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("effective_to", sa.Date(), nullable=True),
    )
    op.create_table(
        "mou_template", _id(),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("version", name="uq_mou_template_version"),
    )
    op.create_table(
        "mou_version", _id(), _mou_id("mou_version"),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("proposed_by", sa.String(254), nullable=False),
        sa.Column("proposed_at", UTCDateTime(), nullable=False),
        sa.Column("approved_by", sa.String(254), nullable=False),
        sa.Column("approved_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("mou_id", "number", name="uq_mou_version_number"),
    )
    op.create_table(
        "mou_section", _id(), _mou_id("mou_section"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(8), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.UniqueConstraint("mou_id", "version", "key", name="uq_mou_section_key"),
    )
    op.create_table(
        "mou_target", _id(), _mou_id("mou_target"),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("response_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
        sa.Column("availability", sa.Double(), nullable=True),
        sa.Column("support_hours", sa.String(64), nullable=False),
        sa.Column("compliance_percent", sa.Double(), nullable=False),
    )
    op.create_index("ix_mou_target_mou", "mou_target", ["mou_id"])
    op.create_table(
        "mou_signatory", _id(), _mou_id("mou_signatory", index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
    )
    op.create_table(
        "mou_contact", _id(), _mou_id("mou_contact"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(50), nullable=False),
        sa.Column("when", sa.String(300), nullable=False),
        sa.UniqueConstraint("mou_id", "position", name="uq_mou_contact_position"),
    )
    op.create_table(
        "mou_alert", _id(), _mou_id("mou_alert"),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("compliance", sa.Double(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("mou_id", "target", "metric", "period",
                            name="uq_mou_alert_target_period"),
    )


def downgrade() -> None:
    for table in ("mou_alert", "mou_contact", "mou_signatory", "mou_target", "mou_section",
                  "mou_version", "mou_template", "mou"):
        op.drop_table(table)
