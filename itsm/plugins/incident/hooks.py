"""The incident plugin's hook implementations: types, workflow rules, escalation, demo."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Boolean,
    Conflict,
    Event,
    EventMessage,
    Group,
    GroupMember,
    JournalEntry,
    Link,
    LinkKind,
    NavItem,
    Permission,
    Recipient,
    Record,
    RecordChange,
    RecordService,
    RecordType,
    State,
    Transition,
    User,
    ValidationError,
    Workflow,
    current_itsm,
    hookimpl,
    utcnow,
)
from itsm.plugins.incident import rules, spine
from itsm.plugins.incident.models import (
    CHANNELS,
    HOLD_KINDS,
    RESOLUTION_CODES,
    Escalation,
    Incident,
    IncidentReview,
)

log = logging.getLogger("itsm.incident")

# Fields a requester may not set when reporting an incident.
STAFF_FIELDS = ("major", "workaround", "resolution_code", "resolution_notes")
OPEN_STATES = ("new", "in_progress", "on_hold")


class IncidentSchema(Schema):
    category = fields.String(validate=validate.Length(max=64))
    subcategory = fields.String(validate=validate.Length(max=64))
    affected_service = fields.String(validate=validate.Length(max=200), metadata={
        "description": "the service (its id, key or name; stored as its stable id)"})
    config_item = fields.String(validate=validate.Length(max=200), metadata={
        "description": "the configuration item (its id or name; stored as its stable id)"})
    impact = fields.Integer(validate=validate.Range(1, 4), metadata={
        "description": "1 = widespread ... 3 or 4 = one person (the matrix decides)"})
    urgency = fields.Integer(validate=validate.Range(1, 4), metadata={
        "description": "1 = work stopped ... 3 or 4 = can wait"})
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    major = Boolean()
    workaround = fields.String(validate=validate.Length(max=20000))
    hold_kind = fields.String(validate=validate.OneOf(("", *HOLD_KINDS)))
    hold_reason = fields.String(validate=validate.Length(max=500))
    resolution_code = fields.String(validate=validate.OneOf(("", *RESOLUTION_CODES)))
    resolution_notes = fields.String(validate=validate.Length(max=20000))
    resolved_at = fields.DateTime(dump_only=True, allow_none=True)
    reopen_count = fields.Integer(dump_only=True)
    satisfaction = fields.Integer(dump_only=True, allow_none=True)
    satisfaction_comment = fields.String(dump_only=True)


class ReviewSchema(Schema):
    incident_number = fields.String(dump_only=True)
    timeline = fields.List(fields.Dict(), dump_only=True)
    root_cause = fields.String(validate=validate.Length(max=20000))
    actions = fields.String(validate=validate.Length(max=20000))
    lessons = fields.String(validate=validate.Length(max=20000))


def _within_reopen_window(record: Record, actor: Actor, data: dict) -> str | None:
    days = rules.settings()["reopen_days"]
    resolved = getattr(record, "resolved_at", None)
    if resolved is not None and utcnow() - resolved > timedelta(days=days):
        return f"the reopen window of {days} days has passed; report a new incident"
    return None


def _requester_confirms(record: Record, actor: Actor, data: dict) -> str | None:
    if actor.role == "requester" and record.requester_id != actor.id:
        return "only the requester confirms the resolution"
    return None


WORKFLOW = Workflow(
    states=[
        State("new", stops=()),
        State("in_progress", "In progress", stops=("response",)),
        State("on_hold", "On hold", waiting=True, stops=("response",)),
        State("resolved", stops=("response", "resolution")),
        State("closed", final=True, stops=("response", "resolution")),
        State("cancelled", final=True, stops=("response", "resolution")),
    ],
    transitions=[
        Transition("start", ("new",), "in_progress", "Start work"),
        Transition("hold", ("new", "in_progress"), "on_hold", "Put on hold",
                   required=("hold_kind", "hold_reason")),
        Transition("resume", ("on_hold",), "in_progress", "Resume"),
        Transition("resolve", OPEN_STATES, "resolved", "Resolve",
                   required=("resolution_code", "resolution_notes"),
                   fields=("workaround",)),
        Transition("close", ("resolved",), "closed", "Confirm and close",
                   roles=("requester",), requester=True, guards=(_requester_confirms,)),
        Transition("reopen", ("resolved",), "in_progress", "Reopen", requester=True,
                   guards=(_within_reopen_window,)),
        Transition("cancel", OPEN_STATES, "cancelled", "Cancel"),
    ],
)

REVIEW_WORKFLOW = Workflow(
    states=[State("draft"), State("done", final=True, stops=("response", "resolution"))],
    transitions=[
        Transition("complete", ("draft",), "done", "Complete the review",
                   required=("root_cause", "actions")),
        Transition("revise", ("done",), "draft", "Revise"),
    ],
)


def derive_priority(record: Record) -> dict[str, Any]:
    """Priority from the impact x urgency matrix; category and subcategory checked."""
    settings = rules.settings()
    matrix = settings["priority_matrix"]
    impacts, urgencies = rules.levels(matrix)
    if record.impact is None:
        record.impact = impacts
    if record.urgency is None:
        record.urgency = urgencies
    errors = rules.check_category(settings["categories"], record.category, record.subcategory)
    if errors:
        raise ValueError("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
    priority = rules.priority_of(record.impact, record.urgency, matrix)
    if priority is None:
        raise ValueError(f"impact goes from 1 to {impacts} and urgency from 1 to "
                         f"{urgencies} on this install")
    return {"priority": priority}


INCIDENT = RecordType(name="incident", model=Incident, prefix="INC", collection="incidents",
                      workflow=WORKFLOW, schema=IncidentSchema, label="Incident",
                      suggest=True, derive=derive_priority, references=spine.REFERENCES)
REVIEW = RecordType(name="incident_review", model=IncidentReview, prefix="PIR",
                    collection="incident-reviews", workflow=REVIEW_WORKFLOW,
                    schema=ReviewSchema, label="Post-incident review", requester_roles=())

CHILD_OF = "child_of"
REVIEWS = "reviews"


@hookimpl
def itsm_record_types() -> list[RecordType]:
    return [INCIDENT, REVIEW]


@hookimpl
def itsm_permissions() -> list[Permission]:
    return [Permission("incident.report", "see incident reports and the dashboard",
                       ("agent",))]


@hookimpl
def itsm_link_kinds() -> list[LinkKind]:
    return [LinkKind(CHILD_OF, "child of", "parent of"),
            LinkKind(REVIEWS, "reviews", "reviewed by")]


# -- rules applied on every change -------------------------------------------------------


def system_service(session: Session) -> RecordService:
    """A record service acting as the system, in the caller's transaction."""
    return RecordService(current_itsm(), session, Actor.system())


