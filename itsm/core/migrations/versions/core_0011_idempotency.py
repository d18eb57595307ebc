"""Idempotency keys: a create's first answer, kept for a client's retry.

``POST /api/v1/<collection>`` with an ``Idempotency-Key`` header stores its answer under
the key, the user and a fingerprint of the request in the transaction that creates the
record; a retry gets that answer back instead of making a second record.

Revision ID: core_0011
Revises: core_0010
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0011"
down_revision = "core_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_key",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_idempotency_key_user_id_user_account",
            ondelete="CASCADE"), nullable=False),
        sa.Column("client_key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "client_key", name="uq_idempotency_key_user_id"),
    )
    op.create_index("ix_idempotency_key_expires", "idempotency_key", ["expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_key")
