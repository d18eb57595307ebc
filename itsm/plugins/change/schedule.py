"""The change calendar and the overview of one change (approvals, conflicts, freeze
windows, gate calls, caused incidents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from itsm.plugin import RecordService, reference_label
from itsm.plugins.change import impact as spine
from itsm.plugins.change.gate import gate_calls
from itsm.plugins.change.models import Approval, Change, FreezeWindow
from itsm.plugins.change.service import (
    ACTIVE_STATES,
    approval_dict,
    approval_refusal,
    approval_status,
    caused_incidents,
    conflicts,
    freeze_of,
    incident_type,
)


def calendar(service: RecordService, start: datetime, end: datetime,
             service_name: str | None = None) -> dict[str, Any]:
    """Changes whose planned window overlaps [start, end), freeze windows, conflicts."""
    service.require("change.read")
    session = service.session
    stmt = (select(Change).where(Change.planned_start < end, Change.planned_end > start,
                                 Change.state.not_in(("cancelled", "rejected")))
            .order_by(Change.planned_start, Change.id))
    items = []
    # A service named by its id or any of its names; a change's ids shown by label.
    wanted = spine.service_keys(session, [service_name]) if service_name else set()
    for change in session.scalars(stmt):
        if wanted and not wanted & spine.service_keys(session, change.services or []):
            continue
        if not service.can("change.read", change):
            continue
        clash = conflicts(session, change) if change.state in ACTIVE_STATES else []
        items.append({"number": change.number, "title": change.title, "state": change.state,
                      "change_type": change.change_type, "risk_level": change.risk_level,
                      "services": [reference_label(session, spine.SERVICE, s)
                                   for s in change.services or []],
                      "config_items": [reference_label(session, spine.CI, i)
                                       for i in change.config_items or []],
                      "environment": change.environment,
                      "planned_start": change.planned_start.isoformat(),
                      "planned_end": change.planned_end.isoformat(),
                      "freeze": [w.name for w in freeze_of(session, change)],
                      "conflicts": [c["number"] for c in clash]})
    freezes = session.scalars(select(FreezeWindow).where(
        FreezeWindow.starts_at < end, FreezeWindow.ends_at > start)
        .order_by(FreezeWindow.starts_at))
    return {"from": start.isoformat(), "to": end.isoformat(), "changes": items,
            "freeze_windows": [{"name": w.name, "starts_at": w.starts_at.isoformat(),
                                "ends_at": w.ends_at.isoformat(), "services": w.services,
                                "reason": w.reason} for w in freezes
                               if not wanted or not w.services
                               or spine.shares(session, w.services, wanted)]}


def overview(service: RecordService, change: Change) -> dict[str, Any]:
    """Everything about one change beyond its fields: approvals, conflicts, freeze, gate
    calls and caused incidents."""
    session = service.session
    approvals = session.scalars(select(Approval).where(Approval.record_id == change.id)
                                .order_by(Approval.id))
    return {"number": change.number, "change_type": change.change_type,
            "risk_score": change.risk_score, "risk_level": change.risk_level,
            "approval": approval_status(session, change),
            "freeze_approval": approval_status(session, change, "freeze"),
            "approved": approval_refusal(session, change) is None,
            "approvals": [approval_dict(session, a) for a in approvals],
            "conflicts": conflicts(session, change),
            "freeze_windows": [w.name for w in freeze_of(session, change)],
            "gate_calls": gate_calls(session, change),
            "incidents_caused": caused_incidents(service, change),
            "incident_management": incident_type() is not None,
            "impact": spine.impact(session, change)}


