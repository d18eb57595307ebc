"""The admin area's tables: the admin audit and the password-reset requests.

Kept apart from :mod:`itsm.core.models` as the admin area owns them; both are created by
the core's migration ``core_0016``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from itsm.core.models import Base, utcnow


class AdminAudit(Base):
    """One administrative change: who did what to which thing, with the values before
    and after (None where there was nothing: a creation, a removal)."""

    __tablename__ = "admin_audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                            ondelete="SET NULL"))
    actor_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_admin_audit_created", "created_at"),)


class PasswordReset(Base):
    """A "forgot password" request. Every request is a row, for an unknown address too
    (the rate limit counts them); a known active user's row holds the SHA-256 of the
    link's secret, which works once, until ``expires_at``, and only while it is the
    user's newest."""

    __tablename__ = "password_reset"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    remote_addr: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                           ondelete="CASCADE"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_password_reset_email", "email", "created_at"),
                      Index("ix_password_reset_addr", "remote_addr", "created_at"),
                      Index("ix_password_reset_user", "user_id"))
