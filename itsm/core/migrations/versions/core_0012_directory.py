"""Users from a directory: their phone and the sign-in method that keeps them.

A sign-in method (``itsm_authenticate``, e.g. the ldap plugin) creates a user on first
sign-in and updates the name, phone and e-mail at every sign-in; ``auth_source`` names it,
so that ``auth.local_passwords = false`` can refuse such a user's local password and a
sync knows which users the directory decides about.

Revision ID: core_0012
Revises: core_0011
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0012"
down_revision = "core_0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("user_account", sa.Column("phone", sa.String(50), nullable=False,
                                            server_default=""))
    op.add_column("user_account", sa.Column("auth_source", sa.String(50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("auth_source")
        batch.drop_column("phone")
