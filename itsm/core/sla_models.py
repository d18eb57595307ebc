"""The SLA clock table: one row per record and metric, rebuilt from the record's journal.

Kept apart from :mod:`itsm.core.models` so the SLA engine owns its schema; it is imported
by :mod:`itsm.core.sla`, hence mapped whenever the record service is.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Double, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from itsm.core.models import Base

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
