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
    Agency,
    AgencySection,
    Boolean,
    Conflict,
    EscalationStep,
    Event,
    EventMessage,
    Group,
    GroupMember,
    JournalEntry,
    Link,
    LinkKind,
    NavItem,
    Permission,
    Rating,
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
    escalation_path,
    hookimpl,
    reference_label,
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


ACRONYMS = {"vpn", "wan", "lan", "dns", "mfa", "erp", "wifi"}


def _words(code: str) -> str:
    """A category code as people write it (``operating_system`` -> "Operating system")."""
    if code.lower() in ACRONYMS:
        return "Wi-Fi" if code.lower() == "wifi" else code.upper()
    return code.replace("_", " ").capitalize()


def _category_choices() -> list[tuple[str, str]]:
    return [(name, _words(name)) for name in rules.settings()["categories"]]


def _subcategory_choices() -> dict[str, list[tuple[str, str]]]:
    return {name: [(sub, _words(sub)) for sub in subs or []]
            for name, subs in rules.settings()["categories"].items()}


# What staff read for each level, by the number of levels the matrix has.
IMPACT_LEVELS = {3: ["Widespread", "A team or a site", "One person"],
                 4: ["Widespread", "Large: a site or a department", "Limited: a team",
                     "One person"]}
URGENCY_LEVELS = {3: ["Work stopped", "Work degraded", "Can wait"],
                  4: ["Work stopped", "Work badly degraded", "Work degraded", "Can wait"]}


def _level_choices(words: dict[int, list[str]], axis: int) -> list[tuple[int, str]]:
    levels = rules.levels(rules.settings()["priority_matrix"])[axis]
    named = words.get(levels, [])
    return [(n, f"{n} – {named[n - 1]}" if n <= len(named) else str(n))
            for n in range(1, levels + 1)]


CHANNEL_LABELS = {"portal": "Portal", "email": "E-mail", "phone": "Phone", "api": "API",
                  "monitoring": "Monitoring", "walk_in": "Walk-in"}
HOLD_LABELS = {"customer": "The customer", "supplier": "A supplier", "change": "A change"}
RESOLUTION_LABELS = {"solved": "Solved", "workaround": "Workaround given",
                     "not_reproducible": "Not reproducible", "duplicate": "Duplicate",
                     "user_error": "User error", "change_implemented": "Change implemented",
                     "no_fault_found": "No fault found"}


class IncidentSchema(Schema):
    # Labels and choices in ``metadata`` are what the console's record pages show
    # (see itsm.core.record_page); the API keeps the codes.
    category = fields.String(validate=validate.Length(max=64),
                             metadata={"choices": _category_choices})
    subcategory = fields.String(validate=validate.Length(max=64), metadata={
        "choices": _subcategory_choices, "depends_on": "category"})
    affected_service = fields.String(validate=validate.Length(max=200), metadata={
        "description": "the service (its id, key or name; stored as its stable id)"})
    config_item = fields.String(validate=validate.Length(max=200), metadata={
        "description": "the configuration item (its id or name; stored as its stable id)",
        "label": "Configuration item"})
    impact = fields.Integer(validate=validate.Range(1, 4), metadata={
        "description": "1 = widespread ... 3 or 4 = one person (the matrix decides)",
        "choices": lambda: _level_choices(IMPACT_LEVELS, 0)})
    urgency = fields.Integer(validate=validate.Range(1, 4), metadata={
        "description": "1 = work stopped ... 3 or 4 = can wait",
        "choices": lambda: _level_choices(URGENCY_LEVELS, 1)})
    channel = fields.String(validate=validate.OneOf(CHANNELS),
                            metadata={"labels": CHANNEL_LABELS})
    major = Boolean(metadata={"label": "Major incident"})
    workaround = fields.String(validate=validate.Length(max=20000))
    hold_kind = fields.String(validate=validate.OneOf(("", *HOLD_KINDS)),
                              metadata={"label": "Waiting for", "labels": HOLD_LABELS})
    hold_reason = fields.String(validate=validate.Length(max=500))
    resolution_code = fields.String(validate=validate.OneOf(("", *RESOLUTION_CODES)),
                                    metadata={"labels": RESOLUTION_LABELS})
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


def _waiting_for_customer(record: Record, actor: Actor, data: dict) -> str | None:
    if getattr(record, "hold_kind", "") != "customer":
        return "the incident waits for a supplier or a change, not for the customer"
    return None


def _requester_confirms(record: Record, actor: Actor, data: dict) -> str | None:
    if actor.role == "requester" and record.requester_id != actor.id:
        return "only the requester confirms the resolution"
    return None


