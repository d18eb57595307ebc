"""The cmdb: CI types, configuration items, relations, agencies using them, history.

The plugin's own Alembic branch "cmdb": it starts from nothing and needs the core's
agencies, users and groups (core_0001).

Revision ID: cmdb_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "cmdb_0001"
down_revision = None
branch_labels = ("cmdb",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "cmdb_ci_type",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("is_service", sa.Boolean(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "cmdb_ci",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("external_key", sa.String(200), nullable=True, unique=True),
        sa.Column("type_key", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False, index=True),
        sa.Column("lifecycle", sa.String(20), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_cmdb_ci_owner", ondelete="SET NULL")),
        sa.Column("support_group_id", sa.Integer(), sa.ForeignKey(
            "support_group.id", name="fk_cmdb_ci_group", ondelete="SET NULL")),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_cmdb_ci_agency", ondelete="SET NULL"), index=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=True, unique=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "cmdb_ci_agency",
        sa.Column("ci_id", sa.Integer(), sa.ForeignKey(
            "cmdb_ci.id", name="fk_cmdb_ci_agency_ci", ondelete="CASCADE"), primary_key=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_cmdb_ci_agency_agency", ondelete="CASCADE"),
            primary_key=True, index=True),
    )
    op.create_table(
        "cmdb_relation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source_id", sa.Integer(), sa.ForeignKey(
            "cmdb_ci.id", name="fk_cmdb_relation_source", ondelete="CASCADE"),
            nullable=False),
        sa.Column("target_id", sa.Integer(), sa.ForeignKey(
            "cmdb_ci.id", name="fk_cmdb_relation_target", ondelete="CASCADE"),
            nullable=False),
        sa.Column("dependent_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_cmdb_relation_provider", "cmdb_relation", ["provider_id", "removed_at"])
    op.create_index("ix_cmdb_relation_dependent", "cmdb_relation",
                    ["dependent_id", "removed_at"])
    op.create_index("ix_cmdb_relation_source", "cmdb_relation", ["source_id"])
    op.create_table(
        "cmdb_ci_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ci_id", sa.Integer(), sa.ForeignKey(
            "cmdb_ci.id", name="fk_cmdb_history_ci", ondelete="CASCADE"), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_cmdb_ci_history_ci_at", "cmdb_ci_history", ["ci_id", "at"])


def downgrade() -> None:
    for table in ("cmdb_ci_history", "cmdb_relation", "cmdb_ci_agency", "cmdb_ci",
                  "cmdb_ci_type"):
        op.drop_table(table)
