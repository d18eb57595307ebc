"""The catalog plugin's hook implementations: record types and workflows of requests and
tasks, approvals, fulfillment in order or in parallel, SLA targets per offering."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from marshmallow import Schema, fields
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    AgencySection,
    ApprovalScope,
    Charge,
    Event,
    EventMessage,
    Group,
    GroupMember,
    LinkKind,
    NavItem,
    Permission,
    Rate,
    Rating,
    Recipient,
    Record,
    RecordChange,
    RecordService,
    RecordType,
    SlaTarget,
    State,
    Transition,
    User,
    ValidationError,
    Workflow,
    current_itsm,
    hookimpl,
    utcnow,
)
from itsm.plugins.catalog.forms import checked_answers
from itsm.plugins.catalog.models import (
    Approver,
    FulfillmentTask,
    Offering,
    Service,
    ServiceAgency,
    ServiceRequest,
)

FULFILS = "fulfils"
FINAL_TASK_STATES = ("done", "cancelled")


def _offering_name(session: Session, record: Record, value: int) -> str | None:
    return session.scalar(select(Offering.name).where(Offering.id == value))


def _service_name(session: Session, record: Record, value: int) -> str | None:
    return session.scalar(select(Service.name).where(Service.id == value))


def _answers_table(session: Session, record: Record, value: dict) -> list[tuple[str, str]]:
    """A request's answers as (question, answer) pairs in the order of its form."""
    from itsm.plugins.catalog.forms import summary_of

    form = session.scalar(select(Offering.form).where(Offering.id == record.offering_id))
    return summary_of(form or [], value or {}) or [(k, str(v)) for k, v in value.items()]


APPROVAL_LABELS = {"none": "Not needed", "manager": "A manager of the requester's agency",
                   "service_owner": "The service owner", "group": "The approval group"}


class RequestSchema(Schema):
    # ``display`` and ``labels`` are what the console's record page shows (names, not ids).
    offering_id = fields.Integer(required=True, metadata={
        "description": "the offering requested (GET /api/v1/catalog/services/<id>)",
        "label": "Offering", "display": _offering_name})
    answers = fields.Dict(keys=fields.String(), load_default=dict, metadata={
        "description": "answers to the offering's form, by field name",
        "label": "Form answers", "display": _answers_table})
    service_id = fields.Integer(dump_only=True, allow_none=True,
                                metadata={"label": "Service", "display": _service_name})
    approval = fields.String(dump_only=True, metadata={"label": "Approval by",
                                                       "labels": APPROVAL_LABELS})
    decided_by = fields.String(dump_only=True)
    decided_at = fields.DateTime(dump_only=True, allow_none=True)
    response_minutes = fields.Integer(dump_only=True, allow_none=True)
    resolution_minutes = fields.Integer(dump_only=True, allow_none=True)
    fulfilled_at = fields.DateTime(dump_only=True, allow_none=True)
    satisfaction = fields.Integer(dump_only=True, allow_none=True)
    satisfaction_comment = fields.String(dump_only=True)


def _request_number(session: Session, record: Record, value: int) -> str | None:
    return session.scalar(select(Record.number).where(Record.id == value))


class TaskSchema(Schema):
    request_id = fields.Integer(dump_only=True, allow_none=True, metadata={
        "label": "Request", "display": _request_number})
    step = fields.Integer(dump_only=True)


# -- guards ----------------------------------------------------------------------------------


def approver_question(session: Session, record: ServiceRequest, actor: Actor) -> str | None:
    """Why ``actor`` may not approve or reject ``record`` (None: they may)."""
    if record.approval == "none":
        return "this request needs no approval"
    if actor.role == "admin":
        return None
    if actor.id is not None and actor.id == record.requester_id:
        return "nobody approves their own request"
    if record.approval == "manager":
        ok = actor.id is not None and session.scalar(select(Approver.user_id).where(
            Approver.agency_id == record.agency_id, Approver.user_id == actor.id)) is not None
        who = "a manager of the requester's agency"
    elif record.approval == "service_owner":
        owner = session.scalar(select(Service.owner_id).where(Service.id == record.service_id))
        ok = owner is not None and owner == actor.id
        who = "the service owner"
    else:
        group_id = session.scalar(select(Offering.approval_group_id).where(
            Offering.id == record.offering_id))
        ok = group_id is not None and group_id in actor.group_ids
        who = "the approval group"
    return None if ok else f"only {who} may approve or reject this request"


