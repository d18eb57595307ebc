"""The deployment gate: may a pipeline deploy a service to an environment now?

Allowed only inside the planned window of an approved change of that service and
environment, and outside every freeze window (unless that change holds an emergency
approval for it). Every answer is kept as a ``GateCall`` row on the change it concerns.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import RecordService, ValidationError, utcnow
from itsm.plugins.change import impact as spine
from itsm.plugins.change.models import Change, GateCall
from itsm.plugins.change.service import (
    ACTIVE_STATES,
    DEPLOYABLE_STATES,
    GATE_PERMISSION,
    approval_refusal,
    freeze_excepted,
    freeze_hits,
    window_text,
)


def gate(service: RecordService, service_name: str, environment: str,
         now: datetime | None = None) -> dict[str, Any]:
    """May ``service_name`` be deployed to ``environment`` now? Recorded on the change.

    Allowed only inside the planned window of an approved change for that service and
    environment, and outside every freeze window (unless that change holds an emergency
    approval for it).
    """
    service.require(GATE_PERMISSION)
    errors = {}
    if not service_name or len(service_name) > 200:
        errors["service"] = ["required, at most 200 characters"]
    if not environment or len(environment) > 64:
        errors["environment"] = ["required, at most 64 characters"]
    if errors:
        raise ValidationError("the gate needs service and environment", fields=errors)
    session = service.session
    now = now or utcnow()
    # The pipeline may name the service by its stable id or any of its names: a change
    # holding the id (or, for free text, the same name) is the one.
    wanted = spine.service_keys(session, [service_name])
    candidates = [c for c in session.scalars(select(Change).where(
        Change.state.in_(("draft", *ACTIVE_STATES)), Change.environment == environment)
        .order_by(Change.planned_start, Change.id))
        if wanted & spine.service_keys(session, c.services or [])]
    freezes = freeze_hits(session, wanted, now, now + timedelta(microseconds=1))
    chosen, reasons = None, []
    for change in candidates:
        in_window = (change.planned_start is not None and change.planned_end is not None
                     and change.planned_start <= now < change.planned_end)
        refusal = approval_refusal(session, change)
        if change.state in DEPLOYABLE_STATES and in_window and refusal is None:
            chosen = change
            break
    if chosen is not None:
        reasons.append(f"{chosen.number} is approved and its window is open until "
                       f"{chosen.planned_end:%Y-%m-%d %H:%M} UTC")
        if freezes:
            if freeze_excepted(session, chosen):
                reasons.append("inside " + ", ".join(window_text(w) for w in freezes)
                               + f", by emergency approval of {chosen.number}")
            else:
                reasons += [f"inside {window_text(w)}" for w in freezes]
                reasons[0] = reasons[0] + " but a freeze applies"
        allowed = not freezes or freeze_excepted(session, chosen)
    else:
        allowed = False
        reasons.append(f"no approved change of {service_name!r} in {environment!r} has its "
                       "window open now")
        for change in candidates[:5]:
            reasons.append(_why_not(session, change, now))
        reasons += [f"inside {window_text(w)}" for w in freezes]
    subject = chosen or _nearest(candidates, now)
    call = GateCall(record_id=subject.id if subject else None, service=service_name,
                    environment=environment, allowed=allowed, reasons=reasons,
                    caller=service.actor.email[:254], created_at=now)
    session.add(call)
    session.flush()
    return {"allowed": allowed, "service": service_name, "environment": environment,
            "change": subject.number if subject else None, "reasons": reasons,
            "checked_at": now.isoformat()}


def _why_not(session: Session, change: Change, now: datetime) -> str:
    refusal = approval_refusal(session, change)
    if refusal:
        return refusal
    if change.state not in DEPLOYABLE_STATES:
        return f"{change.number} is approved but {change.state}, not scheduled"
    if change.planned_start is None or change.planned_end is None:
        return f"{change.number} has no planned window"
    if now < change.planned_start:
        return f"{change.number}'s window opens at {change.planned_start:%Y-%m-%d %H:%M} UTC"
    return f"{change.number}'s window closed at {change.planned_end:%Y-%m-%d %H:%M} UTC"


def _nearest(candidates: list[Change], now: datetime) -> Change | None:
    timed = [c for c in candidates if c.planned_start is not None]
    if not timed:
        return candidates[0] if candidates else None
    return min(timed, key=lambda c: abs((c.planned_start - now).total_seconds()))


def gate_calls(session: Session, change: Change, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(select(GateCall).where(GateCall.record_id == change.id)
                           .order_by(GateCall.id.desc()).limit(limit))
    return [{"at": r.created_at.isoformat(), "service": r.service,
             "environment": r.environment, "allowed": r.allowed, "reasons": r.reasons,
             "caller": r.caller} for r in rows]


