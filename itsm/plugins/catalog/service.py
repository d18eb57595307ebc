"""The catalog's service layer: every read and write of services, offerings, feedback
and technical documents, from the API, the portal and the CLI alike, with its permission
check. Functions take the caller's :class:`~itsm.core.records.RecordService` (actor,
session and permission check of one unit of work).

For a transition-gate plugin: :func:`set_service_status` moves a service to ``live``
(``PATCH /api/v1/catalog/services/<id>`` does the same over HTTP); other plugins reach it
as the reference kind ``service`` (``request_reference_status``), and may veto a status
change with ``itsm_reference_status_guard`` (checked in :func:`save_service`).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import marshmallow
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    MAX_DB_INTEGER,
    Agency,
    Boolean,
    Conflict,
    Event,
    Forbidden,
    Group,
    InputError,
    NotFound,
    RecordService,
    User,
    ValidationError,
    check_reference_status,
    parse_int,
    record_admin_audit,
    reference_changed,
    utcnow,
)
from itsm.plugin import load_input as load
from itsm.plugins.catalog.forms import (
    FieldDefinition,
    check_definition,
    checked_answers,
    summary_of,
)
from itsm.plugins.catalog.models import (
    APPROVALS,
    BILLING_PERIODS,
    DOCUMENT_KINDS,
    FEEDBACK_KINDS,
    FEEDBACK_STATES,
    SERVICE_STATUSES,
    TASK_ORDERS,
    Approver,
    Category,
    DocumentVersion,
    Feedback,
    Offering,
    Service,
    ServiceAgency,
    ServiceRequest,
    TechnicalDocument,
)
from itsm.plugins.catalog.references import service_ref

SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,99}$",
                       error="use lower-case letters, digits and - (at most 100)")
URL = validate.Regexp(r"^(https?://\S+|/\S*)?$", error="a web address (https://...)")




class ServiceIn(Schema):
    class Meta:
        unknown = RAISE

    slug = fields.String(required=True, validate=SLUG)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    summary = fields.String(validate=validate.Length(max=500))
    description = fields.String(validate=validate.Length(max=50000))
    category = fields.String(allow_none=True, validate=validate.Length(max=100))
    owner = fields.Email(allow_none=True)
    support_hours = fields.String(validate=validate.Length(max=200))
    agencies = fields.List(fields.String(validate=validate.Length(min=1, max=32)),
                           metadata={"description": "agency codes; empty: everyone"})
    rate_unit = fields.String(validate=validate.Length(max=100))
    price = fields.Decimal(places=2, allow_none=True, as_string=True,
                           validate=validate.Range(0, 10**9))
    currency = fields.String(validate=validate.Length(equal=3))
    billing_period = fields.String(validate=validate.OneOf(BILLING_PERIODS))
    cost_notes = fields.String(validate=validate.Length(max=5000))
    faq_url = fields.String(validate=[validate.Length(max=500), URL])
    help_url = fields.String(validate=[validate.Length(max=500), URL])
    status = fields.String(validate=validate.OneOf(SERVICE_STATUSES))
    resolver_group = fields.String(allow_none=True, validate=validate.Length(max=100),
                                   metadata={"description": "the group (name) that resolves "
                                             "the service's incidents; null: none"})


class TaskDefinition(Schema):
    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    group = fields.String(load_default="", validate=validate.Length(max=100))
    instructions = fields.String(load_default="", validate=validate.Length(max=5000))


class OfferingIn(Schema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=SLUG)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=20000))
    form = fields.List(fields.Nested(FieldDefinition), load_default=list, metadata={
        "description": "the request form: its fields, in order"})
    approval = fields.String(load_default="none", validate=validate.OneOf(APPROVALS))
    approval_group = fields.String(allow_none=True, validate=validate.Length(max=100))
    tasks = fields.List(fields.Nested(TaskDefinition), load_default=list)
    task_order = fields.String(load_default="sequential", validate=validate.OneOf(TASK_ORDERS))
    response_minutes = fields.Integer(allow_none=True, validate=validate.Range(0, 10**6))
    resolution_minutes = fields.Integer(allow_none=True, validate=validate.Range(0, 10**7))
    active = Boolean(load_default=True)


class FeedbackIn(Schema):
    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, validate=validate.OneOf(FEEDBACK_KINDS))
    body = fields.String(required=True, validate=validate.Length(min=3, max=5000))


class ReviewIn(Schema):
    class Meta:
        unknown = RAISE

    state = fields.String(required=True, validate=validate.OneOf(FEEDBACK_STATES))
    answer = fields.String(load_default="", validate=validate.Length(max=5000))


class DocumentIn(Schema):
    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(load_default="runbook", validate=validate.OneOf(DOCUMENT_KINDS))
    owner = fields.Email(allow_none=True)
    review_due = fields.Date(allow_none=True)
    body = fields.String(required=True, validate=validate.Length(min=1, max=200000))
    note = fields.String(load_default="", validate=validate.Length(max=500))


class VersionIn(Schema):
    class Meta:
        unknown = RAISE

    body = fields.String(required=True, validate=validate.Length(min=1, max=200000))
    note = fields.String(load_default="", validate=validate.Length(max=500))
    review_due = fields.Date(allow_none=True)


# -- lookups ---------------------------------------------------------------------------------


def is_manager(svc: RecordService) -> bool:
    return svc.can("catalog.manage")


def _user_id(session: Session, email: str | None, field: str) -> int | None:
    if not email:
        return None
    found = session.scalar(select(User.id).where(User.email == email.strip().lower()))
    if found is None:
        raise ValidationError(f"no user {email}", fields={field: ["unknown user"]})
    return found


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _requestable_by(agency_id: int | None):
    """SQL: services without an agency list, or listing ``agency_id``."""
    listed = exists().where(ServiceAgency.service_id == Service.id)
    if agency_id is None:
        return ~listed
    return or_(~listed, exists().where(ServiceAgency.service_id == Service.id,
                                       ServiceAgency.agency_id == agency_id))


def portal_services(svc: RecordService, *, q: str | None = None,
                    category_id: int | None = None, agency_id: int | None = None,
                    limit: int = 200) -> list[Service]:
    """Live services the actor may request (requesters: their agency's), filtered by a
    search text, a category or an agency, by name."""
    stmt = select(Service).where(Service.status == "live")
    if svc.actor.role == "requester":
        stmt = stmt.where(_requestable_by(svc.actor.agency_id))
    if agency_id is not None:
        stmt = stmt.where(_requestable_by(agency_id))
    if category_id is not None:
        stmt = stmt.where(Service.category_id == category_id)
    for word in (q or "").split()[:8]:
        pattern = f"%{_escape(word[:100])}%"
        offered = exists().where(Offering.service_id == Service.id, Offering.active.is_(True),
                                 Offering.name.ilike(pattern, escape="\\"))
        stmt = stmt.where(or_(Service.name.ilike(pattern, escape="\\"),
                              Service.summary.ilike(pattern, escape="\\"),
                              Service.description.ilike(pattern, escape="\\"), offered))
    return list(svc.session.scalars(stmt.order_by(Service.name).limit(limit)))


def most_requested(svc: RecordService, limit: int = 5) -> list[tuple[Service, int]]:
    """The live services requested most over the last ``most_requested_days`` days."""
    from datetime import timedelta

    days = int(svc.itsm.plugin_settings("catalog")["most_requested_days"])
    since = utcnow() - timedelta(days=days)
    visible = [s.id for s in portal_services(svc, limit=1000)]
    if not visible:
        return []
    rows = svc.session.execute(
        select(ServiceRequest.service_id, func.count(ServiceRequest.id).label("n"))
        .where(ServiceRequest.service_id.in_(visible), ServiceRequest.created_at >= since)
        .group_by(ServiceRequest.service_id)
        .order_by(func.count(ServiceRequest.id).desc(), ServiceRequest.service_id)
        .limit(limit)).all()
    return [(svc.session.get(Service, sid), n) for sid, n in rows]


def categories(svc: RecordService) -> list[tuple[Category, int]]:
    """Categories with the number of services the actor sees in each."""
    counts: dict[int | None, int] = {}
    for service in portal_services(svc, limit=10000):
        counts[service.category_id] = counts.get(service.category_id, 0) + 1
    cats = svc.session.scalars(select(Category).order_by(Category.position, Category.name))
    return [(c, counts.get(c.id, 0)) for c in cats]


def get_service(svc: RecordService, key: str | int) -> Service:
    """A service by id or slug; others than catalog managers and staff see live ones
    they may request only (else NotFound)."""
    key = str(key)[:100]
    try:
        which = Service.id == parse_int(key, "service", minimum=1, maximum=MAX_DB_INTEGER)
    except InputError:
        which = Service.slug == key
    service = svc.session.scalar(select(Service).where(which))
    if service is None or not visible(svc, service):
        raise NotFound(f"no service {key}")
    return service


def visible(svc: RecordService, service: Service) -> bool:
    if svc.is_staff:
        return True
    from itsm.plugins.catalog.hooks import may_request

    return service.status == "live" and may_request(svc.session, service.id,
                                                     svc.actor.agency_id)


def get_offering(svc: RecordService, offering_id: int, service: Service | None = None) \
        -> Offering:
    offering = svc.session.get(Offering, offering_id)
    if offering is None or (service is not None and offering.service_id != service.id):
        raise NotFound(f"no offering {offering_id}")
    get_service(svc, offering.service_id)  # visibility of its service
    if not offering.active and not svc.is_staff:
        raise NotFound(f"no offering {offering_id}")
    return offering


def offerings_of(svc: RecordService, service: Service) -> list[Offering]:
    stmt = select(Offering).where(Offering.service_id == service.id)
    if not svc.is_staff:
        stmt = stmt.where(Offering.active.is_(True))
    return list(svc.session.scalars(stmt.order_by(Offering.name)))


# -- writing the catalog -----------------------------------------------------------------------


def ensure_category(session: Session, name: str, description: str = "",
                    position: int = 0) -> Category:
    found = session.scalar(select(Category).where(Category.name == name))
    if found is None:
        found = Category(name=name, description=description, position=position)
        session.add(found)
        session.flush()
    return found


def save_category(svc: RecordService, data: Any) -> Category:
    svc.require("catalog.manage")
    values = load(Schema.from_dict({
        "name": fields.String(required=True, validate=validate.Length(min=1, max=100)),
        "description": fields.String(load_default="", validate=validate.Length(max=5000)),
        "position": fields.Integer(load_default=0)})(unknown=RAISE), data)
    category = svc.session.scalar(select(Category).where(Category.name == values["name"]))
    before = None if category is None else \
        {"description": category.description, "position": category.position}
    category = category or ensure_category(svc.session, values["name"])
    category.description = values["description"]
    category.position = values["position"]
    record_admin_audit(svc.session, svc.actor, "catalog.category.save",
                       f"category {category.name}", before,
                       {"description": category.description, "position": category.position})
    return category


def _audited(service: Service | Offering) -> dict[str, Any]:
    """A service's or offering's own columns, for the admin audit's before and after."""
    skip = {"id", "created_at", "updated_at", "service_id"}
    return {c.key: getattr(service, c.key) for c in service.__table__.columns
            if c.key not in skip}


def save_service(svc: RecordService, data: Any, service: Service | None = None) -> Service:
    """Create a service, or change ``service`` (only the fields sent)."""
    svc.require("catalog.manage")
    values = load(ServiceIn(), data, partial=service is not None)
    session = svc.session
    before = _audited(service) if service is not None else None
    if service is None:
        if session.scalar(select(Service.id).where(Service.slug == values["slug"])):
            raise Conflict(f"a service {values['slug']} exists already",
                           fields={"slug": ["taken"]})
        service = Service(slug=values["slug"], name=values["name"], status="")
        values.setdefault("status", "planned")
        session.add(service)
    elif "slug" in values and values["slug"] != service.slug and session.scalar(
            select(Service.id).where(Service.slug == values["slug"])):
        raise Conflict(f"a service {values['slug']} exists already", fields={"slug": ["taken"]})
    if "status" in values and values["status"] != (previous := service.status or ""):
        # Other plugins may hold a service back (a transition gate vetoes "live"); they
        # know it by its stable id, which a rename in the same change does not move.
        session.flush()
        check_reference_status(session, service_ref(service, previous), values["status"],
                               svc.actor)
    renamed = service.id is not None and any(
        key in values and values[key] != getattr(service, key) for key in ("slug", "name"))
    retired = values.get("status") == "retired" and service.status != "retired"
    if "resolver_group" in values:
        values["resolver_group_id"] = _group_id(session, values.pop("resolver_group"))
    if "category" in values:
        category = values.pop("category")  # empty or null: no category
        values["category_id"] = ensure_category(session, category).id if category else None
    if "owner" in values:
        values["owner_id"] = _user_id(session, values.pop("owner"), "owner")
    agencies = values.pop("agencies", None)
    for key, value in values.items():
        setattr(service, key, value)
    service.updated_at = utcnow()
    session.flush()
    if agencies is not None:
        _set_agencies(session, service, agencies)
    record_admin_audit(session, svc.actor, "catalog.service.save", f"service {service.slug}",
                       before, {**_audited(service)}
                       | ({"agencies": agencies} if agencies is not None else {}))
    if renamed:
        reference_changed(session, service_ref(service), "renamed")
    if retired:
        reference_changed(session, service_ref(service), "retired")
    return service


def _group_id(session: Session, name: str | None) -> int | None:
    if not name:
        return None
    found = session.scalar(select(Group.id).where(Group.name == name))
    if found is None:
        raise ValidationError(f"no group {name}", fields={"resolver_group": ["unknown group"]})
    return found


def _set_agencies(session: Session, service: Service, codes: list[str]) -> None:
    ids = []
    unknown = []
    for code in dict.fromkeys(codes):
        found = session.scalar(select(Agency.id).where(Agency.code == code))
        (ids.append(found) if found is not None else unknown.append(code))
    if unknown:
        raise ValidationError("unknown agencies: " + ", ".join(unknown),
                              fields={"agencies": [f"unknown agency {c}" for c in unknown]})
    for row in session.scalars(select(ServiceAgency).where(
            ServiceAgency.service_id == service.id)):
        session.delete(row)
    session.flush()
    for agency_id in ids:
        session.add(ServiceAgency(service_id=service.id, agency_id=agency_id))
    session.flush()


def set_service_status(svc: RecordService, key: str | int, status: str) -> Service:
    """Move a service to ``status`` (planned, in_transition, live, retired).

    The entry point of a transition-gate plugin: going ``live`` publishes the service in
    the portal; ``retired`` removes it. Needs ``catalog.manage``.
    """
    service = get_service(svc, key)
    return save_service(svc, {"status": status}, service)


def save_offering(svc: RecordService, service: Service, data: Any,
                  offering: Offering | None = None) -> Offering:
    """Create or change an offering of ``service``; its form definition is checked."""
    svc.require("catalog.manage")
    # A change may leave out any field of the offering, but not of a task it sends: the
    # task list replaces the stored one whole (``partial=True`` would reach the tasks too).
    values = load(OfferingIn(), data,
                  partial=tuple(OfferingIn().fields) if offering is not None else False)
    session = svc.session
    if "form" in values:
        try:
            values["form"] = check_definition(values["form"])
        except marshmallow.ValidationError as exc:
            raise ValidationError("invalid form definition", fields={"form": exc.messages}) \
                from None
    if "approval_group" in values:
        name = values.pop("approval_group")
        values["approval_group_id"] = None
        if name:
            values["approval_group_id"] = session.scalar(select(Group.id).where(
                Group.name == name))
            if values["approval_group_id"] is None:
                raise ValidationError(f"no group {name}",
                                      fields={"approval_group": ["unknown group"]})
    if "tasks" in values:
        names = {t["group"] for t in values["tasks"] if t["group"]}
        known = set(session.scalars(select(Group.name).where(Group.name.in_(names))))
        if names - known:
            raise ValidationError("unknown groups: " + ", ".join(sorted(names - known)),
                                  fields={"tasks": ["unknown group " + n
                                                    for n in sorted(names - known)]})
    before = _audited(offering) if offering is not None else None
    if offering is None:
        if session.scalar(select(Offering.id).where(Offering.service_id == service.id,
                                                    Offering.code == values["code"])):
            raise Conflict(f"{service.slug} has an offering {values['code']} already",
                           fields={"code": ["taken"]})
        offering = Offering(service_id=service.id, code=values["code"], name=values["name"])
        session.add(offering)
    approval = values.get("approval", offering.approval)
    group_id = values.get("approval_group_id", offering.approval_group_id)
    if approval == "group" and group_id is None:
        raise ValidationError("a group approval needs approval_group",
                              fields={"approval_group": ["required for a group approval"]})
    for key, value in values.items():
        setattr(offering, key, value)
    session.flush()
    record_admin_audit(session, svc.actor, "catalog.offering.save",
                       f"offering {service.slug}/{offering.code}", before, _audited(offering))
    return offering


def set_approver(svc: RecordService, agency_code: str, email: str, *, remove: bool = False) \
        -> None:
    """Make a user a manager who approves the requests of an agency (or no longer)."""
    svc.require("catalog.manage")
    agency_id = svc.session.scalar(select(Agency.id).where(Agency.code == agency_code))
    if agency_id is None:
        raise ValidationError(f"no agency {agency_code}", fields={"agency": ["unknown agency"]})
    user_id = _user_id(svc.session, email, "user")
    row = svc.session.get(Approver, (agency_id, user_id))
    if remove and row is not None:
        svc.session.delete(row)
    elif not remove and row is None:
        svc.session.add(Approver(agency_id=agency_id, user_id=user_id))
    svc.session.flush()


# -- requests --------------------------------------------------------------------------------


def submit_request(svc: RecordService, offering: Offering, answers: Any,
                   title: str | None = None, description: str = "") -> ServiceRequest:
    """Request ``offering`` with the answers to its form; field errors come back as a
    ValidationError with ``fields={"answers": {name: [messages]}}``."""
    service = get_service(svc, offering.service_id)
    if service.status != "live":
        raise ValidationError(f"{service.name} is not live: it cannot be requested yet",
                              fields={"offering_id": ["the service is not live"]})
    checked = checked_answers(offering.form, answers)
    lines = [f"{label}: {value}" for label, value in summary_of(offering.form, checked)]
    text = "\n".join(filter(None, [description.strip(), "\n".join(lines)]))
    record = svc.create("request", {"title": (title or f"{offering.name}: {service.name}")[:300],
                                    "description": text, "offering_id": offering.id,
                                    "answers": checked})
    assert isinstance(record, ServiceRequest)
    return record


def waiting_for(svc: RecordService) -> list[ServiceRequest]:
    """Requests waiting for an approval the actor may give."""
    from itsm.plugins.catalog.hooks import approver_question

    rows = svc.session.scalars(select(ServiceRequest).where(
        ServiceRequest.state == "submitted").order_by(ServiceRequest.id).limit(500))
    return [r for r in rows if svc.can("request.read", r)
            and approver_question(svc.session, r, svc.actor) is None]


# -- feedback ----------------------------------------------------------------------------------


def give_feedback(svc: RecordService, service: Service, data: Any) -> Feedback:
    """Any signed-in user: a problem with the entry, a comment or a suggestion."""
    values = load(FeedbackIn(), data)
    feedback = Feedback(service_id=service.id, kind=values["kind"], body=values["body"],
                        author_id=svc.actor.id, state="new")
    svc.session.add(feedback)
    svc.session.flush()
    reviewers = set(svc.session.scalars(select(User.email).where(
        User.active.is_(True), User.role == "service_manager")))
    owner = svc.session.get(User, service.owner_id) if service.owner_id else None
    if owner is not None and owner.active:
        reviewers.add(owner.email)
    _announce(svc, FEEDBACK_SUBMITTED, feedback, service, sorted(reviewers))
    return feedback


#: Outbox events of feedback: to its reviewers when given, to its author when answered.
FEEDBACK_SUBMITTED = "catalog.feedback.submitted"
FEEDBACK_ANSWERED = "catalog.feedback.answered"


def _announce(svc: RecordService, name: str, feedback: Feedback, service: Service,
              recipients: list[str]) -> None:
    """Queue the feedback's news in the outbox, in the same transaction; the catalog's
    ``itsm_notification_recipients`` sends it to ``recipients``."""
    if not recipients:
        return
    svc.session.add(Event(name=name, record_id=None, actor_id=svc.actor.id,
                          created_at=utcnow(), payload={
                              "feedback": feedback.id, "service": service.name,
                              "kind": feedback.kind, "state": feedback.state,
                              "body": feedback.body[:2000], "answer": feedback.answer[:2000],
                              "actor": svc.actor.email, "recipients": recipients,
                              # Reviewers work in the queue; the author reads the answer
                              # beside the feedback form, where they gave it.
                              "link_path": "/catalog/feedback" if name == FEEDBACK_SUBMITTED
                              else f"/portal/catalog/services/{service.slug}/feedback"}))


def review_queue(svc: RecordService, state: str | None = "new") -> list[Feedback]:
    svc.require("catalog.feedback.review")
    stmt = select(Feedback)
    if state:
        if state not in FEEDBACK_STATES:
            raise ValidationError(f"unknown state {state}", fields={"state": [
                "one of " + ", ".join(FEEDBACK_STATES)]})
        stmt = stmt.where(Feedback.state == state)
    return list(svc.session.scalars(stmt.order_by(Feedback.id).limit(500)))


def review_feedback(svc: RecordService, feedback_id: int, data: Any) -> Feedback:
    """Set the review state and the answer the author reads."""
    svc.require("catalog.feedback.review")
    values = load(ReviewIn(), data)
    feedback = svc.session.get(Feedback, feedback_id)
    if feedback is None:
        raise NotFound(f"no feedback {feedback_id}")
    if values["state"] in ("done", "declined") and not (values["answer"] or feedback.answer):
        raise ValidationError("tell the user why: an answer is needed to close feedback",
                              fields={"answer": ["required to mark it done or declined"]})
    feedback.state = values["state"]
    if values["answer"]:
        feedback.answer = values["answer"]
        feedback.answered_by_id = svc.actor.id
    feedback.updated_at = utcnow()
    svc.session.flush()
    author = svc.session.get(User, feedback.author_id) if feedback.author_id else None
    if values["answer"] and author is not None and author.active \
            and author.id != svc.actor.id:
        _announce(svc, FEEDBACK_ANSWERED, feedback,
                  svc.session.get(Service, feedback.service_id), [author.email])
    return feedback


def my_feedback(svc: RecordService) -> list[Feedback]:
    return list(svc.session.scalars(select(Feedback).where(
        Feedback.author_id == svc.actor.id).order_by(Feedback.id.desc()).limit(200)))


def feedback_dict(svc: RecordService, f: Feedback) -> dict[str, Any]:
    service = svc.session.get(Service, f.service_id)
    return {"id": f.id, "service": service.slug, "service_name": service.name,
            "kind": f.kind, "body": f.body, "state": f.state, "answer": f.answer,
            "author": svc.ref("user", f.author_id),
            "answered_by": svc.ref("user", f.answered_by_id),
            "created_at": f.created_at.isoformat(), "updated_at": f.updated_at.isoformat()}


# -- technical catalog --------------------------------------------------------------------------


def documents(svc: RecordService, service: Service | None = None, q: str | None = None) \
        -> list[TechnicalDocument]:
    svc.require("catalog.technical")
    stmt = select(TechnicalDocument)
    if service is not None:
        stmt = stmt.where(TechnicalDocument.service_id == service.id)
    for word in (q or "").split()[:8]:
        pattern = f"%{_escape(word[:100])}%"
        in_body = exists().where(DocumentVersion.document_id == TechnicalDocument.id,
                                 DocumentVersion.number == TechnicalDocument.current_version,
                                 DocumentVersion.body.ilike(pattern, escape="\\"))
        stmt = stmt.where(or_(TechnicalDocument.title.ilike(pattern, escape="\\"), in_body))
    return list(svc.session.scalars(stmt.order_by(TechnicalDocument.service_id,
                                                  TechnicalDocument.title).limit(1000)))


def get_document(svc: RecordService, document_id: int) -> TechnicalDocument:
    svc.require("catalog.technical")
    document = svc.session.get(TechnicalDocument, document_id)
    if document is None:
        raise NotFound(f"no technical document {document_id}")
    return document


def add_document(svc: RecordService, service: Service, data: Any) -> TechnicalDocument:
    svc.require("catalog.technical")
    values = load(DocumentIn(), data)
    document = TechnicalDocument(service_id=service.id, title=values["title"],
                                 kind=values["kind"], review_due=values.get("review_due"),
                                 owner_id=_user_id(svc.session, values.get("owner"), "owner")
                                 or svc.actor.id)
    svc.session.add(document)
    svc.session.flush()
    _add_version(svc, document, values["body"], values["note"] or "first version")
    return document


def _add_version(svc: RecordService, document: TechnicalDocument, body: str, note: str) \
        -> DocumentVersion:
    document.current_version += 1
    version = DocumentVersion(document_id=document.id, number=document.current_version,
                              body=body, note=note, author_id=svc.actor.id)
    document.updated_at = utcnow()
    svc.session.add(version)
    svc.session.flush()
    return version


def add_version(svc: RecordService, document: TechnicalDocument, data: Any) -> DocumentVersion:
    """A new version of the document; its review date moves when one is sent."""
    svc.require("catalog.technical")
    values = load(VersionIn(), data)
    if "review_due" in values:
        document.review_due = values["review_due"]
    return _add_version(svc, document, values["body"], values["note"])


def versions(svc: RecordService, document: TechnicalDocument) -> list[DocumentVersion]:
    svc.require("catalog.technical")
    return list(svc.session.scalars(select(DocumentVersion).where(
        DocumentVersion.document_id == document.id).order_by(DocumentVersion.number.desc())))


def overdue_documents(svc: RecordService, today: date | None = None) -> list[TechnicalDocument]:
    """Documents whose review date has passed, the longest overdue first."""
    svc.require("catalog.technical")
    today = today or utcnow().date()
    return list(svc.session.scalars(select(TechnicalDocument).where(
        TechnicalDocument.review_due < today).order_by(TechnicalDocument.review_due,
                                                       TechnicalDocument.id)))


def document_dict(svc: RecordService, d: TechnicalDocument, body: bool = False) \
        -> dict[str, Any]:
    service = svc.session.get(Service, d.service_id)
    out = {"id": d.id, "service": service.slug, "title": d.title, "kind": d.kind,
           "owner": svc.ref("user", d.owner_id), "version": d.current_version,
           "review_due": d.review_due.isoformat() if d.review_due else None,
           "overdue": bool(d.review_due and d.review_due < utcnow().date()),
           "updated_at": d.updated_at.isoformat()}
    if body:
        current = svc.session.scalar(select(DocumentVersion.body).where(
            DocumentVersion.document_id == d.id,
            DocumentVersion.number == d.current_version))
        out["body"] = current or ""
    return out


# -- views as dictionaries ---------------------------------------------------------------------


def service_dict(svc: RecordService, s: Service, *, full: bool = False) -> dict[str, Any]:
    category = svc.session.get(Category, s.category_id) if s.category_id else None
    agencies = list(svc.session.scalars(select(Agency.code).join(
        ServiceAgency, ServiceAgency.agency_id == Agency.id).where(
        ServiceAgency.service_id == s.id).order_by(Agency.code)))
    out = {"id": s.id, "slug": s.slug, "name": s.name, "summary": s.summary,
           "category": category.name if category else None, "status": s.status,
           "agencies": agencies}
    if full:
        out.update({"description": s.description, "owner": svc.ref("user", s.owner_id),
                    "support_hours": s.support_hours, "rate_unit": s.rate_unit,
                    "price": str(s.price) if s.price is not None else None,
                    "currency": s.currency, "billing_period": s.billing_period,
                    "cost_notes": s.cost_notes, "faq_url": s.faq_url, "help_url": s.help_url,
                    "resolver_group": svc.ref("group", s.resolver_group_id),
                    "offerings": [offering_dict(svc, o) for o in offerings_of(svc, s)]})
    return out


def offering_dict(svc: RecordService, o: Offering) -> dict[str, Any]:
    return {"id": o.id, "code": o.code, "name": o.name, "description": o.description,
            "form": o.form, "approval": o.approval,
            "approval_group": svc.ref("group", o.approval_group_id),
            "tasks": o.tasks, "task_order": o.task_order,
            "response_minutes": o.response_minutes,
            "resolution_minutes": o.resolution_minutes, "active": o.active}


def forbid_unless(condition: bool, message: str) -> None:
    if not condition:
        raise Forbidden(message)
