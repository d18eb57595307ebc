"""Demo incidents: a realistic morning at a service desk."""

from __future__ import annotations

from typing import Any

from itsm.plugin import InputError, reference_kind, resolve_reference

DEMO: list[dict[str, Any]] = [
    {"title": "VPN drops every hour", "description": "Remote staff lose the VPN tunnel "
     "about every hour since the weekend.", "category": "network", "subcategory": "vpn",
     "impact": 2, "urgency": 2, "affected_service": ("Remote access", "vpn")},
    {"title": "Printer on floor 3 jams on A3", "description": "The east wing printer jams "
     "on every A3 job.", "category": "hardware", "subcategory": "printer", "impact": 3,
     "urgency": 3, "affected_service": ("Printing", "printing")},
    {"title": "Cannot reset my password", "description": "The portal says my reset link "
     "expired although I used it at once.", "category": "access",
     "subcategory": "password", "impact": 3, "urgency": 2},
    {"title": "E-mail not syncing on my phone", "description": "Since yesterday my phone "
     "shows no new mail.", "category": "software", "subcategory": "email", "impact": 3,
     "urgency": 3, "affected_service": ("E-mail", "email")},
]


def known_service(session, names: tuple[str, ...]) -> str:
    """The first of ``names`` the service provider knows (its id), the first name with
    no provider, or nothing: the demo never names a service the catalog lacks."""
    if reference_kind("service") is None:
        return names[0]
    for name in names:
        try:
            return resolve_reference(session, "service", name).id
        except InputError:
            continue
    return ""


def load(ctx) -> None:
    """Open the demo incidents as the demo requesters and work some of them."""
    requesters = [u for u in ctx.users.values() if u.role == "requester"]
    agents = [u for u in ctx.users.values() if u.role == "agent"]
    if not requesters or not agents:
        return
    opened = []
    for i, data in enumerate(DEMO):
        service = ctx.service(requesters[i % len(requesters)])
        values = {**data, "channel": "portal"}
        if "affected_service" in values:
            values["affected_service"] = known_service(ctx.session, data["affected_service"])
        opened.append(service.create("incident", values))
    desk = ctx.service(agents[0])
    desk.transition(opened[0], "start")
    desk.transition(opened[1], "resolve", {
        "resolution_code": "solved", "resolution_notes": "Replaced the A3 tray roller."})
    desk.transition(opened[2], "hold", {"hold_kind": "customer",
                                        "hold_reason": "Waiting for the user's callback"})
    major = ctx.service(agents[0]).create("incident", {
        "title": "E-mail down for the whole agency", "description": "Outlook cannot "
        "connect to the mail server.", "category": "software", "subcategory": "email",
        "impact": 1, "urgency": 1, "major": True, "channel": "monitoring",
        "affected_service": known_service(ctx.session, ("E-mail", "email"))})
    apps = next((u for u in agents if u.email == "resolver@demo.invalid"), agents[-1])
    ctx.service(apps).link(opened[3], major.number, "child_of")
