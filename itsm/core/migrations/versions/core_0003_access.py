"""Access control: failed sign-ins (throttling) and refused actions (audit).

Revision ID: core_0003
Revises: core_0002
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0003"
down_revision = "core_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_login_failure_email", "login_failure", ["email", "created_at"])
    op.create_index("ix_login_failure_addr", "login_failure", ["remote_addr", "created_at"])
    op.create_table(
        "access_denial",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_access_denial_actor_id_user_account",
            ondelete="SET NULL"), nullable=True),
        sa.Column("actor_email", sa.String(254), nullable=False),
        sa.Column("permission", sa.String(100), nullable=False),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_access_denial_record_id_record", ondelete="CASCADE"),
            nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_access_denial_created", "access_denial", ["created_at"])
    op.create_index("ix_access_denial_record", "access_denial", ["record_id"])


def downgrade() -> None:
    op.drop_table("access_denial")
    op.drop_table("login_failure")
