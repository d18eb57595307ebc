"""A change's services and configuration items stored by stable id.

Both fields become references (kinds ``service`` and ``configuration_item``): the names
stored so far become the provider's stable ids where an enabled provider resolves them (a
name it does not know stays as typed). Changes under way keep their names: their CAB
approval covers the scope as it was written, and a rewrite would read as a new scope.

Revision ID: change_0003
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import convert_stored_references

revision = "change_0003"
down_revision = "change_0002"
branch_labels = None
depends_on = None

UNDER_WAY = ("assessment", "cab_review", "scheduled", "implementing")


def upgrade() -> None:
    record = sa.table("record", sa.column("id", sa.Integer()), sa.column("type", sa.String()),
                      sa.column("state", sa.String()))
    bind = op.get_bind()
    settled = [row[0] for row in bind.execute(sa.select(record.c.id).where(
        record.c.type == "change", record.c.state.not_in(UNDER_WAY)))]
    for column, kind in (("services", "service"), ("config_items", "configuration_item")):
        convert_stored_references(bind, "change_request", column, kind, many=True,
                                  only=settled)


def downgrade() -> None:
    pass  # ids stay ids: every page and API shows their labels