def linked(session: Session, record: Record, kind: str, *, incoming: bool) -> list[Record]:
    """Records linked to ``record`` by ``kind``: those pointing at it, or it points at."""
    if incoming:
        ids = select(Link.source_id).where(Link.target_id == record.id, Link.kind == kind)
    else:
        ids = select(Link.target_id).where(Link.source_id == record.id, Link.kind == kind)
    return list(session.scalars(select(Record).where(Record.id.in_(ids))
                                .order_by(Record.id)))


def _route(session: Session, record: Incident) -> None:
    if record.group_id is not None:
        return
    # By service (its resolver group) before category; a configuration item names its
    # service when the incident names none.
    spine.fill_service(session, record)
    group_id = spine.route_group(session, record)
    if group_id is not None:
        record.group_id = group_id
        return
    if not record.category:
        return
    if isinstance(record, Record):  # one incident of a command: ask now
        group_name = rules.settings()["routing"].get(record.category)
        if group_name:
            record.group_id = session.scalar(select(Group.id).where(Group.name == group_name))
        return
    # A bulk import prepares thousands of incidents on one reading session that writes
    # nothing: each category's group is settled once for the import (found or not).
    routes = session.info.setdefault("incident.routing", {})
    if record.category not in routes:
        group_name = rules.settings()["routing"].get(record.category)
        routes[record.category] = session.scalar(
            select(Group.id).where(Group.name == group_name)) if group_name else None
    record.group_id = routes[record.category]


def _follow_major(session: Session, record: Incident, change: RecordChange) -> None:
    """Children of a major incident get its public updates and its resolution."""
    children = [c for c in linked(session, record, CHILD_OF, incoming=True)
                if c.type == "incident" and c.state in OPEN_STATES]
    if not children:
        return
    service = system_service(session)
    # The comment's journal entry is in this transaction already (the hook runs after it).
    body = session.scalar(select(JournalEntry.body).where(
        JournalEntry.record_id == record.id, JournalEntry.kind == "commented")
        .order_by(JournalEntry.id.desc()).limit(1)) or ""
    for child in children:
        if change.kind == "commented":
            service.comment(child, f"Update from major incident {record.number}: {body}")
        elif change.transition == "resolve":
            service.transition(child, "resolve", {
                "resolution_code": record.resolution_code,
                "resolution_notes": f"Resolved with major incident {record.number}: "
                                    f"{record.resolution_notes}"})


