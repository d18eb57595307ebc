"""Per-user notification preferences: which events a user hears of, over which channel."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base


class NotificationPreference(Base):
    """One rule of a user: ``event`` (``record.commented``, ``record.*`` or ``*``) on
    ``channel`` is wanted or not. The most specific rule wins; no rule means wanted."""

    __tablename__ = "notification_preference"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    channel: Mapped[str] = mapped_column(String(64), default="email")
    event: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("user_id", "channel", "event",
                                       name="uq_notification_preference_user_channel_event"),)