def _may_decide(record: Record, actor: Actor, data: dict) -> str | None:
    return approver_question(Session.object_session(record), record, actor)


# What an approver of a request approves: the offering and the answers to its form.
REQUEST_SCOPE = ApprovalScope("approval", ("offering_id", "answers"))


def _approval_holds(record: Record, actor: Actor, data: dict) -> str | None:
    """Guard of ``fulfil``: the request is still what its approver approved."""
    digest = getattr(record, "approved_digest", "")
    if not digest:
        return None
    now = REQUEST_SCOPE.values(record)
    if REQUEST_SCOPE.digest(now) == digest:
        return None
    changed = REQUEST_SCOPE.changes(record.approved_scope or {}, now)
    return (f"{record.number} differs from what {record.decided_by} approved: "
            f"{', '.join(changed)} changed since")


def _needs_no_approval(record: Record, actor: Actor, data: dict) -> str | None:
    if getattr(record, "approval", "none") != "none":
        return "this request waits for its approval"
    return None


def tasks_of(session: Session, request: Record) -> list[FulfillmentTask]:
    return list(session.scalars(select(FulfillmentTask).where(
        FulfillmentTask.request_id == request.id).order_by(FulfillmentTask.step,
                                                           FulfillmentTask.id)))


def _tasks_finished(record: Record, actor: Actor, data: dict) -> str | None:
    left = [t.number for t in tasks_of(Session.object_session(record), record)
            if t.state not in FINAL_TASK_STATES]
    if left:
        return "tasks are still open: " + ", ".join(left)
    return None


def _own_request(record: Record, actor: Actor, data: dict) -> str | None:
    if record.requester_id is not None and record.requester_id == actor.id:
        return None
    if actor.role == "requester":
        return "only the requester cancels their request"
    if actor.role == "admin" or record.assignee_id == actor.id \
            or (record.group_id is not None and record.group_id in actor.group_ids):
        return None
    # An approver decides; cancelling someone else's request is for the team that works it.
    if record.approval != "none" and approver_question(Session.object_session(record),
                                                       record, actor) is None:
        return "an approver approves or rejects; only the requester or the team " \
               "fulfilling it cancels this request"
    return None


REQUEST_WORKFLOW = Workflow(
    states=[
        State("submitted", "Waiting for approval", stops=()),
        State("in_fulfillment", "In fulfilment", stops=("response",)),
        # The fulfiller asked the requester something: the clocks wait with them.
        State("waiting", "Waiting for the requester", waiting=True, stops=("response",),
              customer=True),
        State("fulfilled", "Done", final=True, stops=("response", "resolution")),
        State("rejected", final=True, stops=("response", "resolution")),
        State("cancelled", final=True, stops=("response", "resolution")),
    ],
    transitions=[
        Transition("approve", ("submitted",), "in_fulfillment", "Approve",
                   guards=(_may_decide,)),
        Transition("reject", ("submitted",), "rejected", "Reject", guards=(_may_decide,),
                   destructive=True),
        Transition("start", ("submitted",), "in_fulfillment", "Start fulfilment",
                   roles=("admin",), guards=(_needs_no_approval,)),
        Transition("fulfil", ("in_fulfillment",), "fulfilled", "Mark fulfilled",
                   roles=("agent",), guards=(_tasks_finished, _approval_holds)),
        Transition("ask", ("in_fulfillment",), "waiting", "Wait for the requester",
                   roles=("agent",)),
        Transition("resume", ("waiting",), "in_fulfillment", "Resume", roles=("agent",)),
        # The requester's answer brings the request back to its fulfillers.
        Transition("requester_replied", ("waiting",), "in_fulfillment", "Requester replied",
                   customer_reply=True),
        Transition("cancel", ("submitted", "in_fulfillment", "waiting"), "cancelled",
                   "Cancel", requester=True, guards=(_own_request,), destructive=True),
    ],
)

