"""Read models of the transition gate: a transition's overview (checklist, meetings,
milestones, roles, exceptions, timeline of late items, gate status, early-life
incidents) and the readiness dashboard of every transition."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from itsm.plugin import RecordService
from itsm.plugins.transition_gate import gate as gating
from itsm.plugins.transition_gate import plan
from itsm.plugins.transition_gate import service as gate
from itsm.plugins.transition_gate.models import (
    TRANSITION,
    Deliverable,
    GateException,
    Meeting,
    Milestone,
    Role,
    ServiceTransition,
)


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def deliverable_dict(item: Deliverable, waived: set[int], today: date) -> dict[str, Any]:
    done = item.state == "approved" or item.id in waived
    return {"id": item.id, "title": item.title, "description": item.description,
            "mandatory": item.mandatory, "document_url": item.document_url,
            "owner": item.owner, "approver": item.approver, "due_date": _iso(item.due_date),
            "state": item.state, "excepted": item.id in waived and item.state != "approved",
            "late": (not done and item.due_date is not None and item.due_date < today),
            "evidence_kind": item.evidence_kind, "evidence": item.evidence,
            "evidence_note": item.evidence_note, "rejection_reason": item.rejection_reason,
            "submitted_at": _iso(item.submitted_at), "decided_at": _iso(item.decided_at),
            "decided_by": item.decided_by}


def meeting_dict(m: Meeting) -> dict[str, Any]:
    return {"id": m.id, "kind": m.kind, "scheduled_at": _iso(m.scheduled_at),
            "location": m.location, "attendees": m.attendees, "minutes": m.minutes}


def milestone_dict(m: Milestone, today: date) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "due_date": _iso(m.due_date),
            "done_on": _iso(m.done_on), "late": m.done_on is None and m.due_date < today}


def role_dict(r: Role) -> dict[str, Any]:
    return {"id": r.id, "role": r.role, "name": r.name, "email": r.email, "phone": r.phone,
            "responsibility": r.responsibility}


def exception_dict(e: GateException, titles: dict[int, str], today: date) -> dict[str, Any]:
    return {"id": e.id, "deliverable_id": e.deliverable_id,
            "deliverable": titles.get(e.deliverable_id, ""), "reason": e.reason,
            "until": _iso(e.until), "granted_by": e.granted_by,
            "granted_at": _iso(e.granted_at), "active": e.until >= today}


def timeline(items: list[dict], milestones: list[dict], meetings: list[dict],
             trn: ServiceTransition, today: date) -> list[dict[str, Any]]:
    """Everything dated, in date order, each marked late when its date passed undone."""
    out = [{"date": d["due_date"], "kind": "deliverable", "what": d["title"],
            "done": d["state"] == "approved" or d["excepted"], "late": d["late"]}
           for d in items if d["due_date"]]
    out += [{"date": m["due_date"], "kind": "milestone", "what": m["name"],
             "done": m["done_on"] is not None, "late": m["late"]} for m in milestones]
    out += [{"date": m["scheduled_at"][:10], "kind": "meeting",
             "what": f"{m['kind'].replace('_', '-')} meeting", "done": bool(m["minutes"]),
             "late": False} for m in meetings]
    if trn.go_live_date is not None:
        passed = trn.gate_passed_at is not None
        out.append({"date": trn.go_live_date.isoformat(), "kind": "go-live",
                    "what": "target go-live", "done": passed,
                    "late": not passed and trn.go_live_date < today})
    return sorted(out, key=lambda row: (row["date"], row["kind"]))


def summary(svc: RecordService, trn: ServiceTransition) -> dict[str, Any]:
    """One transition's line on the readiness dashboard."""
    session, today = svc.session, gate.today()
    waived = gating.excepted_ids(session, trn)
    items = gate.deliverables(session, trn)
    done = sum(1 for i in items if i.state == "approved" or i.id in waived)
    late = [i.title for i in items if i.state != "approved" and i.id not in waived
            and i.due_date is not None and i.due_date < today]
    upcoming = session.scalar(select(Milestone).where(
        Milestone.transition_id == trn.id, Milestone.done_on.is_(None))
        .order_by(Milestone.due_date).limit(1))
    missing = gating.missing(session, trn) if trn.gate_passed_at is None else []
    return {"number": trn.number, "title": trn.title, "project": trn.project,
            "service": trn.service_name or trn.service, "catalog_key": trn.catalog_key,
            "state": trn.state, "project_manager": trn.project_manager,
            "service_manager": trn.service_manager, "go_live_date": _iso(trn.go_live_date),
            "percent_complete": round(100 * done / len(items)) if items else 100,
            "deliverables": len(items), "approved": done, "late_deliverables": late,
            "next_milestone": ({"name": upcoming.name, "due_date": _iso(upcoming.due_date)}
                               if upcoming else None),
            "accepted": trn.accepted_at is not None,
            "gate": "passed" if trn.gate_passed_at else ("ready" if not missing
                                                         else "blocked"),
            "missing": len(missing)}


def dashboard(svc: RecordService, include_closed: bool = False) -> list[dict[str, Any]]:
    """Every transition the actor may read, soonest go-live first."""
    svc.require(f"{TRANSITION.name}.read")
    stmt = select(ServiceTransition)
    if not include_closed:
        stmt = stmt.where(ServiceTransition.state.in_(("planning", "in_transition",
                                                       "early_life")))
    rows = svc.session.scalars(stmt.order_by(ServiceTransition.go_live_date,
                                             ServiceTransition.id))
    return [summary(svc, t) for t in rows if svc.can(f"{TRANSITION.name}.read", t)]


def overview(svc: RecordService, trn: ServiceTransition) -> dict[str, Any]:
    """Everything about one transition for its page and ``GET .../overview``."""
    session, today = svc.session, gate.today()
    waived = gating.excepted_ids(session, trn)
    rows = gate.deliverables(session, trn)
    items = [deliverable_dict(i, waived, today) for i in rows]
    titles = {i.id: i.title for i in rows}
    meetings = [meeting_dict(m) for m in plan.meetings(session, trn)]
    milestones = [milestone_dict(m, today) for m in plan.milestones(session, trn)]
    catalog = gating.service_of(session, trn)
    return {**summary(svc, trn),
            "support_days": trn.support_days, "template": trn.template,
            "accepted_by": trn.accepted_by, "accepted_at": _iso(trn.accepted_at),
            "gate_passed_at": _iso(trn.gate_passed_at),
            "support_until": _iso(trn.support_until),
            "in_early_life": (trn.state == "early_life" and trn.support_until is not None
                              and trn.support_until.date() >= today),
            "catalog_enabled": gating.catalog_enabled(),
            "catalog": ({"id": catalog.id, "name": catalog.label,
                         "status": catalog.lifecycle, "url": catalog.url}
                        if catalog else None),
            "missing_items": (gating.missing(session, trn) if trn.gate_passed_at is None
                              else []),
            "checklist": items, "meetings": meetings, "milestones": milestones,
            "roles": [role_dict(r) for r in plan.roles(session, trn)],
            "exceptions": [exception_dict(e, titles, today)
                           for e in gate.exceptions(session, trn)],
            "timeline": timeline(items, milestones, meetings, trn, today),
            "early_life_incidents": gating.early_life_incidents(svc, trn)}