WORKFLOW = Workflow(
    states=[
        State("new", stops=()),
        State("in_progress", "In progress", stops=("response",)),
        State("on_hold", "On hold", waiting=True, stops=("response",), customer=True),
        State("resolved", stops=("response", "resolution")),
        State("closed", final=True, stops=("response", "resolution")),
        State("cancelled", final=True, stops=("response", "resolution")),
    ],
    transitions=[
        Transition("start", ("new",), "in_progress", "Start work"),
        Transition("hold", ("new", "in_progress"), "on_hold", "Put on hold",
                   required=("hold_kind", "hold_reason")),
        Transition("resume", ("on_hold",), "in_progress", "Resume"),
        # The requester answered while the service desk waited for them: back to work.
        Transition("customer_replied", ("on_hold",), "in_progress", "Customer replied",
                   customer_reply=True, guards=(_waiting_for_customer,)),
        Transition("resolve", OPEN_STATES, "resolved", "Resolve",
                   required=("resolution_code", "resolution_notes"),
                   fields=("workaround",)),
        Transition("close", ("resolved",), "closed", "Confirm and close",
                   roles=("requester",), requester=True, guards=(_requester_confirms,),
                   destructive=True),
        Transition("reopen", ("resolved",), "in_progress", "Reopen", requester=True,
                   guards=(_within_reopen_window,)),
        Transition("cancel", OPEN_STATES, "cancelled", "Cancel", destructive=True),
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
                      suggest=True, derive=derive_priority, references=spine.REFERENCES,
                      major="major", filter_fields={"service": "affected_service"})
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
    escalate_along_paths(now)
    with itsm.Session() as session:
        return session.scalar(select(func.count()).select_from(Escalation)) - before


def _contacts_for(session: Session, incident: Incident, settings: dict, level: str,
                  step: EscalationStep | None) -> tuple[list[str], str, dict[str, str]]:
    """Who hears of this step, how the note names them, and which path named them
    (``{"kind": "agreed", "source": "MOU0000003"}`` or ``{"kind": "install"}``): the path
    agreed with the incident's agency (``itsm_escalation_path``, e.g. its MOU) when there
    is one, else the install's ``escalation_contacts``."""
    if step is not None:
        steps = [step]
    else:
        path = escalation_path(session, incident)
        if not path:
            contacts = list(settings["escalation_contacts"] or [])
            return contacts, f"management told ({', '.join(contacts) or 'no contacts set'})", \
                {"kind": "install", "source": ""}
        first = path[0].level
        steps = [s for s in path if s.level == first] if level == "warning" \
            else [s for s in path if s.after_minutes == 0]
        if not steps:  # the path's first level comes later: the periodic pass takes it
            return [], f"agreed path of {path[0].source}: its first level comes later", \
                {"kind": "agreed", "source": path[0].source}
    names = ", ".join(f"{s.role + ' ' if s.role else ''}{s.name} <{s.email}>" for s in steps)
    return [s.email for s in steps], f"escalated to {names} ({steps[0].source})", \
        {"kind": "agreed", "source": steps[0].source}


def _escalate_one(itsm, settings: dict, record_id: int, metric: str, level: str,
                  step: EscalationStep | None = None) -> None:
    """Take one step once; a second worker's (or a retried delivery's) is a no-op."""
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            session = service.session
            # The unique step row is the claim: a second worker's insert fails here.
            row = Escalation(record_id=record_id, metric=metric,
                             level=level if step is None else f"level-{step.level}")
            session.add(row)
            session.flush()
            incident = session.get(Incident, record_id)
            contacts, told, path = _contacts_for(session, incident, settings, level, step)
            what = "75 % of" if level == "warning" else "all of"
            if step is not None:
                note = (f"Escalated: the {metric} target has been breached for "
                        f"{step.after_minutes} minutes")
            elif level == "warning":
                note = f"Escalated: {what} the {metric} target is used"
            else:
                note = f"Escalated: the {metric} target is breached"
            actions = [told]
            breach_group = settings["breach_group"]
            if level == "breach" and step is None and breach_group:
                group_id = session.scalar(select(Group.id).where(Group.name == breach_group))
                if group_id is not None and group_id != incident.group_id:
                    service.update(incident, {"group": breach_group, "assignee": None})
                    actions.append(f"reassigned to {breach_group}")
            row.action = "; ".join(actions)[:300]
            service.comment(incident, f"{note}: {row.action}.", public=False)
            event = Event(name="incident.escalated", record_id=incident.id, actor_id=None,
                          payload={"record": {"number": incident.number, "type": "incident",
                                              "title": incident.title,
                                              "state": incident.state,
                                              "priority": incident.priority},
                                   "level": row.level, "metric": metric,
                                   "contacts": contacts, "action": row.action,
                                   # The mail says whose list named its reader.
                                   "path": path})
            session.add(event)
            service.events.append(event)
    except Conflict:
        return  # another worker took this step (the unit of work's IntegrityError)


def escalate_along_paths(now: datetime) -> int:
    """Take the later levels of agreed escalation paths whose time after the breach has
    come (a level with ``after_minutes`` 0 went at the breach); return how many."""
    itsm = current_itsm()
    settings = rules.settings()
    due: list[tuple[int, str, EscalationStep]] = []
    with itsm.Session() as session:
        breaches = session.execute(
            select(Escalation.record_id, Escalation.metric, Escalation.created_at)
            .join(Incident, Incident.id == Escalation.record_id)
            .where(Escalation.level == "breach", Incident.state.in_(OPEN_STATES))
            .order_by(Escalation.id).limit(500)).all()
        for record_id, metric, breached_at in breaches:
            taken = set(session.scalars(select(Escalation.level).where(
                Escalation.record_id == record_id, Escalation.metric == metric)))
            incident = session.get(Incident, record_id)
            for step in escalation_path(session, incident):
                if step.after_minutes > 0 and f"level-{step.level}" not in taken \
                        and breached_at + timedelta(minutes=step.after_minutes) <= now:
                    due.append((record_id, metric, step))
    for record_id, metric, step in due:
        _escalate_one(itsm, settings, record_id, metric, "breach", step)
    return len(due)


@hookimpl
def itsm_periodic(now: datetime) -> None:
    """Close quiet resolved incidents and take the later levels of agreed escalation
    paths (the first steps run from the outbox)."""
    auto_close(now)
    escalate_along_paths(now)


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
    from itsm.plugins.incident import admin, api, pages

    return [api.bp, *pages.blueprints(), admin.bp]


@hookimpl
def itsm_admin_pages() -> list:
    from itsm.plugins.incident.admin import PAGES

    return list(PAGES)


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


@hookimpl
def itsm_agency_sections(session: Session, agency_id: int, start: datetime,
                         end: datetime) -> list[AgencySection]:
    """Incidents of the agency: opened and resolved in the period, open now, the open
    major ones, and the requesters' satisfaction with the resolutions rated."""
    mine = (Incident.agency_id == agency_id,)
    opened = session.scalar(select(func.count()).select_from(Incident).where(
        *mine, Incident.created_at >= start, Incident.created_at < end))
    resolved = session.scalar(select(func.count()).select_from(Incident).where(
        *mine, Incident.resolved_at >= start, Incident.resolved_at < end))
    open_now = session.scalar(select(func.count()).select_from(Incident).where(
        *mine, Incident.state.in_(OPEN_STATES)))
    ratings = session.execute(select(func.count(), func.avg(Incident.satisfaction)).where(
        *mine, Incident.satisfaction.is_not(None), Incident.resolved_at >= start,
        Incident.resolved_at < end)).one()
    majors = session.execute(select(Incident.number, Incident.title).where(
        *mine, Incident.major.is_(True), Incident.state.in_(OPEN_STATES))
        .order_by(Incident.id)).all()
    satisfaction = f"{float(ratings[1]):.1f} / 5 from {ratings[0]} ratings" \
        if ratings[0] else "no rating yet"
    return [AgencySection("Incidents", facts=(
        ("Opened", str(opened)), ("Resolved", str(resolved)), ("Open now", str(open_now)),
        ("Open major incidents", str(len(majors))), ("Satisfaction", satisfaction)),
        items=tuple((f"Major incident {number}: {title}", f"/records/incidents/{number}")
                    for number, title in majors), order=20)]


@hookimpl
def itsm_satisfaction_ratings(session: Session, start: datetime,
                              end: datetime) -> list[Rating]:
    """The requesters' ratings of incidents resolved in the period."""
    rows = session.execute(
        select(Incident, Group.name, Agency.name)
        .outerjoin(Group, Group.id == Incident.group_id)
        .outerjoin(Agency, Agency.id == Incident.agency_id)
        .where(Incident.satisfaction.is_not(None), Incident.resolved_at >= start,
               Incident.resolved_at < end))
    labels: dict[str, str] = {}
    out = []
    for incident, group, agency in rows:
        service = incident.affected_service or ""
        if service and service not in labels:
            labels[service] = reference_label(session, "service", service)
        out.append(Rating(
            number=incident.number, type="incident", agency_id=incident.agency_id,
            agency=agency or "", group=group or "", service=labels.get(service, ""),
            score=int(incident.satisfaction), comment=incident.satisfaction_comment or "",
            rated_at=incident.resolved_at))
    return out
