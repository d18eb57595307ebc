"""A problem's affected service stored by stable id where a provider knows its name.

Revision ID: problem_0002
"""

from alembic import op

from itsm.plugin import convert_stored_references

revision = "problem_0002"
down_revision = "problem_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    convert_stored_references(op.get_bind(), "problem", "affected_service", "service")


def downgrade() -> None:
    pass  # ids stay ids: pages and the API show their labels
