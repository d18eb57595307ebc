"""Web sessions kept in the database, so that signing out ends them on the server.

A console cookie used to carry everything it needed (the user, a fingerprint of the
password), so a copy taken before signing out went on working. The cookie now holds a
random secret whose SHA-256 is a row here: sign-out, a password change, the idle limit
and the maximum age end the row, and every request checks it.

Revision ID: core_0009
Revises: core_0008
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0009"
down_revision = "core_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_web_session_user_id_user_account",
            ondelete="CASCADE"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("secret_hash", name="uq_web_session_secret_hash"),
    )
    op.create_index("ix_web_session_user_id", "web_session", ["user_id"])


def downgrade() -> None:
    op.drop_table("web_session")
