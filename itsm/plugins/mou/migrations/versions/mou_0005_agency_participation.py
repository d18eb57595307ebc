"""Agencies in their agreement: the people an agency designates (who read drafts,
comment and propose amendments) and their proposals.

Revision ID: mou_0005
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "mou_0005"
down_revision = "mou_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mou_delegate",
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_mou_delegate_agency", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_mou_delegate_user", ondelete="CASCADE"),
            primary_key=True),
    )
    op.create_table(
        "mou_proposal",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("mou_id", sa.Integer(), sa.ForeignKey(
            "mou.id", name="fk_mou_proposal_mou", ondelete="CASCADE"), nullable=False,
            index=True),
        sa.Column("author_email", sa.String(254), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(254), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mou_proposal")
    op.drop_table("mou_delegate")
