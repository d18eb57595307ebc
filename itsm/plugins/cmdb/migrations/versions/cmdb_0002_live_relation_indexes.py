"""Indexes for the impact walk: live relations by provider and by dependent, each with
the other end included (PostgreSQL walks them without reading the table).

Revision ID: cmdb_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "cmdb_0002"
down_revision = "cmdb_0001"
branch_labels = None
depends_on = None

LIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_cmdb_relation_live_provider", "cmdb_relation", ["provider_id"],
                    postgresql_include=["dependent_id"], postgresql_where=LIVE,
                    sqlite_where=LIVE)
    op.create_index("ix_cmdb_relation_live_dependent", "cmdb_relation", ["dependent_id"],
                    postgresql_include=["provider_id"], postgresql_where=LIVE,
                    sqlite_where=LIVE)


def downgrade() -> None:
    op.drop_index("ix_cmdb_relation_live_dependent", table_name="cmdb_relation")
    op.drop_index("ix_cmdb_relation_live_provider", table_name="cmdb_relation")
