"""The outbox's events by record: an index, so that deleting records never scans the outbox.

``outbox_event.record_id`` refers to the record an event is about and is set to null when
that record is deleted. Without an index the database looked for a deleted record's
events by reading the whole outbox, once per record: uninstalling a plugin with
``--purge`` at a million incidents and a few hundred thousand SLA announcements would
read the outbox a million times. With it, each deleted record costs an index lookup.

Revision ID: core_0008
Revises: core_0007
"""

from alembic import op

revision = "core_0008"
down_revision = "core_0007"
branch_labels = None
depends_on = None


# MariaDB/MySQL (InnoDB) index every foreign key column themselves.
OWN_INDEX = ("postgresql", "sqlite")


def upgrade() -> None:
    if op.get_bind().dialect.name in OWN_INDEX:
        op.create_index("ix_outbox_event_record", "outbox_event", ["record_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name in OWN_INDEX:
        op.drop_index("ix_outbox_event_record", table_name="outbox_event")
