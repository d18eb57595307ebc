"""Webhook subscriptions: a URL that hears of the events matching its patterns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, utcnow


class WebhookSubscription(Base):
    """The HMAC secret is kept as given: it must sign every delivery. It is shown once,
    when the subscription is created, and afterwards only by its first characters."""

    __tablename__ = "webhook_subscription"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[str] = mapped_column(String(1000), default="*")  # comma-separated
    secret: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16), default="json")  # json | slack
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def patterns(self) -> list[str]:
        return [p.strip() for p in self.events.split(",") if p.strip()]
