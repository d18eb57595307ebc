"""The problem plugin's hook implementations (its declaration is in __init__.py)."""

from __future__ import annotations

import click
from flask import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    DemoContext,
    LinkKind,
    NavItem,
    Permission,
    Record,
    RecordChange,
    RecordService,
    RecordType,
    Suggestion,
    current_itsm,
    hookimpl,
    search_ranked,
    utcnow,
)
from itsm.plugins.problem import service as problems
from itsm.plugins.problem.models import PROBLEM, PROBLEM_OF, Problem


@hookimpl
def itsm_record_types() -> list[RecordType]:
    """The problem record type (``PRB…``, ``/api/v1/problems``)."""
    return [PROBLEM]


@hookimpl
def itsm_link_kinds() -> list[LinkKind]:
    """``problem_of``: a problem and the incidents it is behind."""
    return [PROBLEM_OF]


@hookimpl
def itsm_permissions() -> list[Permission]:
    """``problem.trends`` for agents; the type's own permissions are automatic."""
    return [Permission(problems.TRENDS_PERMISSION, "see incident trends and open problems "
                       "from them", ("agent",))]


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """The API routes and the console pages."""
    from itsm.plugins.problem.api import api
    from itsm.plugins.problem.pages import pages

    return [api, pages]


@hookimpl
def itsm_cli_commands() -> list[click.Command]:
    """``itsm problem trends`` and ``itsm problem known-errors``."""
    from itsm.plugins.problem.cli import problem_group

    return [problem_group]


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    """Known errors and trends, for those who may see them."""
    install = current_itsm()
    with install.Session() as session:
        service = RecordService(install, session, actor)
        items = []
        if service.can(f"{PROBLEM.name}.read"):
            items.append(NavItem("Known errors", "/problems/known-errors", order=40))
        if service.can(problems.TRENDS_PERMISSION):
            items.append(NavItem("Incident trends", "/problems/trends", order=45))
    return items or None


@hookimpl
def itsm_record_prepare(record: Record, change: RecordChange) -> None:
    """Stamp ``known_error_at`` when the problem becomes a known error."""
    if record.type != PROBLEM.name or change.kind != "transitioned":
        return
    if record.state == "known_error" and record.known_error_at is None:
        record.known_error_at = utcnow()


@hookimpl
def itsm_record_changed(session: Session, record: Record, change: RecordChange) -> None:
    """On resolve, tell the open linked incidents."""
    if record.type != PROBLEM.name or change.kind != "transitioned":
        return
    if change.transition == "resolve":
        problems.notify_linked_incidents(session, record)


@hookimpl
def itsm_suggestions(session: Session, actor: Actor, text: str, record: Record | None,
                     limit: int) -> list[Suggestion]:
    """Known errors matching a new record's text (see ``service.suggestions``)."""
    return problems.suggestions(session, actor, text, record, limit)


# -- demo data ---------------------------------------------------------------------------------

DEMO_PROBLEMS = (
    {"title": "Outlook crashes when opening shared calendars",
     "description": "Several users report that Outlook closes when a shared calendar opens "
                    "since the last office update.",
     "category": "software", "affected_service": "E-mail and calendar",
     "known_error": {"root_cause": "The calendar add-in of the 2.3 update is incompatible "
                                   "with delegated mailboxes.",
                     "workaround": "Open shared calendars in Outlook on the web, or start "
                                   "Outlook with add-ins disabled (outlook.exe /safe)."},
     "search": "outlook calendar crash"},
    {"title": "VPN tunnel drops every hour for remote staff",
     "description": "Remote users lose the VPN connection about every hour.",
     "category": "network", "affected_service": "Remote access (VPN)", "investigate": True,
     "search": "vpn tunnel"},
    {"title": "Printer queues stall after the driver roll-out",
     "description": "Print jobs wait in the queue on floor printers after the new driver.",
     "category": "hardware", "affected_service": "Printing and scanning",
     "search": "printer"},
)


@hookimpl(trylast=True)  # after the other plugins' demo data: link their incidents
def itsm_demo_data(ctx: DemoContext) -> None:
    """Three problems, one a known error, linked to matching demo incidents."""
    agent = ctx.service("agent@demo.invalid")
    incident_type = problems.incident_type()
    for demo in DEMO_PROBLEMS:
        exists = ctx.session.scalar(select(Problem.id).where(Problem.title == demo["title"]))
        if exists is not None:
            continue
        values = {k: demo[k] for k in ("title", "description", "category")}
        if problems.known(ctx.session, "service", demo["affected_service"]):
            values["affected_service"] = demo["affected_service"]  # a service it knows
        problem = agent.create(PROBLEM.name, values)
        if incident_type is not None:
            for incident, _score in search_ranked(ctx.session, demo["search"], limit=5,
                                                  types=[incident_type.name]):
                agent.link(problem, incident.number, PROBLEM_OF.name)
        if demo.get("investigate"):
            agent.transition(problem, "investigate", {"assignee": "agent@demo.invalid"})
        if demo.get("known_error"):
            agent.transition(problem, "record_known_error", demo["known_error"])