TASK_WORKFLOW = Workflow(
    states=[
        State("pending", "Waiting for an earlier task", waiting=True, stops=()),
        State("open", "To do", stops=()),
        State("in_progress", "In progress", stops=("response",)),
        State("done", final=True, stops=("response", "resolution")),
        State("cancelled", final=True, stops=("response", "resolution")),
    ],
    transitions=[
        Transition("activate", ("pending",), "open", "Activate", roles=("admin",)),
        Transition("start", ("open",), "in_progress", "Start work"),
        Transition("complete", ("open", "in_progress"), "done", "Complete"),
        Transition("cancel", ("pending", "open", "in_progress"), "cancelled", "Cancel",
                   destructive=True),
    ],
)

REQUEST = RecordType(name="request", model=ServiceRequest, prefix="REQ",
                     collection="requests", workflow=REQUEST_WORKFLOW, schema=RequestSchema,
                     label="Request")
TASK = RecordType(name="task", model=FulfillmentTask, prefix="TSK", collection="tasks",
                  workflow=TASK_WORKFLOW, schema=TaskSchema, label="Task",
                  requester_roles=())


@hookimpl
def itsm_record_types() -> list[RecordType]:
    return [REQUEST, TASK]


@hookimpl
def itsm_link_kinds() -> list[LinkKind]:
    return [LinkKind(FULFILS, "fulfils", "fulfilled by")]


@hookimpl
def itsm_permissions() -> list[Permission]:
    return [
        # Replaces the automatic staff-only default: approvers of an agency and requesters
        # (cancelling their own) move requests too; the workflow's guards say who may what.
        Permission("request.transition", "approve, reject, cancel and fulfil requests",
                   ("agent", "requester")),
        Permission("catalog.manage", "edit the service catalog: categories, services, "
                   "offerings, approvers, import", ("service_manager",)),
        Permission("catalog.technical", "read and write the technical catalog",
                   ("agent", "service_manager")),
        Permission("catalog.feedback.review", "review and answer feedback on the catalog",
                   ("agent", "service_manager")),
        Permission("catalog.report", "see the catalog reports", ("agent", "service_manager")),
    ]


# -- fulfillment -----------------------------------------------------------------------------


def system_service(session: Session) -> RecordService:
    """A record service acting as the system, in the caller's transaction."""
    return RecordService(current_itsm(), session, Actor.system())


def may_request(session: Session, service_id: int, agency_id: int | None) -> bool:
    """Whether users of ``agency_id`` may request the service (no agency list: everyone)."""
    agencies = set(session.scalars(select(ServiceAgency.agency_id).where(
        ServiceAgency.service_id == service_id)))
    return not agencies or agency_id in agencies


def _check_new_request(session: Session, record: ServiceRequest, actor: Actor) -> Offering:
    offering = session.get(Offering, record.offering_id) if record.offering_id else None
    service = session.get(Service, offering.service_id) if offering else None
    if offering is None or service is None or not offering.active:
        raise ValidationError("no such offering can be requested",
                              fields={"offering_id": ["unknown or withdrawn offering"]})
    if service.status != "live":
        raise ValidationError(f"{service.name} is not live: it cannot be requested yet",
                              fields={"offering_id": ["the service is not live"]})
    if not may_request(session, service.id, record.agency_id):
        raise ValidationError(f"{service.name} is not offered to this agency",
                              fields={"offering_id": ["not offered to your agency"]})
    record.answers = checked_answers(offering.form, record.answers or {})
    record.service_id = service.id
    record.approval = offering.approval
    record.response_minutes = offering.response_minutes
    record.resolution_minutes = offering.resolution_minutes
    return offering


