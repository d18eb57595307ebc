"""Message-IDs already ingested, so a message delivered twice is recognised."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, UTCDateTime, utcnow


class IngestedMessage(Base):
    """One message turned into a record or a comment (``outcome``) on ``record_number``."""

    __tablename__ = "mailgate_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    sender: Mapped[str] = mapped_column(String(254))
    record_number: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
