"""A group's queue in priority order: an index that reads only the page it returns.

Queues list a group's open records ordered by ``coalesce(priority, 99)`` then id
(records without a priority last). With ``ix_record_group_state`` alone the database
fetched every open record of the group and sorted them all for each page, so a page cost
grew with the backlog. This index follows the sort itself and holds only records not
in a final state (``closed_at IS NULL``): the first page and each next page (by cursor)
walk about the entries they show, however large the desk's history and backlog.
:mod:`itsm.core.query` writes the sort with the literal 99, as here, and the record
service adds ``closed_at IS NULL`` when every state asked for is not final, so that the
planner recognises the index.

MariaDB/MySQL cannot index an expression without a generated column; they keep the
previous plan.

Revision ID: core_0005
Revises: core_0004
"""

from alembic import op

revision = "core_0005"
down_revision = "core_0004"
branch_labels = None
depends_on = None

COLUMNS = "group_id, coalesce(priority, 99), id"


def upgrade() -> None:
    if op.get_bind().dialect.name in ("postgresql", "sqlite"):
        op.execute(f"CREATE INDEX ix_record_group_queue ON record ({COLUMNS}) "
                   "WHERE closed_at IS NULL")


def downgrade() -> None:
    if op.get_bind().dialect.name in ("postgresql", "sqlite"):
        op.execute("DROP INDEX ix_record_group_queue")
