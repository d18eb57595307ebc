"""Demo agreements: DOT and DOH with different targets, and an OLA between two groups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from itsm.plugin import DemoContext, RecordService
from itsm.plugins.mou import service
from itsm.plugins.mou.models import MOU, Mou

ESCALATION = [
    {"role": "Project lead", "name": "Jordan Lead", "email": "lead@demo.invalid",
     "when": "a ticket misses its target or a project is at risk", "after_minutes": 0},
    {"role": "Director of service management", "name": "Morgan Director",
     "email": "director@demo.invalid", "when": "the project lead could not resolve it",
     "after_minutes": 240},
]

AGREEMENTS: tuple[dict[str, Any], ...] = (
    {"title": "Department of Transportation MOU 2026", "agency": "DOT",
     "manager": {"role": "Technology business consultant", "name": "Casey Consultant",
                 "email": "casey@demo.invalid", "phone": "+1 555 0100"},
     "sections": {"2": "Keep traffic management systems available around the clock; "
                       "replace the permit system by 2027.",
                  "A": "Traffic systems are critical: priority 1 is answered at once."},
     "targets": [
         {"service": "", "priority": 1, "response_minutes": 15, "resolution_minutes": 120,
          "availability": 99.9, "support_hours": "24x7"},
         {"service": "", "priority": 3, "response_minutes": 60, "resolution_minutes": 480},
         {"service": "Traffic management", "priority": None, "response_minutes": 10,
          "resolution_minutes": 90, "availability": 99.95, "support_hours": "24x7"},
         {"service": "", "priority": None, "response_minutes": 240,
          "resolution_minutes": 2400}]},
    {"title": "Department of Health MOU 2026", "agency": "DOH",
     "manager": {"role": "Technology business consultant", "name": "Drew Advisor",
                 "email": "drew@demo.invalid", "phone": "+1 555 0101"},
     "sections": {"2": "Modernise the clinic scheduling system and its patient portal."},
     "targets": [
         {"service": "", "priority": 1, "response_minutes": 30, "resolution_minutes": 240},
         {"service": "", "priority": 3, "response_minutes": 120, "resolution_minutes": 960,
          "compliance_percent": 90.0},
         {"service": "", "priority": None, "response_minutes": 480,
          "resolution_minutes": 4800}]},
)


def _activate(agent: RecordService, mou: Mou, provider: str, other_side: str) -> None:
    agent.transition(mou, "submit")
    for side, name in (("provider", provider), ("agency", other_side)):
        service.sign(agent, mou, {"side": side, "name": name, "title": "Signatory"})
    agent.transition(mou, "approve")
    agent.transition(mou, "activate")


def load(ctx: DemoContext) -> None:
    """Create the demo agreements once (skipped when any agreement exists)."""
    if ctx.session.scalar(select(Mou.id).limit(1)) is not None:
        return
    agent = ctx.service("agent@demo.invalid")
    for demo in AGREEMENTS:
        mou = agent.create(MOU.name, {"title": demo["title"], "agency": demo["agency"],
                                      "kind": "mou"})
        service.set_sections(agent, mou, demo["sections"])
        service.set_targets(agent, mou, {"items": demo["targets"]})
        service.set_contacts(agent, mou, {"items": [demo["manager"], *ESCALATION]})
        _activate(agent, mou, "Morgan Director", f"{demo['agency']} Chief Information Officer")
    ola = agent.create(MOU.name, {"title": "Service Desk to Network OLA", "kind": "ola",
                                  "provider_group": "Network",
                                  "customer_group": "Service Desk", "ola_types": "task"})
    service.set_targets(agent, ola, {"items": [
        {"service": "", "priority": None, "response_minutes": 30,
         "resolution_minutes": 240}]})
    _activate(agent, ola, "Network lead", "Service Desk lead")