def _create_tasks(session: Session, request: ServiceRequest) -> None:
    offering = session.get(Offering, request.offering_id)
    if offering is None or not offering.tasks:
        return
    service = system_service(session)
    requester = service.ref("user", request.requester_id)
    agency = service.ref("agency", request.agency_id)
    for index, definition in enumerate(offering.tasks):
        group = definition.get("group") or None
        if group and session.scalar(select(Group.id).where(Group.name == group)) is None:
            group = None  # a group renamed since: the task waits unassigned for the desk
        task = service.create("task", {
            "title": f"{definition['title']} ({request.number})"[:300],
            "description": definition.get("instructions", ""),
            "group": group, "requester": requester, "agency": agency,
            "priority": request.priority}, preset={
            "request_id": request.id,
            "step": 1 if offering.task_order == "parallel" else index + 1})
        service.link(task, request.number, FULFILS)
    _advance(session, request)


def _advance(session: Session, request: ServiceRequest) -> None:
    """Open the next step's tasks once every earlier one is finished; with none left,
    the request is fulfilled."""
    tasks = tasks_of(session, request)
    if any(t.state in ("open", "in_progress") for t in tasks):
        return
    pending = [t for t in tasks if t.state == "pending"]
    service = system_service(session)
    if pending:
        step = min(t.step for t in pending)
        for task in pending:
            if task.step == step:
                service.transition(task, "activate")
        return
    if request.state == "in_fulfillment":
        service.transition(request, "fulfil", comment="All tasks are done: your request is "
                           "fulfilled.")


@hookimpl
def itsm_record_prepare(session: Session, record: Record, change: RecordChange) -> None:
    """A new request checked against its offering and given the offering's approval and
    targets; a submitted request's offering and answers fixed; who decided and when, and
    when it was fulfilled, stamped with the transition."""
    if record.type != REQUEST.name:
        return
    if change.kind == "created":
        _check_new_request(session, record, change.actor)
    elif change.kind == "updated" and {"offering_id", "answers"} & set(change.changes):
        raise ValidationError("the offering and the answers of a request are fixed once it "
                              "is submitted; cancel it and request again",
                              fields={k: ["fixed once submitted"]
                                      for k in ("offering_id", "answers")
                                      if k in change.changes})
    elif change.kind == "transitioned":
        if change.transition in ("approve", "reject"):
            record.decided_by = change.actor.email
            record.decided_at = utcnow()
        if change.transition == "approve":
            record.approved_scope = REQUEST_SCOPE.values(record)
            record.approved_digest = REQUEST_SCOPE.digest(record.approved_scope)
        elif change.transition == "fulfil":
            record.fulfilled_at = utcnow()


def _approvers(session: Session, record: ServiceRequest) -> list[str]:
    """The addresses of those who may approve ``record`` (its requester left out)."""
    if record.approval == "manager":
        people = select(Approver.user_id).where(Approver.agency_id == record.agency_id)
    elif record.approval == "service_owner":
        people = select(Service.owner_id).where(Service.id == record.service_id)
    else:
        people = select(GroupMember.user_id).join(
            Offering, Offering.approval_group_id == GroupMember.group_id).where(
            Offering.id == record.offering_id)
    return sorted(session.scalars(select(User.email).where(
        User.id.in_(people), User.id != (record.requester_id or 0), User.active.is_(True))))


def _ask_approval(session: Session, record: ServiceRequest, actor: Actor) -> None:
    """Tell the approvers that a request waits for them (``request.approval_requested``,
    with ``approvers``: the core's inbox shows it to each of them)."""
    approvers = _approvers(session, record)
    if not approvers:
        return
    event = Event(name="request.approval_requested", record_id=record.id,
                  actor_id=actor.id, payload={
                      "record": {"number": record.number, "type": record.type,
                                 "title": record.title, "state": record.state,
                                 "priority": record.priority},
                      "actor": actor.email, "approvers": approvers})
    session.add(event)
    session.info.setdefault("itsm_events", []).append(event)