@hookimpl
def itsm_record_prepare(session: Session, record: Record, change: RecordChange) -> None:
    """Staff-only fields checked, the channel of a requester's report, routing to a
    group by category, the resolution time and the reopen count: before the journal
    entry, so that it says what the incident holds."""
    if record.type != INCIDENT.name:
        return
    if change.kind == "created":
        if change.actor.role == "requester":
            sent = [f for f in STAFF_FIELDS if getattr(record, f)]
            if sent:
                raise ValidationError("only IT staff may set " + ", ".join(sent),
                                      fields={f: ["only IT staff may set this field"]
                                              for f in sent})
            if record.channel in (None, "api"):
                record.channel = "portal"
        _route(session, record)
    elif change.kind == "transitioned":
        if change.transition == "resolve":
            record.resolved_at = utcnow()
        elif change.transition == "reopen":
            record.resolved_at = None
            record.reopen_count = (record.reopen_count or 0) + 1


@hookimpl
def itsm_record_changed(session: Session, record: Record, change: RecordChange) -> None:
    """A major incident's updates and resolution reach its child incidents."""
    if not isinstance(record, Incident):
        return
    if record.major and (change.kind == "commented" or change.transition == "resolve"):
        _follow_major(session, record, change)


@hookimpl
def itsm_record_actions(record: Record, actor: Actor) -> list[NavItem] | None:
    """On a major incident, for IT staff: the agencies it affects."""
    if record.type != INCIDENT.name or not getattr(record, "major", False) \
            or actor.role == "requester":
        return None
    return [NavItem("Affected agencies", f"/incidents/{record.number}/impact", order=20)]


@hookimpl
def itsm_reference_changed(session: Session, ref: Any, change: str, into: Any) -> None:
    """A service or item merged into another: open incidents follow the one that stays
    (journaled as an update; a rename needs nothing, they hold the stable id)."""
    fields_of = {v: k for k, v in spine.REFERENCES.items()}
    if change != "merged" or into is None or ref.kind not in fields_of:
        return
    name = fields_of[ref.kind]
    system = system_service(session)
    for incident in session.scalars(select(Incident).where(
            getattr(Incident, name) == ref.id, Incident.state.in_(OPEN_STATES))):
        system.set_fields(incident, {name: into.id})


@hookimpl
def itsm_transition_guard(record: Record, transition: Transition, actor: Actor) \
        -> str | None:
    if not isinstance(record, Incident) or transition.name != "close" or not record.major:
        return None
    session = Session.object_session(record)
    reviews = [r for r in linked(session, record, REVIEWS, incoming=True)
               if r.type == "incident_review"]
    if not any(r.state == "done" for r in reviews):
        return ("a major incident closes only after its post-incident review is done "
                f"(open one with POST /api/v1/incidents/{record.number}/review)")
    return None


# -- background: auto-close and escalation -------------------------------------------------


def auto_close(now: datetime) -> int:
    """Close incidents resolved and quiet for ``auto_close_days``; return how many."""
    itsm = current_itsm()
    days = rules.settings()["auto_close_days"]
    cutoff = now - timedelta(days=days)
    closed = 0
    with itsm.unit_of_work(Actor.system()) as service:
        due = service.session.scalars(
            select(Incident).where(Incident.state == "resolved",
                                   Incident.resolved_at <= cutoff,
                                   Incident.updated_at <= cutoff)
            .order_by(Incident.id).limit(200)).all()
        for incident in due:
            if incident.major and itsm_transition_guard(record=incident,
                                                        transition=WORKFLOW.transitions["close"],
                                                        actor=service.actor):
                continue  # a major incident waits for its review
            service.transition(incident, "close", comment=(
                f"Closed automatically: resolved {days} days ago without a reply."))
            closed += 1
    return closed


# Escalation is the incident's reaction to an SLA announcement (``sla.warning``,
# ``sla.breached``), delivered through the outbox to this plugin's own channel: it is
# retried with backoff like any delivery, claimed once by the unique step row, and bounded
# by the outbox's per-cycle budget. A clock the sweep never announces is never escalated:
# imported history, whose past warnings and breaches the import records as announced
# without an event, sets off no escalation.
ESCALATION_CHANNEL = "incident.escalation"
_LEVELS = {"sla.warning": "warning", "sla.breached": "breach"}


class EscalationChannel:
    """Takes the escalation step an SLA announcement of an open incident calls for."""

    name = ESCALATION_CHANNEL

    def deliver(self, message: EventMessage, recipient: Recipient) -> None:
        level = _LEVELS.get(message.name)
        number = (message.record or {}).get("number")
        if level is None or not number:
            return
        itsm = current_itsm()
        with itsm.Session() as session:
            record_id = session.scalar(select(Incident.id).where(
                Incident.number == number, Incident.state.in_(OPEN_STATES)))
        if record_id is not None:  # resolved or closed meanwhile: nothing to escalate
            _escalate_one(itsm, rules.settings(), record_id, str(message.payload["metric"]),
                          level)


