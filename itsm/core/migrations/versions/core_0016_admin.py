"""Administration in the browser: the admin audit, password resets, agency contacts and
state, a group's mailbox and manager.

``admin_audit`` keeps who changed what in the admin area (and the CLI), with the values
before and after. ``password_reset`` holds each "forgot password" request: the rows of
unknown addresses too (they count towards the rate limit), a link's SHA-256 for known ones.

Revision ID: core_0016
Revises: core_0013
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0016"
down_revision = "core_0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("actor_id", sa.Integer(),
                  sa.ForeignKey("user_account.id", ondelete="SET NULL",
                                name="fk_admin_audit_actor_id_user_account"), nullable=True),
        sa.Column("actor_email", sa.String(254), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_admin_audit_created", "admin_audit", ["created_at"])
    op.create_table(
        "password_reset",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(),
                  sa.ForeignKey("user_account.id", ondelete="CASCADE",
                                name="fk_password_reset_user_id_user_account"), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_password_reset_token_hash"),
    )
    op.create_index("ix_password_reset_email", "password_reset", ["email", "created_at"])
    op.create_index("ix_password_reset_addr", "password_reset", ["remote_addr", "created_at"])
    op.create_index("ix_password_reset_user", "password_reset", ["user_id"])
    op.add_column("agency", sa.Column("contacts", sa.Text(), nullable=False,
                                      server_default=""))
    op.add_column("agency", sa.Column("active", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.add_column("support_group", sa.Column("email", sa.String(254), nullable=False,
                                             server_default=""))
    with op.batch_alter_table("support_group") as batch:
        batch.add_column(sa.Column("manager_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_support_group_manager_id_user_account", "user_account",
                                 ["manager_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("support_group") as batch:
        batch.drop_constraint("fk_support_group_manager_id_user_account", type_="foreignkey")
        batch.drop_column("manager_id")
        batch.drop_column("email")
    with op.batch_alter_table("agency") as batch:
        batch.drop_column("active")
        batch.drop_column("contacts")
    op.drop_table("password_reset")
    op.drop_table("admin_audit")