def _on_request(session: Session, record: ServiceRequest, change: RecordChange) -> None:
    if change.kind == "created":
        if record.approval == "none":
            system_service(session).transition(record, "start")
        elif record.state == "submitted":
            _ask_approval(session, record, change.actor)
        return
    if change.kind != "transitioned":
        return
    if change.transition in ("approve", "start"):
        _create_tasks(session, record)
    elif change.transition == "cancel":
        service = system_service(session)
        for task in tasks_of(session, record):
            if task.state not in FINAL_TASK_STATES:
                service.transition(task, "cancel", comment=f"{record.number} was cancelled.")


@hookimpl
def itsm_record_changed(session: Session, record: Record, change: RecordChange) -> None:
    """A request without approval starts; an approved or started one gets its tasks; a
    cancelled one cancels them; a finished task moves its request on."""
    if isinstance(record, ServiceRequest):
        _on_request(session, record, change)
    elif (isinstance(record, FulfillmentTask) and change.kind == "transitioned"
          and change.transition in ("complete", "cancel") and record.request_id):
        request = session.get(ServiceRequest, record.request_id)
        if request is not None and request.state == "in_fulfillment":
            _advance(session, request)


@hookimpl
def itsm_sla_policy(record: Record, metric: str) -> SlaTarget | None:
    """Requests are measured against their offering's targets (copied at submission)."""
    if getattr(record, "type", None) != "request" or metric not in ("response", "resolution"):
        return None
    minutes = getattr(record, f"{metric}_minutes", None)
    if minutes is None:
        return None
    calendar = current_itsm().plugin_settings("catalog")["sla_calendar"]
    return SlaTarget(metric=metric, minutes=int(minutes), calendar=calendar,
                     source=f"catalog offering {record.offering_id}")


# -- services for other plugins ----------------------------------------------------------------


@hookimpl
def itsm_reference_kinds():
    """The catalog provides the kind ``service`` (priority 100)."""
    from itsm.plugins.catalog.references import kinds

    return kinds()


# -- web, CLI, data --------------------------------------------------------------------------


@hookimpl
def itsm_blueprints():
    from itsm.plugins.catalog import admin, api, pages

    return [api.bp, *pages.blueprints(), admin.bp]


@hookimpl
def itsm_admin_pages() -> list:
    # The catalog's own administration, open to catalog managers (catalog.manage).
    from itsm.plugins.catalog.admin import PAGES

    return list(PAGES)


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem]:
    items = [NavItem("Service catalog", "/portal/catalog", order=15, group="portal"),
             NavItem("My requests", "/portal/requests", order=16, group="portal"),
             NavItem("Request approvals", "/portal/approvals", order=17, group="work")]
    if actor.role != "requester":
        items += [NavItem("Catalog feedback", "/catalog/feedback", order=61, group="work"),
                  NavItem("Technical catalog", "/catalog/technical", order=62,
                          group="process")]
    return items


@hookimpl
def itsm_cli_commands():
    from itsm.plugins.catalog import cli

    return [cli.catalog]


@hookimpl
def itsm_install_defaults(ctx) -> None:
    from itsm.plugins.catalog import demo

    demo.install_defaults(ctx)


@hookimpl(tryfirst=True)  # services first: other plugins' demo records refer to them
def itsm_demo_data(ctx) -> None:
    from itsm.plugins.catalog import demo

    demo.load(ctx)




@hookimpl
def itsm_service_rates(session: Session) -> list[Rate]:
    """The catalog's priced services, for a plugin that bills agencies."""
    services = session.scalars(select(Service).where(
        Service.price.is_not(None), Service.billing_period != "").order_by(Service.id))
    return [Rate(service_id=str(s.id), service=s.name, price=s.price, currency=s.currency,
                 unit=s.rate_unit, period=s.billing_period) for s in services]


