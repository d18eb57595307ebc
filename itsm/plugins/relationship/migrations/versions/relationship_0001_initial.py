"""Relationship managers' portfolios and the agencies' monthly service reviews.

The plugin's own Alembic branch "relationship".

Revision ID: relationship_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "relationship_0001"
down_revision = None
branch_labels = ("relationship",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "relationship_portfolio",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_relationship_portfolio_user", ondelete="CASCADE"),
            primary_key=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_relationship_portfolio_agency", ondelete="CASCADE"),
            primary_key=True),
    )
    op.create_table(
        "relationship_review",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_relationship_review_agency", ondelete="CASCADE"),
            nullable=False, index=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("agency_id", "period", name="uq_relationship_review"),
    )


def downgrade() -> None:
    op.drop_table("relationship_review")
    op.drop_table("relationship_portfolio")
