"""The knowledge plugin's tables: articles (a record type), their versions and votes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, Record, utcnow


class Article(Record):
    """A knowledge article: the core's ``record`` row (title, body as ``description``,
    state ...) plus this table. The body lives in ``description`` so that the core's
    full-text index covers it on every database."""

    __tablename__ = "kb_article"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    service: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    review_note: Mapped[str] = mapped_column(Text, default="")
    source_record: Mapped[str | None] = mapped_column(String(32))
    published_at: Mapped[datetime | None]
    # What the publisher published (hooks.PUBLICATION_SCOPE) and its digest: an edit in
    # place of a published article is a new publication, by someone who may publish.
    published_by: Mapped[str] = mapped_column(String(254), default="")
    published_scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    published_digest: Mapped[str] = mapped_column(String(64), default="")
    retired_at: Mapped[datetime | None]
    helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    not_helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    __mapper_args__ = {"polymorphic_identity": "article"}


class ArticleVersion(Base):
    """The title and body of an article as they were after one change (append-only)."""

    __tablename__ = "kb_article_version"
    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_article.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("article_id", "version",
                                       name="uq_kb_article_version_article_version"),)


class Vote(Base):
    """One person's answer to "did this article help?"; they may change it later."""

    __tablename__ = "kb_vote"
    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_article.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("article_id", "user_id",
                                       name="uq_kb_vote_article_user"),)