def escalate(now: datetime) -> int:
    """Take the escalation steps whose announcements wait in the outbox now; return how
    many were taken (what the worker's cycle does with the rest of the outbox)."""
    itsm = current_itsm()
    with itsm.Session() as session:
        before = session.scalar(select(func.count()).select_from(Escalation))
    while itsm.outbox.fan_out():
        pass
    while itsm.outbox.deliver_due(only=(ESCALATION_CHANNEL,)).more:
        pass
    with itsm.Session() as session:
        return session.scalar(select(func.count()).select_from(Escalation)) - before


def _escalate_one(itsm, settings: dict, record_id: int, metric: str, level: str) -> None:
    """Take one step once; a second worker's (or a retried delivery's) is a no-op."""
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            session = service.session
            # The unique step row is the claim: a second worker's insert fails here.
            step = Escalation(record_id=record_id, metric=metric, level=level)
            session.add(step)
            session.flush()
            incident = session.get(Incident, record_id)
            contacts = list(settings["escalation_contacts"] or [])
            what = "75 % of" if level == "warning" else "all of"
            note = (f"Escalated: {what} the {metric} target is used"
                    if level == "warning" else f"Escalated: the {metric} target is breached")
            actions = [f"management told ({', '.join(contacts) or 'no contacts set'})"]
            breach_group = settings["breach_group"]
            if level == "breach" and breach_group:
                group_id = session.scalar(select(Group.id).where(Group.name == breach_group))
                if group_id is not None and group_id != incident.group_id:
                    service.update(incident, {"group": breach_group, "assignee": None})
                    actions.append(f"reassigned to {breach_group}")
            step.action = "; ".join(actions)[:300]
            service.comment(incident, f"{note}: {step.action}.", public=False)
            event = Event(name="incident.escalated", record_id=incident.id, actor_id=None,
                          payload={"record": {"number": incident.number, "type": "incident",
                                              "title": incident.title,
                                              "state": incident.state,
                                              "priority": incident.priority},
                                   "level": level, "metric": metric,
                                   "contacts": contacts, "action": step.action})
            session.add(event)
            service.events.append(event)
    except Conflict:
        return  # another worker took this step (the unit of work's IntegrityError)


@hookimpl
def itsm_periodic(now: datetime) -> None:
    """Close quiet resolved incidents (escalation runs from the outbox)."""
    auto_close(now)


@hookimpl
def itsm_notification_channels() -> list[EscalationChannel]:
    """The escalation channel: SLA announcements of incidents become escalation steps."""
    return [EscalationChannel()]


# -- notifications --------------------------------------------------------------------------


@hookimpl
def itsm_notification_recipients(event: EventMessage, session: Session) \
        -> list[Recipient] | None:
    """Requester (public news only), assignee and group; management on escalations."""
    record = event.record or {}
    if record.get("type") != "incident":
        return None
    itsm = current_itsm()
    steps = [Recipient(ESCALATION_CHANNEL, record.get("number") or "")] \
        if event.name in _LEVELS else []
    channels = [c for c in rules.settings()["notify_channels"] if c in itsm.channels]
    if not channels:
        return steps or None
    incident = session.scalar(select(Incident).where(Incident.number == record["number"]))
    if incident is None:
        return None
    people: set[int] = set()
    if incident.assignee_id:
        people.add(incident.assignee_id)
    if incident.group_id:
        people.update(session.scalars(select(GroupMember.user_id).where(
            GroupMember.group_id == incident.group_id)))
    public = event.payload.get("public", True) and event.name != "incident.escalated"
    if public and incident.requester_id:
        people.add(incident.requester_id)
    addresses = set(session.scalars(select(User.email).where(User.id.in_(people))))
    if event.name == "incident.escalated":
        addresses.update(event.payload.get("contacts") or [])
    if event.actor:
        addresses.discard(event.actor)  # nobody is told about their own change
    return steps + [Recipient(channel, address) for channel in channels
                    for address in sorted(addresses)]


# -- web, CLI, demo ----------------------------------------------------------------------


@hookimpl
def itsm_blueprints():
    from itsm.plugins.incident import api, pages

    return [api.bp, *pages.blueprints()]


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    from itsm.plugins.incident import pages

    return pages.navigation(actor)


@hookimpl
def itsm_cli_commands():
    from itsm.plugins.incident import cli

    return [cli.incident]


@hookimpl
def itsm_demo_data(ctx) -> None:
    from itsm.plugins.incident import demo

    demo.load(ctx)
