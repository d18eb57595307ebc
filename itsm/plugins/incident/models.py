"""The incident plugin's tables: incidents, post-incident reviews, escalations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, Record, utcnow

CHANNELS = ("portal", "email", "phone", "api", "monitoring", "walk_in")
HOLD_KINDS = ("customer", "supplier", "change")
RESOLUTION_CODES = ("solved", "workaround", "not_reproducible", "duplicate",
                    "user_error", "change_implemented", "no_fault_found")


class Incident(Record):
    """An unplanned interruption or reduction in quality of a service."""

    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    category: Mapped[str] = mapped_column(String(64), default="", index=True)
    subcategory: Mapped[str] = mapped_column(String(64), default="")
    # References (kinds "service", "configuration_item"): a provider's stable id, or the
    # text typed when no provider is enabled.
    affected_service: Mapped[str] = mapped_column(String(200), default="")
    config_item: Mapped[str] = mapped_column(String(200), default="")
    impact: Mapped[int] = mapped_column(Integer, default=3)
    urgency: Mapped[int] = mapped_column(Integer, default=3)
    channel: Mapped[str] = mapped_column(String(20), default="api")
    major: Mapped[bool] = mapped_column(Boolean, default=False)
    workaround: Mapped[str] = mapped_column(Text, default="")
    hold_kind: Mapped[str] = mapped_column(String(20), default="")
    hold_reason: Mapped[str] = mapped_column(String(500), default="")
    resolution_code: Mapped[str] = mapped_column(String(32), default="")
    resolution_notes: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime | None]
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    satisfaction_comment: Mapped[str] = mapped_column(Text, default="")
    __mapper_args__ = {"polymorphic_identity": "incident"}


class IncidentReview(Record):
    """A post-incident review of a major incident: timeline, root cause, actions."""

    __tablename__ = "incident_review"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    incident_number: Mapped[str] = mapped_column(String(32), default="", index=True)
    timeline: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    root_cause: Mapped[str] = mapped_column(Text, default="")
    actions: Mapped[str] = mapped_column(Text, default="")
    lessons: Mapped[str] = mapped_column(Text, default="")
    __mapper_args__ = {"polymorphic_identity": "incident_review"}


class Escalation(Base):
    """One escalation step taken for one SLA metric of an incident (taken once)."""

    __tablename__ = "incident_escalation"
    __table_args__ = (UniqueConstraint("record_id", "metric", "level",
                                       name="uq_incident_escalation_step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                           index=True)
    metric: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))  # warning | breach
    action: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
