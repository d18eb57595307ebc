"""Knowledge: articles (a record type), their version history and their votes.

The plugin's own Alembic branch. It needs the core's full-text search (core_0004), which
indexes an article's title and body (the record's description).

Revision ID: knowledge_0001
"""

import sqlalchemy as sa
from alembic import op

from itsm.plugin import UTCDateTime

revision = "knowledge_0001"
down_revision = None
branch_labels = ("knowledge",)
depends_on = "core_0004"


def upgrade() -> None:
    op.create_table(
        "kb_article",
        sa.Column("id", sa.Integer(), sa.ForeignKey(
            "record.id", name="fk_kb_article_id_record", ondelete="CASCADE"),
            primary_key=True),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("review_note", sa.Text(), nullable=False),
        sa.Column("source_record", sa.String(32), nullable=True),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("helpful_count", sa.Integer(), nullable=False),
        sa.Column("not_helpful_count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "kb_article_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey(
            "kb_article.id", name="fk_kb_article_version_article_id_kb_article",
            ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_kb_article_version_author_id_user_account",
            ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("article_id", "version",
                            name="uq_kb_article_version_article_version"),
    )
    op.create_table(
        "kb_vote",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(), sa.ForeignKey(
            "kb_article.id", name="fk_kb_vote_article_id_kb_article", ondelete="CASCADE"),
            nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey(
            "user_account.id", name="fk_kb_vote_user_id_user_account", ondelete="CASCADE"),
            nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("article_id", "user_id", name="uq_kb_vote_article_user"),
    )
    op.create_index("ix_kb_vote_user_id", "kb_vote", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_kb_vote_user_id", table_name="kb_vote")
    op.drop_table("kb_vote")
    op.drop_table("kb_article_version")
    op.drop_table("kb_article")
