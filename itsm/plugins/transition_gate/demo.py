"""Demo transitions: one blocked with late items, one live in early-life support with an
incident reported to its project, one just planned."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from itsm.plugin import DemoContext, utcnow
from itsm.plugins.transition_gate import gate as gating
from itsm.plugins.transition_gate import plan
from itsm.plugins.transition_gate import service as gate
from itsm.plugins.transition_gate.models import TRANSITION, ServiceTransition

PM = "agent@demo.invalid"
SM = "resolver@demo.invalid"


def _exists(ctx: DemoContext, title: str) -> bool:
    return ctx.session.scalar(select(ServiceTransition.id).where(
        ServiceTransition.title == title)) is not None


def _open(ctx: DemoContext, title: str, service: str, days: int, **extra) -> ServiceTransition:
    trn = ctx.service(PM).create(TRANSITION.name, {
        "title": title, "project": extra.pop("project", "Hosting modernisation"),
        "service": service, "project_manager": PM, "service_manager": SM,
        "go_live_date": (utcnow().date() + timedelta(days=days)).isoformat(),
        "support_days": 30, **extra})
    assert isinstance(trn, ServiceTransition)
    return trn


def _deliver(ctx: DemoContext, trn: ServiceTransition, count: int | None = None) -> None:
    """The project manager submits, the service manager approves (the first ``count``)."""
    pm, sm = ctx.service(PM), ctx.service(SM)
    for item in gate.deliverables(ctx.session, trn)[:count]:
        gate.submit(pm, trn, item, {"evidence_kind": "link",
                                    "evidence": f"https://wiki.example.org/{trn.number}/"
                                                f"{item.position + 1}"})
        gate.decide(sm, trn, item, {"decision": "approve"})


def load(ctx: DemoContext) -> None:
    """Idempotent: a transition whose title exists is left as it is."""
    if PM not in ctx.users or SM not in ctx.users:
        return
    plan.install_defaults(ctx.session)
    now = utcnow()
    title = "Database hosting goes operational"
    if not _exists(ctx, title):
        trn = _open(ctx, title, "database-hosting", 10,
                    description="Managed PostgreSQL for the agencies' applications.")
        pm = ctx.service(PM)
        pm.transition(trn, "start")
        _deliver(ctx, trn, 3)
        items = gate.deliverables(ctx.session, trn)
        gate.submit(pm, trn, items[3], {"evidence_kind": "link",
                                        "evidence": "https://monitoring.example.org/db"})
        plan.save_meeting(pm, trn, {"kind": "start_up",
                                    "scheduled_at": (now - timedelta(days=20)).isoformat(),
                                    "location": "Room 4.12", "attendees": [PM, SM],
                                    "minutes": "Scope, roles and the checklist agreed."})
        plan.save_meeting(pm, trn, {"kind": "follow_up",
                                    "scheduled_at": (now + timedelta(days=3)).isoformat(),
                                    "attendees": [PM, SM]})
        plan.save_meeting(pm, trn, {"kind": "review",
                                    "scheduled_at": (now + timedelta(days=9)).isoformat(),
                                    "attendees": [PM, SM]})
        plan.save_milestone(pm, trn, {"name": "Pilot with DOT",
                                      "due_date": (now - timedelta(days=2)).date()
                                      .isoformat()})
        plan.save_milestone(pm, trn, {"name": "Operational acceptance test",
                                      "due_date": (now + timedelta(days=7)).date()
                                      .isoformat()})
        plan.add_role(pm, trn, {"role": "Database administrators", "name": "Applications",
                                "email": SM, "phone": "+1 555 0100",
                                "responsibility": "Second line: restores and tuning."})
    title = "Video conferencing for all agencies"
    if not _exists(ctx, title):
        # The catalog's own entry when a catalog lists it, else the name as typed.
        name = "video-meetings" if gating.lookup(ctx.session, "video-meetings") \
            else "Video conferencing"
        trn = _open(ctx, title, name, 0, project="Workplace 2027")
        ctx.service(PM).transition(trn, "start")
        _deliver(ctx, trn)
        gate.accept(ctx.service(SM), trn)
        ctx.service(PM).transition(trn, "go_live")
        if "incident" in ctx.itsm.types.by_name:
            ctx.service(PM).create("incident", {
                "title": "Video calls drop after ten minutes",
                "description": "Calls to DOH drop after about ten minutes.",
                "impact": 2, "urgency": 2, "affected_service": (
                    f"#{trn.catalog_id}" if trn.catalog_id is not None else trn.service)})
    title = "Digital signatures"
    if not _exists(ctx, title):
        _open(ctx, title, "Digital signatures", 60, project="Paperless office")
