"""An incident's configuration item, and its affected service stored by stable id.

The affected service becomes a reference (kind ``service``): the names stored so far
become the provider's stable ids where an enabled provider resolves them (a name it does
not know stays as typed). The configuration item is a new reference field.

Revision ID: incident_0002
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import convert_stored_references

revision = "incident_0002"
down_revision = "incident_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.add_column(sa.Column("config_item", sa.String(200), nullable=False,
                                   server_default=""))
    convert_stored_references(op.get_bind(), "incident", "affected_service", "service")


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("config_item")
