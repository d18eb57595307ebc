"""Service catalog: categories, services, offerings, approvers, feedback, technical
documents, and the tables of the request and task record types.

The catalog plugin's own Alembic branch; it extends the core's ``record`` table.

Revision ID: catalog_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "catalog_0001"
down_revision = None
branch_labels = ("catalog",)
depends_on = "core_0004"


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKey:
    referred = target.split(".")[0]
    return sa.ForeignKey(target, name=f"fk_{table}_{column}_{referred}", ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "catalog_category",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    t = "catalog_service"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(100), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category_id", sa.Integer(),
                  _fk(t, "category_id", "catalog_category.id", "SET NULL"), nullable=True),
        sa.Column("owner_id", sa.Integer(), _fk(t, "owner_id", "user_account.id"),
                  nullable=True),
        sa.Column("support_hours", sa.String(200), nullable=False),
        sa.Column("rate_unit", sa.String(100), nullable=False),
        sa.Column("price", sa.Numeric(12, 2), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("billing_period", sa.String(20), nullable=False),
        sa.Column("cost_notes", sa.Text(), nullable=False),
        sa.Column("faq_url", sa.String(500), nullable=False),
        sa.Column("help_url", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_catalog_service_category_id", t, ["category_id"])
    op.create_index("ix_catalog_service_status", t, ["status"])
    t = "catalog_service_agency"
    op.create_table(
        t,
        sa.Column("service_id", sa.Integer(),
                  _fk(t, "service_id", "catalog_service.id", "CASCADE"), primary_key=True),
        sa.Column("agency_id", sa.Integer(), _fk(t, "agency_id", "agency.id", "CASCADE"),
                  primary_key=True),
    )
    t = "catalog_offering"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service_id", sa.Integer(),
                  _fk(t, "service_id", "catalog_service.id", "CASCADE"), nullable=False),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("approval", sa.String(20), nullable=False),
        sa.Column("approval_group_id", sa.Integer(),
                  _fk(t, "approval_group_id", "support_group.id"), nullable=True),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("task_order", sa.String(20), nullable=False),
        sa.Column("response_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("service_id", "code", name="uq_catalog_offering_code"),
    )
    op.create_index("ix_catalog_offering_service_id", t, ["service_id"])
    t = "catalog_approver"
    op.create_table(
        t,
        sa.Column("agency_id", sa.Integer(), _fk(t, "agency_id", "agency.id", "CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.Integer(), _fk(t, "user_id", "user_account.id", "CASCADE"),
                  primary_key=True),
    )
    t = "catalog_feedback"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service_id", sa.Integer(),
                  _fk(t, "service_id", "catalog_service.id", "CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(),
                  _fk(t, "author_id", "user_account.id", "SET NULL"), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("answered_by_id", sa.Integer(),
                  _fk(t, "answered_by_id", "user_account.id", "SET NULL"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_catalog_feedback_service_id", t, ["service_id"])
    op.create_index("ix_catalog_feedback_author_id", t, ["author_id"])
    op.create_index("ix_catalog_feedback_state", t, ["state"])
    t = "catalog_document"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service_id", sa.Integer(),
                  _fk(t, "service_id", "catalog_service.id", "CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("owner_id", sa.Integer(),
                  _fk(t, "owner_id", "user_account.id", "SET NULL"), nullable=True),
        sa.Column("review_due", sa.Date(), nullable=True),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_catalog_document_service_id", t, ["service_id"])
    op.create_index("ix_catalog_document_review_due", t, ["review_due"])
    t = "catalog_document_version"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("document_id", sa.Integer(),
                  _fk(t, "document_id", "catalog_document.id", "CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("author_id", sa.Integer(),
                  _fk(t, "author_id", "user_account.id", "SET NULL"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("document_id", "number", name="uq_catalog_document_version"),
    )
    op.create_index("ix_catalog_document_version_document_id", t, ["document_id"])
    t = "catalog_request"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), _fk(t, "id", "record.id", "CASCADE"), primary_key=True),
        sa.Column("offering_id", sa.Integer(), _fk(t, "offering_id", "catalog_offering.id"),
                  nullable=True),
        sa.Column("service_id", sa.Integer(), _fk(t, "service_id", "catalog_service.id"),
                  nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("approval", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(254), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("response_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
        sa.Column("fulfilled_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_catalog_request_offering_id", t, ["offering_id"])
    op.create_index("ix_catalog_request_service_id", t, ["service_id"])
    t = "catalog_task"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), _fk(t, "id", "record.id", "CASCADE"), primary_key=True),
        sa.Column("request_id", sa.Integer(), _fk(t, "request_id", "record.id", "CASCADE"),
                  nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
    )
    op.create_index("ix_catalog_task_request_id", t, ["request_id"])


def downgrade() -> None:
    for table in ("catalog_task", "catalog_request", "catalog_document_version",
                  "catalog_document", "catalog_feedback", "catalog_approver",
                  "catalog_offering", "catalog_service_agency", "catalog_service",
                  "catalog_category"):
        op.drop_table(table)
