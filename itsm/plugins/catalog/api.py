"""The catalog's API under ``/api/v1/catalog`` (the ``requests`` and ``tasks`` record
collections come from the core). Every route goes through :mod:`.service`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import RAISE, Schema, fields, validate

from itsm.plugin import (
    MAX_DB_INTEGER,
    Agency,
    Conflict,
    Forbidden,
    NotFound,
    RecordService,
    ValidationError,
    current_actor,
    current_itsm,
    document,
    json_body,
    parse_int,
    satisfaction_follow_up,
)
from itsm.plugins.catalog import reports
from itsm.plugins.catalog import service as catalog
from itsm.plugins.catalog.forms import FieldDefinition
from itsm.plugins.catalog.models import SERVICE_STATUSES, ServiceRequest

bp = Blueprint("catalog_api", __name__, url_prefix="/api/v1/catalog")
TAGS = ["Catalog"]


class OfferingOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    form = fields.List(fields.Nested(FieldDefinition))
    description = fields.String()
    approval = fields.String()
    approval_group = fields.String(allow_none=True)
    tasks = fields.List(fields.Nested(catalog.TaskDefinition))
    task_order = fields.String()
    response_minutes = fields.Integer(allow_none=True)
    resolution_minutes = fields.Integer(allow_none=True)
    active = fields.Boolean()


class ServiceOut(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    summary = fields.String()
    category = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(SERVICE_STATUSES))
    agencies = fields.List(fields.String())
    description = fields.String()
    owner = fields.String(allow_none=True)
    support_hours = fields.String()
    price = fields.String(allow_none=True)
    currency = fields.String()
    rate_unit = fields.String()
    billing_period = fields.String()
    cost_notes = fields.String()
    faq_url = fields.String()
    help_url = fields.String()
    resolver_group = fields.String(allow_none=True)
    offerings = fields.List(fields.Nested(OfferingOut))


class ServicePage(Schema):
    items = fields.List(fields.Nested(ServiceOut))


class RankedServiceOut(ServiceOut):
    requests = fields.Integer(metadata={"description": "requests made lately"})


class RankedPage(Schema):
    items = fields.List(fields.Nested(RankedServiceOut), required=True)


class RequestApprovalPage(Schema):
    items = fields.List(fields.Dict(), required=True, metadata={
        "description": "the requests (as RequestOut) waiting for the caller"})


class CategoryOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String()
    description = fields.String(allow_none=True)
    services = fields.Integer(metadata={"description": "how many the caller sees"})


class CategoryPage(Schema):
    items = fields.List(fields.Nested(CategoryOut), required=True)


class OfferingRequestIn(Schema):
    class Meta:
        unknown = RAISE

    answers = fields.Dict(required=True, metadata={"description": "answers by field name"})
    title = fields.String(validate=validate.Length(min=1, max=300))
    description = fields.String(load_default="", validate=validate.Length(max=20000))


class FeedbackOut(Schema):
    id = fields.Integer()
    service = fields.String()
    kind = fields.String()
    body = fields.String()
    state = fields.String()
    answer = fields.String()
    author = fields.String(allow_none=True)
    service_name = fields.String()
    answered_by = fields.String(allow_none=True)
    created_at = fields.String()
    updated_at = fields.String()


class FeedbackPage(Schema):
    items = fields.List(fields.Nested(FeedbackOut))


class DocumentOut(Schema):
    id = fields.Integer()
    service = fields.String()
    title = fields.String()
    kind = fields.String()
    owner = fields.String(allow_none=True)
    version = fields.Integer()
    review_due = fields.String(allow_none=True)
    overdue = fields.Boolean()
    updated_at = fields.String()
    body = fields.String()


class DocumentVersionOut(Schema):
    number = fields.Integer(required=True)
    note = fields.String(allow_none=True)
    author = fields.String(allow_none=True)
    created_at = fields.String()


class DocumentDetailOut(DocumentOut):
    versions = fields.List(fields.Nested(DocumentVersionOut), metadata={
        "description": "every version, oldest first"})


class DocumentPage(Schema):
    items = fields.List(fields.Nested(DocumentOut))


class StatusIn(Schema):
    status = fields.String(required=True, validate=validate.OneOf(SERVICE_STATUSES))


def _int(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    return parse_int(raw, name, minimum=0, maximum=MAX_DB_INTEGER)


def _agency_id(svc, code: str | None) -> int | None:
    if not code:
        return None
    from sqlalchemy import select

    found = svc.session.scalar(select(Agency.id).where(Agency.code == code[:32]))
    if found is None:
        raise ValidationError(f"no agency {code}", fields={"agency": ["unknown agency"]})
    if svc.actor.role == "requester" and found != svc.actor.agency_id:
        raise NotFound(f"no agency {code}")
    return found


QUERY = [{"name": n, "in": "query", "schema": schema, "description": d} for n, schema, d in (
    ("q", {"type": "string"}, "words to find in names, summaries, descriptions and offerings"),
    ("category", {"type": "integer", "minimum": 0, "maximum": 999_999_999},
     "only this category (id)"),
    ("agency", {"type": "string"}, "only services this agency may request (code)"))]


@bp.get("/services")
@document(summary="live services the caller may request: search, category, agency",
          response=ServicePage, tags=TAGS, params=QUERY)
def list_services():
    with current_itsm().unit_of_work(current_actor()) as svc:
        rows = catalog.portal_services(svc, q=request.args.get("q", "")[:300],
                                       category_id=_int("category"),
                                       agency_id=_agency_id(svc, request.args.get("agency")))
        return jsonify({"items": [catalog.service_dict(svc, s) for s in rows]})


@bp.post("/services")
@document(summary="add a service (catalog managers)", body=catalog.ServiceIn,
          response=ServiceOut, status=201, tags=TAGS)
def create_service():
    with current_itsm().unit_of_work(current_actor()) as svc:
        service = catalog.save_service(svc, json_body())
        out = catalog.service_dict(svc, service, full=True)
    return jsonify(out), 201


@bp.get("/services/<key>")
@document(summary="one service with its offerings and their forms", response=ServiceOut,
          tags=TAGS)
def get_service(key: str):
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify(catalog.service_dict(svc, catalog.get_service(svc, key), full=True))


@bp.patch("/services/<key>")
@document(summary="change a service, e.g. {\"status\": \"live\"} to publish it (catalog "
                  "managers; the entry point of a transition gate)", body=catalog.ServiceIn,
          response=ServiceOut, tags=TAGS)
def patch_service(key: str):
    with current_itsm().unit_of_work(current_actor()) as svc:
        svc.require("catalog.manage")
        service = catalog.save_service(svc, json_body(), catalog.get_service(svc, key))
        out = catalog.service_dict(svc, service, full=True)
    return jsonify(out)


@bp.post("/services/<key>/offerings")
@document(summary="add an offering with its form, approval, tasks and targets",
          body=catalog.OfferingIn, response=OfferingOut, status=201, tags=TAGS)
def create_offering(key: str):
    with current_itsm().unit_of_work(current_actor()) as svc:
        offering = catalog.save_offering(svc, catalog.get_service(svc, key), json_body())
        out = catalog.offering_dict(svc, offering)
    return jsonify(out), 201


@bp.patch("/offerings/<int:offering_id>")
@document(summary="change an offering", body=catalog.OfferingIn, response=OfferingOut,
          tags=TAGS)
def patch_offering(offering_id: int):
    with current_itsm().unit_of_work(current_actor()) as svc:
        svc.require("catalog.manage")
        offering = catalog.get_offering(svc, offering_id)
        service = catalog.get_service(svc, offering.service_id)
        offering = catalog.save_offering(svc, service, json_body(), offering)
        out = catalog.offering_dict(svc, offering)
    return jsonify(out)


@bp.get("/offerings/<int:offering_id>")
@document(summary="an offering and its form definition", response=OfferingOut, tags=TAGS)
def get_offering(offering_id: int):
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify(catalog.offering_dict(svc, catalog.get_offering(svc, offering_id)))


@bp.post("/offerings/<int:offering_id>/requests")
@document(summary="request an offering: answers to its form (422 with a message per field)",
          body=OfferingRequestIn, response="RequestOut", status=201, tags=TAGS)
def request_offering(offering_id: int):
    data = catalog.load(OfferingRequestIn(), json_body())
    with current_itsm().unit_of_work(current_actor()) as svc:
        offering = catalog.get_offering(svc, offering_id)
        record = catalog.submit_request(svc, offering, data["answers"], data.get("title"),
                                        data["description"])
        out = svc.to_dict(record)
    return jsonify(out), 201


@bp.get("/most-requested")
@document(summary="the live services requested most lately", response=RankedPage, tags=TAGS)
def most_requested():
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify({"items": [{**catalog.service_dict(svc, s), "requests": n}
                                  for s, n in catalog.most_requested(svc, 10)]})


@bp.get("/categories")
@document(summary="categories with the number of services the caller sees in each",
          response=CategoryPage, tags=TAGS)
def list_categories():
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify({"items": [{"id": c.id, "name": c.name, "description": c.description,
                                   "services": n} for c, n in catalog.categories(svc)]})


@bp.get("/approvals")
@document(summary="requests waiting for the caller's approval", response=RequestApprovalPage,
          tags=TAGS)
def approvals():
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify({"items": [svc.to_dict(r) for r in catalog.waiting_for(svc)]})


# -- feedback --------------------------------------------------------------------------------


@bp.post("/services/<key>/feedback")
@document(summary="report a problem with a catalog entry, comment or suggest",
          body=catalog.FeedbackIn, response=FeedbackOut, status=201, tags=TAGS)
def give_feedback(key: str):
    with current_itsm().unit_of_work(current_actor()) as svc:
        feedback = catalog.give_feedback(svc, catalog.get_service(svc, key), json_body())
        out = catalog.feedback_dict(svc, feedback)
    return jsonify(out), 201


@bp.get("/feedback")
@document(summary="the review queue (service management): ?state=new|accepted|done|declined",
          response=FeedbackPage, tags=TAGS, params=[{"name": "state", "in": "query",
                                                     "schema": {"type": "string"}}])
def feedback_queue():
    with current_itsm().unit_of_work(current_actor()) as svc:
        rows = catalog.review_queue(svc, request.args.get("state", "new")[:20] or None)
        return jsonify({"items": [catalog.feedback_dict(svc, f) for f in rows]})


@bp.get("/feedback/mine")
@document(summary="the caller's feedback with its state and answers", response=FeedbackPage,
          tags=TAGS)
def my_feedback():
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify({"items": [catalog.feedback_dict(svc, f)
                                  for f in catalog.my_feedback(svc)]})


@bp.patch("/feedback/<int:feedback_id>")
@document(summary="review feedback: its state and the answer to the user",
          body=catalog.ReviewIn, response=FeedbackOut, tags=TAGS)
def review_feedback(feedback_id: int):
    with current_itsm().unit_of_work(current_actor()) as svc:
        feedback = catalog.review_feedback(svc, feedback_id, json_body())
        out = catalog.feedback_dict(svc, feedback)
    return jsonify(out)


# -- technical catalog (IT staff) ----------------------------------------------------------------


@bp.get("/documents")
@document(summary="technical documents (IT staff): ?service=slug&q=words",
          response=DocumentPage, tags=TAGS)
def list_documents():
    with current_itsm().unit_of_work(current_actor()) as svc:
        svc.require("catalog.technical")
        key = request.args.get("service")
        service = catalog.get_service(svc, key) if key else None
        rows = catalog.documents(svc, service, request.args.get("q", "")[:300])
        return jsonify({"items": [catalog.document_dict(svc, d) for d in rows]})


@bp.get("/documents/overdue")
@document(summary="technical documents whose review date has passed (IT staff)",
          response=DocumentPage, tags=TAGS)
def overdue_documents():
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify({"items": [catalog.document_dict(svc, d)
                                  for d in catalog.overdue_documents(svc)]})


@bp.post("/services/<key>/documents")
@document(summary="add a technical document to a service (IT staff)",
          body=catalog.DocumentIn, response=DocumentOut, status=201, tags=TAGS)
def add_document(key: str):
    with current_itsm().unit_of_work(current_actor()) as svc:
        svc.require("catalog.technical")
        document_ = catalog.add_document(svc, catalog.get_service(svc, key), json_body())
        out = catalog.document_dict(svc, document_, body=True)
    return jsonify(out), 201


@bp.get("/documents/<int:document_id>")
@document(summary="a technical document's current version and its history (IT staff)",
          response=DocumentDetailOut, tags=TAGS)
def get_document(document_id: int):
    with current_itsm().unit_of_work(current_actor()) as svc:
        document_ = catalog.get_document(svc, document_id)
        out: dict[str, Any] = catalog.document_dict(svc, document_, body=True)
        out["versions"] = [{"number": v.number, "note": v.note,
                            "author": svc.ref("user", v.author_id),
                            "created_at": v.created_at.isoformat()}
                           for v in catalog.versions(svc, document_)]
    return jsonify(out)


@bp.post("/documents/<int:document_id>/versions")
@document(summary="a new version of a technical document (IT staff)",
          body=catalog.VersionIn, response=DocumentOut, status=201, tags=TAGS)
def add_version(document_id: int):
    with current_itsm().unit_of_work(current_actor()) as svc:
        document_ = catalog.get_document(svc, document_id)
        catalog.add_version(svc, document_, json_body())
        out = catalog.document_dict(svc, document_, body=True)
    return jsonify(out), 201


# -- reports ---------------------------------------------------------------------------------


@bp.get("/reports/summary")
@document(summary="requests per service and agency, fulfilment time against target, "
                  "feedback counts (IT staff)", response=reports.ReportOut, tags=TAGS,
          params=[{"name": "days", "in": "query", "schema": {"type": "integer"}}])
def report():
    days = reports.parse_days(request.args.get("days"))
    with current_itsm().unit_of_work(current_actor()) as svc:
        return jsonify(reports.summary(svc, days))


class RequestRatingIn(Schema):
    class Meta:
        unknown = RAISE

    rating = fields.Integer(required=True, validate=validate.Range(1, 5))
    comment = fields.String(load_default="", validate=validate.Length(max=2000))


class RequestRatingOut(Schema):
    number = fields.String()
    satisfaction = fields.Integer()
    satisfaction_comment = fields.String()


def rate_fulfilment(svc: RecordService, record: ServiceRequest, rating: int,
                    comment: str = "") -> None:
    """The requester rates a fulfilled request (1-5); the API and the portal both come
    here. The rating is journaled as a public comment, and a low one is followed up."""
    if record.requester_id is None or record.requester_id != svc.actor.id:
        raise Forbidden("only the requester rates the fulfilment of a request")
    if record.state != "fulfilled":
        raise Conflict(f"{record.number} is not fulfilled yet: rate it once it is")
    previous = record.satisfaction
    svc.set_fields(record, {"satisfaction": rating, "satisfaction_comment": comment})
    text = f"Rated the fulfilment {rating}/5"
    svc.comment(record, text + (f": {comment}" if comment else "."))
    satisfaction_follow_up(svc.session, record, rating, comment, svc.actor.id,
                           previous=previous)


@bp.post("/requests/<number>/satisfaction")
@document(summary="rate the fulfilment (the requester, once fulfilled)", body=RequestRatingIn,
          response=RequestRatingOut, tags=TAGS)
def rate(number: str):
    data = RequestRatingIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as svc:
        record = svc.get(number.upper()[:32], "request")
        assert isinstance(record, ServiceRequest)
        rate_fulfilment(svc, record, data["rating"], data["comment"])
        out = {"number": record.number, "satisfaction": record.satisfaction,
               "satisfaction_comment": record.satisfaction_comment}
    return jsonify(out)
