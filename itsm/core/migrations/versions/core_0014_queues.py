"""Queues: the next SLA due time on the record, its indexes, and saved views.

``record.sla_due_at`` is the earliest breach time of the record's running SLA clocks
(``9999-01-01`` when none runs), kept by the SLA engine in each change's transaction, so
that a queue sorted by SLA due walks an index instead of joining every open record to its
clocks and sorting them for each page. It is filled here from the clocks there are.
``saved_view`` keeps the queues people named.

Revision ID: core_0014
Revises: core_0013
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0014"
down_revision = "core_0013"
branch_labels = None
depends_on = None

NONE = "9999-01-01 00:00:00"
INDEXES = {"ix_record_group_sla": ["group_id", "sla_due_at", "id"],
           "ix_record_assignee_sla": ["assignee_id", "sla_due_at", "id"],
           "ix_record_sla_due": ["sla_due_at", "id"]}


def upgrade() -> None:
    op.add_column("record", sa.Column("sla_due_at", UTCDateTime(), nullable=False,
                                      server_default=NONE))
    record = sa.table("record", sa.column("id"), sa.column("sla_due_at"))
    clock = sa.table("sla_clock", sa.column("record_id"), sa.column("state"),
                     sa.column("breach_due_at"))
    earliest = (sa.select(sa.func.min(clock.c.breach_due_at))
                .where(clock.c.record_id == record.c.id, clock.c.state == "running",
                       clock.c.breach_due_at.is_not(None)).scalar_subquery())
    running = sa.select(clock.c.record_id).where(clock.c.state == "running",
                                                 clock.c.breach_due_at.is_not(None))
    op.execute(record.update().where(record.c.id.in_(running)).values(sla_due_at=earliest))
    where = {"postgresql_where": sa.text("closed_at IS NULL"),
             "sqlite_where": sa.text("closed_at IS NULL")}
    for name, columns in INDEXES.items():
        op.create_index(name, "record", columns, **where)
    op.create_table(
        "saved_view",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_saved_view_user_id_user_account", ondelete="CASCADE"),
            nullable=False),
        sa.Column("record_type", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "record_type", "name", name="uq_saved_view_user_id"),
    )


def downgrade() -> None:
    op.drop_table("saved_view")
    for name in INDEXES:
        op.drop_index(name, table_name="record")
    # In place, not a batch copy: that would lose SQLite's search triggers (core_0004).
    op.drop_column("record", "sla_due_at")
