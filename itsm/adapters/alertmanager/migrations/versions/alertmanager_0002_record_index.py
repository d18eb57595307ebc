"""The alert groups by record: an index, so that deleting a record finds its alert group
without reading them all (the reference is set to null).

Revision ID: alertmanager_0002
Revises: alertmanager_0001
"""

from alembic import op

revision = "alertmanager_0002"
down_revision = "alertmanager_0001"
branch_labels = None
depends_on = None


# MariaDB/MySQL (InnoDB) index every foreign key column themselves.
OWN_INDEX = ("postgresql", "sqlite")


def upgrade() -> None:
    if op.get_bind().dialect.name in OWN_INDEX:
        op.create_index("ix_alert_incident_record", "alert_incident", ["record_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name in OWN_INDEX:
        op.drop_index("ix_alert_incident_record", table_name="alert_incident")
