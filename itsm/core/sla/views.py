"""Reading: a record's clocks as the API and the pages show them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.core.calendars import Calendar, load_calendars
from itsm.core.context import current_itsm
from itsm.core.models import Record, utcnow
from itsm.core.sla.stored import calendars_for
from itsm.core.sla.sweep import _iso, elapsed_at
from itsm.core.sla_models import SlaClock


def clocks_for(session: Session, record: Record, *, now: datetime | None = None,
               calendars: Mapping[str, Calendar] | None = None) -> list[dict[str, Any]]:
    """The record's clocks as the API and the pages show them, measured at ``now``.

    ``remaining_minutes`` goes negative once the target is passed; ``percent`` is the
    share of the target used. Timestamps are ISO 8601 strings.
    """
    now = now or utcnow()
    found = list(session.scalars(select(SlaClock).where(SlaClock.record_id == record.id)
                                 .order_by(SlaClock.id)))
    if calendars is None:
        itsm = current_itsm()
        calendars = load_calendars(itsm.settings)
        # The saved calendars only add names (``<name>@<version>``, or a name the settings
        # lack): read them only for a clock that runs on one, not on every record page.
        if any(clock.running and clock.calendar not in calendars for clock in found):
            calendars = calendars_for(itsm, session)
    out = []
    for clock in found:
        elapsed = elapsed_at(clock, calendars, now)
        target = clock.target_minutes
        running = clock.running

        def due(at: datetime | None, running: bool = running) -> bool:
            return running and at is not None and at <= now

        out.append({
            "metric": clock.metric, "target_minutes": target,
            "elapsed_minutes": round(elapsed / 60, 2),
            "remaining_minutes": round(target - elapsed / 60, 2) if target is not None
            else None,
            "percent": round(100 * elapsed / (target * 60), 1) if target else None,
            "state": clock.state, "paused": clock.paused,
            "breached": clock.breached or due(clock.breach_due_at),
            "warned": clock.warned or due(clock.warn_due_at),
            "breach_due_at": _iso(clock.breach_due_at), "met_at": _iso(clock.met_at),
            "started_at": _iso(clock.started_at), "calendar": clock.calendar,
            "source": clock.source,
        })
    return out
