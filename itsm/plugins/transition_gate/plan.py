"""Meetings, milestones, roles and contacts of a transition, and the admin-editable
checklist templates (with the default one the operations gate asks for)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Boolean,
    Conflict,
    Forbidden,
    NotFound,
    RecordService,
    record_admin_audit,
)
from itsm.plugins.transition_gate import service as gate
from itsm.plugins.transition_gate.models import (
    MEETING_KINDS,
    ChecklistTemplate,
    Meeting,
    Milestone,
    Role,
    ServiceTransition,
)

DEFAULT_TEMPLATE = "default"
DEFAULT_ITEMS = (
    ("Service desk knowledge documents", "Known questions, first-line fixes and scripts "
     "the service desk needs from day one, published as knowledge articles.", 20,
     "/transitions/templates/service-desk-knowledge.md"),
    ("Support and escalation model", "Support lines, resolver groups, functional and "
     "hierarchical escalation paths with their time limits.", 20, ""),
    ("SLA/MOU targets agreed", "Service level targets agreed with the customer agencies "
     "and written into their MOU.", 15, ""),
    ("Monitoring and event management in place", "Monitoring, alert rules and the event "
     "flow to incident management, tested.", 10, ""),
    ("Technical documentation in the technical catalog", "Runbooks, architecture and "
     "recovery documents published in the technical catalog.", 10, ""),
    ("Resolver groups trained", "Each resolver group trained on the service, with "
     "attendance recorded.", 7, ""),
    ("Contact details", "Contacts of suppliers, project, service owner and on-call staff.",
     10, "/transitions/templates/contact-list.md"),
    ("Process description with roles and responsibilities", "How incident, change and "
     "request processes work for this service and who does what.", 15, ""),
    ("Backup and recovery tested", "A restore from backup and a recovery test done, with "
     "the results.", 5, ""),
)


# Who approves a default item, by role (the rest: the service manager).
DEFAULT_APPROVER_ROLES = {"Service desk knowledge documents": "Service desk lead"}


def default_items() -> list[dict[str, Any]]:
    return [{"title": title, "description": text, "mandatory": True,
             "due_days_before": days, "document_url": url,
             "approver_role": DEFAULT_APPROVER_ROLES.get(title, "")}
            for title, text, days, url in DEFAULT_ITEMS]


def install_defaults(session: Session) -> None:
    """The default checklist template (idempotent: an edited one is kept)."""
    if session.scalar(select(ChecklistTemplate.id).where(
            ChecklistTemplate.name == DEFAULT_TEMPLATE)) is None:
        session.add(ChecklistTemplate(
            name=DEFAULT_TEMPLATE, active=True, items=default_items(),
            description="The deliverables operations needs before a service goes live."))
        session.flush()


# -- templates ---------------------------------------------------------------------------------


class TemplateItemIn(Schema):
    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    mandatory = Boolean(load_default=True)
    document_url = fields.String(load_default="", validate=validate.Length(max=500))
    approver_role = fields.String(load_default="", validate=validate.Length(max=100), metadata={
        "description": "who approves, by role: 'Service manager' (the default), 'Project "
                       "manager', or a role of the transition (its person approves)"})
    due_days_before = fields.Integer(load_default=None, allow_none=True,
                                     validate=validate.Range(0, 730))


class TemplateIn(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9_-]{0,99}$", error="lower-case letters, digits, - and _"))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    active = Boolean(load_default=True)
    items = fields.List(fields.Nested(TemplateItemIn), required=True,
                        validate=validate.Length(max=100))


def templates(session: Session) -> list[ChecklistTemplate]:
    return list(session.scalars(select(ChecklistTemplate).order_by(ChecklistTemplate.name)))


def save_template(svc: RecordService, data: Any) -> ChecklistTemplate:
    """Create a template or replace the one of the same name (gatekeepers, admins)."""
    if not gate.is_gatekeeper(svc):
        raise Forbidden(f"{svc.actor.email} may not edit checklist templates (gatekeepers "
                        "and admins)")
    values = gate.load(TemplateIn(), data)
    found = svc.session.scalar(select(ChecklistTemplate).where(
        ChecklistTemplate.name == values["name"]))
    before = template_dict(found) if found is not None else None
    if found is None:
        found = ChecklistTemplate(name=values["name"])
        svc.session.add(found)
    found.description, found.active = values["description"], values["active"]
    found.items = values["items"]
    svc.session.flush()
    after = template_dict(found)
    record_admin_audit(svc.session, svc.actor, "transition.template.save",
                       f"checklist template {found.name}",
                       {k: v for k, v in before.items() if k != "id"} if before else None,
                       {k: v for k, v in after.items() if k != "id"})
    return found


def template_dict(t: ChecklistTemplate) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "description": t.description, "active": t.active,
            "items": t.items}


# -- meetings ----------------------------------------------------------------------------------


class MeetingIn(Schema):
    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, validate=validate.OneOf(MEETING_KINDS))
    scheduled_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    location = fields.String(load_default="", validate=validate.Length(max=200))
    attendees = fields.List(fields.Email(), load_default=list,
                            validate=validate.Length(max=100))
    minutes = fields.String(load_default="", validate=validate.Length(max=50000))


def meetings(session: Session, trn: ServiceTransition) -> list[Meeting]:
    return list(session.scalars(select(Meeting).where(Meeting.transition_id == trn.id)
                                .order_by(Meeting.scheduled_at, Meeting.id)))


def save_meeting(svc: RecordService, trn: ServiceTransition, data: Any,
                 meeting_id: int | None = None) -> Meeting:
    """Schedule a meeting, or change one (e.g. record its minutes)."""
    gate.require_manager(svc, trn)
    values = gate.load(MeetingIn(), data, partial=meeting_id is not None)
    if meeting_id is None:
        meeting = Meeting(transition_id=trn.id, location="", attendees=[], minutes="")
        svc.session.add(meeting)
    else:
        meeting = svc.session.get(Meeting, meeting_id)
        if meeting is None or meeting.transition_id != trn.id:
            raise NotFound(f"no meeting {meeting_id} in {trn.number}")
    if "attendees" in values:
        values["attendees"] = sorted({a.strip().lower() for a in values["attendees"]})
    for key, value in values.items():
        setattr(meeting, key, value)
    svc.session.flush()
    label = meeting.kind.replace("_", "-")
    text = (f"{label.capitalize()} meeting scheduled for "
            f"{meeting.scheduled_at:%Y-%m-%d %H:%M} UTC" if meeting_id is None
            else f"{label.capitalize()} meeting updated ({', '.join(sorted(values))})")
    gate.note(svc, trn, text + ".")
    return meeting


# -- milestones --------------------------------------------------------------------------------


class MilestoneIn(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    due_date = fields.Date(required=True)
    done_on = fields.Date(allow_none=True)


def milestones(session: Session, trn: ServiceTransition) -> list[Milestone]:
    return list(session.scalars(select(Milestone).where(Milestone.transition_id == trn.id)
                                .order_by(Milestone.due_date, Milestone.id)))


def save_milestone(svc: RecordService, trn: ServiceTransition, data: Any,
                   milestone_id: int | None = None) -> Milestone:
    """Add a milestone, or change one (``done_on`` marks it reached)."""
    gate.require_manager(svc, trn)
    values = gate.load(MilestoneIn(), data, partial=milestone_id is not None)
    if milestone_id is None:
        milestone = Milestone(transition_id=trn.id)
        svc.session.add(milestone)
    else:
        milestone = svc.session.get(Milestone, milestone_id)
        if milestone is None or milestone.transition_id != trn.id:
            raise NotFound(f"no milestone {milestone_id} in {trn.number}")
    for key, value in values.items():
        setattr(milestone, key, value)
    svc.session.flush()
    state = f"reached on {milestone.done_on}" if milestone.done_on else \
        f"due {milestone.due_date}"
    gate.note(svc, trn, f"Milestone “{milestone.name}” {state}.")
    return milestone


# -- roles and contacts ------------------------------------------------------------------------


class RoleIn(Schema):
    class Meta:
        unknown = RAISE

    role = fields.String(required=True, validate=validate.Length(min=1, max=100))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(load_default="")
    phone = fields.String(load_default="", validate=validate.Length(max=50))
    responsibility = fields.String(load_default="", validate=validate.Length(max=5000))


def roles(session: Session, trn: ServiceTransition) -> list[Role]:
    return list(session.scalars(select(Role).where(Role.transition_id == trn.id)
                                .order_by(Role.id)))


def add_role(svc: RecordService, trn: ServiceTransition, data: Any) -> Role:
    gate.require_manager(svc, trn)
    values = gate.load(RoleIn(), data)
    role = Role(transition_id=trn.id, **values)
    svc.session.add(role)
    svc.session.flush()
    gate.note(svc, trn, f"Role “{role.role}”: {role.name}.")
    gate.assign_role_approvals(svc, trn)
    return role


def remove_role(svc: RecordService, trn: ServiceTransition, role_id: int) -> None:
    gate.require_manager(svc, trn)
    role = svc.session.get(Role, role_id)
    if role is None or role.transition_id != trn.id:
        raise NotFound(f"no role {role_id} in {trn.number}")
    if role.role in ("Project manager", "Service manager") and role.email in (
            trn.project_manager, trn.service_manager):
        raise Conflict(f"the {role.role.lower()} stays on the list: change the transition's "
                       f"{role.role.lower().replace(' ', '_')} instead")
    svc.session.delete(role)
    svc.session.flush()
    gate.note(svc, trn, f"Role “{role.role}” of {role.name} removed.")
