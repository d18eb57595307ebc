"""The catalog plugin's hook implementations: record types and workflows of requests and
tasks, approvals, fulfillment in order or in parallel, SLA targets per offering."""

from __future__ import annotations

from marshmallow import Schema, fields
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    ApprovalScope,
    Group,
    LinkKind,
    NavItem,
    Permission,
    Record,
    RecordChange,
    RecordService,
    RecordType,
    SlaTarget,
    State,
    Transition,
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


class RequestSchema(Schema):
    offering_id = fields.Integer(required=True, metadata={
        "description": "the offering requested (GET /api/v1/catalog/services/<id>)"})
    answers = fields.Dict(keys=fields.String(), load_default=dict, metadata={
        "description": "answers to the offering's form, by field name"})
    service_id = fields.Integer(dump_only=True, allow_none=True)
    approval = fields.String(dump_only=True)
    decided_by = fields.String(dump_only=True)
    decided_at = fields.DateTime(dump_only=True, allow_none=True)
    response_minutes = fields.Integer(dump_only=True, allow_none=True)
    resolution_minutes = fields.Integer(dump_only=True, allow_none=True)
    fulfilled_at = fields.DateTime(dump_only=True, allow_none=True)


class TaskSchema(Schema):
    request_id = fields.Integer(dump_only=True, allow_none=True)
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
    if actor.role == "requester" and record.requester_id != actor.id:
        return "only the requester cancels their request"
    return None


REQUEST_WORKFLOW = Workflow(
    states=[
        State("submitted", "Waiting for approval", stops=()),
        State("in_fulfillment", "In fulfilment", stops=("response",)),
        State("fulfilled", "Done", final=True, stops=("response", "resolution")),
        State("rejected", final=True, stops=("response", "resolution")),
        State("cancelled", final=True, stops=("response", "resolution")),
    ],
    transitions=[
        Transition("approve", ("submitted",), "in_fulfillment", "Approve",
                   guards=(_may_decide,)),
        Transition("reject", ("submitted",), "rejected", "Reject", guards=(_may_decide,)),
        Transition("start", ("submitted",), "in_fulfillment", "Start fulfilment",
                   roles=("admin",), guards=(_needs_no_approval,)),
        Transition("fulfil", ("in_fulfillment",), "fulfilled", "Mark fulfilled",
                   roles=("agent",), guards=(_tasks_finished, _approval_holds)),
        Transition("cancel", ("submitted", "in_fulfillment"), "cancelled", "Cancel",
                   requester=True, guards=(_own_request,)),
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
        Transition("cancel", ("pending", "open", "in_progress"), "cancelled", "Cancel"),
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


def _on_request(session: Session, record: ServiceRequest, change: RecordChange) -> None:
    if change.kind == "created":
        if record.approval == "none":
            system_service(session).transition(record, "start")
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
    from itsm.plugins.catalog import api, pages

    return [api.bp, *pages.blueprints()]


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem]:
    items = [NavItem("Service catalog", "/portal/catalog", order=15),
             NavItem("My requests", "/portal/requests", order=16),
             NavItem("Approvals", "/portal/approvals", order=17)]
    if actor.role != "requester":
        items += [NavItem("Catalog feedback", "/catalog/feedback", order=61),
                  NavItem("Technical catalog", "/catalog/technical", order=62)]
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


