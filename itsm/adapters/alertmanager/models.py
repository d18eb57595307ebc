"""One row per Alertmanager alert group: the record it opened and what was last seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, utcnow


class AlertIncident(Base):
    """``group_key`` is Alertmanager's groupKey (a digest when it is very long);
    ``status`` is ``firing`` or ``resolved``; ``payload_hash`` the digest of the last
    notification, so that a repeated identical delivery changes nothing."""

    __tablename__ = "alert_incident"
    id: Mapped[int] = mapped_column(primary_key=True)
    group_key: Mapped[str] = mapped_column(String(500), unique=True)
    record_id: Mapped[int | None] = mapped_column(ForeignKey(
        "record.id", name="fk_alert_incident_record_id_record", ondelete="SET NULL"),
        nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="firing")
    payload_hash: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_alert_incident_record", "record_id"),)
