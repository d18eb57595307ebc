"""A catalog service's resolver group: incidents of the service are routed to it.

Revision ID: catalog_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "catalog_0003"
down_revision = "catalog_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_service") as batch:
        batch.add_column(sa.Column("resolver_group_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_catalog_service_resolver_group", "support_group",
                                 ["resolver_group_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("catalog_service") as batch:
        batch.drop_constraint("fk_catalog_service_resolver_group", type_="foreignkey")
        batch.drop_column("resolver_group_id")
