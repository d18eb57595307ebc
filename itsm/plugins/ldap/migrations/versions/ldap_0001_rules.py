"""The ldap plugin's mapping rules stored in the database (added on its admin page).

The ldap plugin's own Alembic branch.

Revision ID: ldap_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "ldap_0001"
down_revision = None
branch_labels = ("ldap",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ldap_rule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("match", sa.String(500), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ldap_rule")
