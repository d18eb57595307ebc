"""The mail gateway's tables: messages already handled, messages held for review, and the
per-sender mail counts of the rate limit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, UTCDateTime, utcnow


class IngestedMessage(Base):
    """One message handled: turned into a record or a comment, refused or held
    (``outcome``). ``message_hash`` (SHA-256 of the whole Message-ID) recognises it when
    it comes again; ``message_id`` keeps the start of it for people to read."""

    __tablename__ = "mailgate_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(254))
    record_number: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HeldMessage(Base):
    """A message whose sender could not be verified, kept whole until someone releases it
    (``itsm mail release``) or discards it (``itsm mail discard``)."""

    __tablename__ = "mailgate_held"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_hash: Mapped[str | None] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    # LONGBLOB on MariaDB: a mail may be as large as max_bytes (25 MiB by default).
    raw: Mapped[bytes] = mapped_column(LargeBinary(length=2**32 - 1))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SenderWindow(Base):
    """How many mails ``sender`` sent in the rate limit's time window ``window_number``
    (seconds since the epoch divided by the window's length)."""

    __tablename__ = "mailgate_sender_window"
    sender: Mapped[str] = mapped_column(String(254), primary_key=True)
    window_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    mails: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_mailgate_sender_window_window_number", "window_number"),)
