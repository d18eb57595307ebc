"""The core schema: agencies, groups, users, tokens, plugin state, records, journal,
links, attachments and the outbox.

Revision ID: core_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.core.models import UTCDateTime

revision = "core_0001"
down_revision = None
branch_labels = ("core",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "agency",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("code", name="uq_agency_code"),
    )
    op.create_table(
        "support_group",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.UniqueConstraint("name", name="uq_support_group_name"),
    )
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_user_account_agency_id_agency"), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("email", name="uq_user_account_email"),
    )
    op.create_index("ix_user_account_agency_id", "user_account", ["agency_id"])
    op.create_table(
        "group_member",
        sa.Column("group_id", sa.Integer(), sa.ForeignKey(
            "support_group.id", name="fk_group_member_group_id_support_group",
            ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_group_member_user_id_user_account",
            ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_api_token_user_id_user_account", ondelete="CASCADE"),
            nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        _ts("created_at"), _ts("expires_at", True), _ts("last_used_at", True),
        _ts("revoked_at", True),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"])
    op.create_table(
        "plugin_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "number_sequence",
        sa.Column("prefix", sa.String(16), primary_key=True),
        sa.Column("last_value", sa.Integer(), nullable=False),
    )
    op.create_table(
        "record",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey(
            "agency.id", name="fk_record_agency_id_agency"), nullable=True),
        sa.Column("requester_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_record_requester_id_user_account"), nullable=True),
        sa.Column("assignee_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_record_assignee_id_user_account"), nullable=True),
        sa.Column("group_id", sa.Integer(), sa.ForeignKey(
            "support_group.id", name="fk_record_group_id_support_group"), nullable=True),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_record_created_by_id_user_account"), nullable=True),
        _ts("created_at"), _ts("updated_at"), _ts("closed_at", True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.UniqueConstraint("number", name="uq_record_number"),
    )
    op.create_index("ix_record_type_state_priority", "record",
                    ["type", "state", "priority", "id"])
    op.create_index("ix_record_group_state", "record", ["group_id", "state", "priority", "id"])
    op.create_index("ix_record_assignee_state", "record", ["assignee_id", "state"])
    op.create_index("ix_record_agency_type", "record", ["agency_id", "type", "id"])
    op.create_index("ix_record_updated_at", "record", ["updated_at", "id"])
    op.create_index("ix_record_created_at", "record", ["created_at", "id"])
    op.create_index("ix_record_requester", "record", ["requester_id"])
    op.create_table(
        "journal",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_journal_record_id_record", ondelete="CASCADE"),
            nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_journal_actor_id_user_account"), nullable=True),
        _ts("created_at"),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_journal_record", "journal", ["record_id", "id"])
    op.create_table(
        "record_link",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_record_link_source_id_record", ondelete="CASCADE"),
            nullable=False),
        sa.Column("target_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_record_link_target_id_record", ondelete="CASCADE"),
            nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_record_link_created_by_id_user_account"),
            nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("source_id", "target_id", "kind",
                            name="uq_record_link_source_target_kind"),
    )
    op.create_index("ix_record_link_source_id", "record_link", ["source_id"])
    op.create_index("ix_record_link_target_id", "record_link", ["target_id"])
    op.create_table(
        "attachment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_attachment_record_id_record", ondelete="CASCADE"),
            nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_attachment_created_by_id_user_account"),
            nullable=True),
        _ts("created_at"),
    )
    op.create_index("ix_attachment_record_id", "attachment", ["record_id"])
    op.create_table(
        "outbox_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_outbox_event_record_id_record", ondelete="SET NULL"),
            nullable=True),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_outbox_event_actor_id_user_account"), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        _ts("created_at"), _ts("dispatched_at", True),
    )
    op.create_index("ix_outbox_event_pending", "outbox_event", ["dispatched_at", "id"])
    op.create_table(
        "outbox_delivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey(
            "outbox_event.id", name="fk_outbox_delivery_event_id_outbox_event",
            ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=False),
        _ts("delivered_at", True),
        sa.UniqueConstraint("event_id", "channel", "recipient",
                            name="uq_outbox_delivery_event_channel_recipient"),
    )
    op.create_index("ix_outbox_delivery_event_id", "outbox_delivery", ["event_id"])
    op.create_index("ix_outbox_delivery_due", "outbox_delivery", ["state", "next_attempt_at"])


def downgrade() -> None:
    for table in ("outbox_delivery", "outbox_event", "attachment", "record_link", "journal",
                  "record", "number_sequence", "plugin_state", "api_token", "group_member",
                  "user_account", "support_group", "agency"):
        op.drop_table(table)
