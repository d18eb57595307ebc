"""The SLA tables: the clocks (one row per record and metric, rebuilt from the record's
journal) and the service levels and business calendars saved by admins.

Kept apart from :mod:`itsm.core.models` so the SLA engine owns its schema; it is imported
by :mod:`itsm.core.sla`, hence mapped whenever the record service is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from itsm.core.models import Base, utcnow

# The columns :func:`itsm.core.sla.replay` computes; the rest is delivery bookkeeping.
FIGURES = ("target_minutes", "calendar", "warn_at", "source", "state", "started_at",
           "elapsed_seconds", "as_of", "met_at", "warned", "breached", "warn_due_at",
           "breach_due_at")


class SlaClock(Base):
    """The clock of one service level metric (``response``, ``resolution`` ...) of a record.

    ``elapsed_seconds`` is the working time used up to ``as_of``, the last journal entry
    that moved the clock; while ``state`` is ``running`` it keeps growing on ``calendar``
    from there. ``warn_due_at`` and ``breach_due_at`` are the predicted wall times of the
    warning and the breach (the first instant the clock is past ``warn_at`` of the target,
    or past the target), null while paused or stopped, so the sweep is a range scan.
    ``warned`` and ``breached`` say whether that happened; ``warning_sent`` and
    ``breach_sent`` record that the outbox event went out, once per clock, ever.
    """

    __tablename__ = "sla_clock"
    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(64))
    target_minutes: Mapped[int | None] = mapped_column(Integer)
    calendar: Mapped[str] = mapped_column(String(64))
    warn_at: Mapped[float | None] = mapped_column(Double)
    source: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))  # running, paused or met
    started_at: Mapped[datetime]
    elapsed_seconds: Mapped[float] = mapped_column(Double, default=0.0)
    as_of: Mapped[datetime]
    met_at: Mapped[datetime | None]
    warned: Mapped[bool] = mapped_column(Boolean, default=False)
    breached: Mapped[bool] = mapped_column(Boolean, default=False)
    warn_due_at: Mapped[datetime | None]
    breach_due_at: Mapped[datetime | None]
    warning_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    breach_sent: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("record_id", "metric", name="uq_sla_clock_record_metric"),
        # The sweep: "not announced yet and due by now", a range on the second column.
        Index("ix_sla_clock_warn_due", "warning_sent", "warn_due_at"),
        Index("ix_sla_clock_breach_due", "breach_sent", "breach_due_at"),
    )

    @property
    def paused(self) -> bool:
        return self.state == "paused"

    @property
    def running(self) -> bool:
        return self.state == "running"


class StoredCalendar(Base):
    """One saved version of a business calendar kept in the database (the admin pages and
    ``itsm sla calendar set``), beside those of ``[calendars.<name>]`` in itsm.toml.

    Rows are never changed: saving a calendar adds version ``n + 1``. A clock keeps the
    version it started on (its ``calendar`` reads ``<name>@<version>``), so an edit of the
    hours or holidays applies to clocks started after it, never to those running.
    ``hours`` maps ``mon`` .. ``sun`` to ranges like ``"08:00-12:00,13:00-17:00"``;
    ``holidays`` is a list of ``{"date": "2026-12-25", "name": "Christmas Day"}``.
    """

    __tablename__ = "sla_calendar"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    hours: Mapped[dict[str, Any]] = mapped_column(JSON)
    holidays: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    holiday_source: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))

    __table_args__ = (UniqueConstraint("name", "version", name="uq_sla_calendar_version"),)

    @property
    def key(self) -> str:
        """The name clocks store: this version of the calendar."""
        return f"{self.name}@{self.version}"


class StoredPolicy(Base):
    """One saved version of the install's service level targets (the admin pages and
    ``itsm sla targets set``), replacing ``[sla]`` of itsm.toml for records created from
    ``created_at`` on.

    Never changed once written: a record's clocks take their targets from the version in
    force when the record was created, so a change applies to new clocks only.
    ``targets`` maps a metric to ``{"1": minutes, ... "5": minutes}`` (a priority left out
    has no target for that metric).
    """

    __tablename__ = "sla_policy"
    id: Mapped[int] = mapped_column(primary_key=True)
    calendar: Mapped[str] = mapped_column(String(40))
    warn_at: Mapped[float] = mapped_column(Double)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
