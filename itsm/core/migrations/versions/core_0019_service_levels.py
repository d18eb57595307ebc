"""Service levels and business calendars saved from the admin pages and the CLI.

``sla_calendar`` holds versions of business calendars (working hours per weekday, time
zone, holidays); ``sla_policy`` versions of the targets per metric and priority. Both are
append-only: a clock keeps the version it started with, so a change applies to new clocks.

Revision ID: core_0019
Revises: core_0016
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0019"
down_revision = "core_0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_calendar",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("holidays", sa.JSON(), nullable=False),
        sa.Column("holiday_source", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(),
                  sa.ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True),
        sa.UniqueConstraint("name", "version", name="uq_sla_calendar_version"),
    )
    op.create_table(
        "sla_policy",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("calendar", sa.String(40), nullable=False),
        sa.Column("warn_at", sa.Double(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(),
                  sa.ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sla_policy")
    op.drop_table("sla_calendar")
