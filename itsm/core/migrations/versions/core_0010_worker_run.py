"""When the background work last finished a cycle, for ``itsm doctor`` and ``/metrics``.

A worker may run in another process or on another host (``itsm worker``, Celery): the
only place every process can read its last run from is the database.

Revision ID: core_0010
Revises: core_0009
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0010"
down_revision = "core_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_run",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("worker_run")
