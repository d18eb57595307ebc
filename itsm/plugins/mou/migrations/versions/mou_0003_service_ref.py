"""A target's service by stable id: the names become ids where a provider knows them.

Revision ID: mou_0003
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import convert_stored_references

revision = "mou_0003"
down_revision = "mou_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mou_target") as batch:
        batch.add_column(sa.Column("service_ref", sa.String(200), nullable=False,
                                   server_default=""))
    targets = sa.table("mou_target", sa.column("service", sa.String()),
                       sa.column("service_ref", sa.String()))
    op.get_bind().execute(sa.update(targets).values(service_ref=targets.c.service))
    convert_stored_references(op.get_bind(), "mou_target", "service_ref", "service")


def downgrade() -> None:
    with op.batch_alter_table("mou_target") as batch:
        batch.drop_column("service_ref")