@hookimpl
def itsm_billable_charges(session: Session, start: datetime, end: datetime,
                          agency_id: int | None) -> list[Charge]:
    """Requests fulfilled in the period under a service priced per request.

    The quantity is the answer to the offering's form field ``quantity`` when it has one
    (five mailboxes), else one."""
    query = (select(ServiceRequest, Service, Offering)
             .join(Service, Service.id == ServiceRequest.service_id)
             .outerjoin(Offering, Offering.id == ServiceRequest.offering_id)
             .where(ServiceRequest.state == "fulfilled",
                    ServiceRequest.fulfilled_at >= start, ServiceRequest.fulfilled_at < end,
                    ServiceRequest.agency_id.is_not(None), Service.price.is_not(None),
                    Service.billing_period.in_(("one_time", "per_use"))))
    if agency_id is not None:
        query = query.where(ServiceRequest.agency_id == agency_id)
    charges = []
    for request, service, offering in session.execute(query):
        amount = str((request.answers or {}).get("quantity", "1")).strip()
        units = Decimal(amount) if amount.isdigit() and 0 < int(amount) <= 100_000 \
            else Decimal(1)
        charges.append(Charge(
            key=f"request:{request.number}", agency_id=request.agency_id,
            service_id=str(service.id), service=service.name,
            description=f"{request.number} {offering.name if offering else service.name}",
            quantity=units, unit_price=service.price, currency=service.currency,
            occurred_at=request.fulfilled_at))
    return charges


@hookimpl
def itsm_agency_sections(session: Session, agency_id: int, start: datetime,
                         end: datetime) -> list[AgencySection]:
    """Requests of the agency: made and fulfilled in the period, in flight now."""
    mine = (ServiceRequest.agency_id == agency_id,)
    made = session.scalar(select(func.count()).select_from(ServiceRequest).where(
        *mine, ServiceRequest.created_at >= start, ServiceRequest.created_at < end))
    fulfilled = session.scalar(select(func.count()).select_from(ServiceRequest).where(
        *mine, ServiceRequest.fulfilled_at >= start, ServiceRequest.fulfilled_at < end))
    in_flight = session.scalar(select(func.count()).select_from(ServiceRequest).where(
        *mine, ServiceRequest.state.in_(("submitted", "in_fulfillment"))))
    waiting = session.scalar(select(func.count()).select_from(ServiceRequest).where(
        *mine, ServiceRequest.state == "submitted"))
    return [AgencySection("Requests", facts=(
        ("Made", str(made)), ("Fulfilled", str(fulfilled)), ("In flight", str(in_flight)),
        ("Waiting for approval", str(waiting))), order=30)]


@hookimpl
def itsm_satisfaction_ratings(session: Session, start: datetime,
                              end: datetime) -> list[Rating]:
    """The requesters' ratings of requests fulfilled in the period."""
    rows = session.execute(
        select(ServiceRequest, Group.name, Agency.name, Service.name)
        .outerjoin(Group, Group.id == ServiceRequest.group_id)
        .outerjoin(Agency, Agency.id == ServiceRequest.agency_id)
        .outerjoin(Service, Service.id == ServiceRequest.service_id)
        .where(ServiceRequest.satisfaction.is_not(None),
               ServiceRequest.fulfilled_at >= start, ServiceRequest.fulfilled_at < end))
    return [Rating(number=r.number, type="request", agency_id=r.agency_id,
                   agency=agency or "", group=group or "", service=service or "",
                   score=int(r.satisfaction), comment=r.satisfaction_comment or "",
                   rated_at=r.fulfilled_at)
            for r, group, agency, service in rows]


@hookimpl
def itsm_notification_recipients(event: EventMessage) -> list[Recipient] | None:
    """Feedback on the catalog: its reviewers hear of it, its author of the answer, by
    e-mail (the addresses are in the event, chosen when it was written)."""
    if event.name not in ("catalog.feedback.submitted", "catalog.feedback.answered"):
        return None
    if "email" not in current_itsm().channels:
        return []
    return [Recipient("email", str(a)) for a in event.payload.get("recipients", [])]
