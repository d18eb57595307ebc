"""Billing: subscriptions, recorded time, billing contacts, statements and credits.

The plugin's own Alembic branch "billing"; it needs the core's agencies, users and
records (core_0001).

Revision ID: billing_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "billing_0001"
down_revision = None
branch_labels = ("billing",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "billing_subscription",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_billing_subscription_agency", ondelete="CASCADE"),
            nullable=False, index=True),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("note", sa.String(300), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "billing_time_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_billing_time_record", ondelete="CASCADE"),
            nullable=False, index=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_billing_time_agency", ondelete="CASCADE"),
            nullable=False, index=True),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("worked_on", sa.Date(), nullable=False, index=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_billing_time_user", ondelete="SET NULL"),
            nullable=True),
        sa.Column("note", sa.String(300), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "billing_contact",
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_billing_contact_agency", ondelete="CASCADE"),
            primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_billing_contact_user", ondelete="CASCADE"),
            primary_key=True),
    )
    op.create_table(
        "billing_statement",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_billing_statement_agency", ondelete="CASCADE"),
            nullable=False, index=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total", sa.Numeric(14, 2), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.Column("reviewed_by_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_billing_statement_reviewer"), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("issued_by_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_billing_statement_issuer"), nullable=True),
        sa.Column("issued_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("agency_id", "period", name="uq_billing_statement"),
    )
    op.create_table(
        "billing_statement_line",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("statement_id", sa.Integer(), sa.ForeignKey(
            "billing_statement.id", name="fk_billing_line_statement", ondelete="CASCADE"),
            nullable=False, index=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("key", sa.String(120), nullable=False, index=True),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("quantity", sa.Numeric(12, 2), nullable=False),
        sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    )
    op.create_table(
        "billing_credit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_billing_credit_agency", ondelete="CASCADE"),
            nullable=False, index=True),
        sa.Column("corrects_id", sa.Integer(), sa.ForeignKey(
            "billing_statement.id", name="fk_billing_credit_corrects"), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("applied_to_id", sa.Integer(), sa.ForeignKey(
            "billing_statement.id", name="fk_billing_credit_applied", ondelete="SET NULL"),
            nullable=True),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_billing_credit_user"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("billing_credit", "billing_statement_line", "billing_statement",
                  "billing_contact", "billing_time_entry", "billing_subscription"):
        op.drop_table(table)
