"""The incident plugin's own API routes (the generic record routes come from the core)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import RAISE, Schema, fields, validate

from itsm.plugin import (
    Conflict,
    Forbidden,
    InputError,
    Record,
    RecordService,
    ValidationError,
    current_actor,
    current_itsm,
    document,
    json_body,
    parse_int,
    satisfaction_follow_up,
)
from itsm.plugin import breaching_soon as queue_breaching_soon
from itsm.plugins.incident.hooks import CHILD_OF, OPEN_STATES, REVIEWS, linked
from itsm.plugins.incident.models import Incident

bp = Blueprint("incident_api", __name__, url_prefix="/api/v1/incidents")
TAGS = ["Incident"]


class SatisfactionIn(Schema):
    class Meta:
        unknown = RAISE

    rating = fields.Integer(required=True, validate=validate.Range(1, 5))
    comment = fields.String(load_default="", validate=validate.Length(max=2000))


class SatisfactionOut(Schema):
    number = fields.String()
    satisfaction = fields.Integer()
    satisfaction_comment = fields.String()


class ChildIn(Schema):
    class Meta:
        unknown = RAISE

    incident = fields.String(required=True, validate=validate.Length(min=3, max=32),
                             metadata={"description": "number of the child incident"})


class EscalateIn(Schema):
    class Meta:
        unknown = RAISE

    group = fields.String(required=True, validate=validate.Length(min=1, max=100))
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class RefOut(Schema):
    number = fields.String()
    title = fields.String()
    state = fields.String()


class RefPage(Schema):
    items = fields.List(fields.Nested(RefOut))


class BreachingOut(Schema):
    number = fields.String()
    title = fields.String()
    priority = fields.Integer(allow_none=True)
    group = fields.String(allow_none=True)
    metric = fields.String()
    breach_due_at = fields.String()
    minutes_left = fields.Float(metadata={"description": "negative once breached"})
    left = fields.String(metadata={"description": "\"in 25 min\", or \"breached 2 h ago\""})
    breached = fields.Boolean()


class BreachingPage(Schema):
    items = fields.List(fields.Nested(BreachingOut))


def rate_resolution(service: RecordService, incident: Incident, rating: int,
                    comment: str = "") -> None:
    """The requester rates the resolution (1-5), once the incident is resolved; the API
    and the portal both come here. The rating is journaled as a public comment."""
    if incident.requester_id is None or incident.requester_id != service.actor.id:
        raise Forbidden("only the requester rates the resolution of an incident")
    if incident.state not in ("resolved", "closed"):
        raise Conflict(f"{incident.number} is not resolved yet: rate it once it is")
    previous = incident.satisfaction
    service.set_fields(incident, {"satisfaction": rating, "satisfaction_comment": comment})
    text = f"Rated the resolution {rating}/5"
    service.comment(incident, text + (f": {comment}" if comment else "."))
    satisfaction_follow_up(service.session, incident, rating, comment, service.actor.id,
                           previous=previous)


def _incident(service: RecordService, number: str) -> Incident:
    record = service.get(number.upper()[:32], "incident")
    assert isinstance(record, Incident)
    return record


def _ref(record: Record) -> dict[str, Any]:
    return {"number": record.number, "title": record.title, "state": record.state}


@bp.post("/<number>/satisfaction")
@document(summary="rate the resolution (the requester, once resolved)", body=SatisfactionIn,
          response=SatisfactionOut, tags=TAGS)
def rate(number: str):
    data = SatisfactionIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        incident = _incident(service, number)
        rate_resolution(service, incident, data["rating"], data["comment"])
        out = {"number": incident.number, "satisfaction": incident.satisfaction,
               "satisfaction_comment": incident.satisfaction_comment}
    return jsonify(out)


class ReachedOut(Schema):
    kind = fields.String()
    id = fields.String()
    label = fields.String()
    url = fields.String(allow_none=True)
    path = fields.List(fields.String(), metadata={"description": "labels from the "
                                                  "incident's item or service to this"})


class ImpactOut(Schema):
    number = fields.String()
    major = fields.Boolean()
    services = fields.List(fields.Nested(ReachedOut))
    agencies = fields.List(fields.Nested(ReachedOut))


@bp.get("/<number>/impact")
@document(summary="the services and agencies the incident's service and configuration "
                  "item reach (a major incident's affected agencies)", response=ImpactOut,
          tags=TAGS)
def impact(number: str):
    from itsm.plugins.incident.spine import impact as reached

    with current_itsm().unit_of_work(current_actor()) as service:
        incident = _incident(service, number)
        if not service.is_staff:  # the graph behind a service is for IT staff
            raise Forbidden("the impact of an incident is for IT staff")
        out = {"number": incident.number, "major": bool(incident.major),
               **reached(service.session, incident)}
    return jsonify(out)


@bp.get("/<number>/children")
@document(summary="child incidents of a major incident", response=RefPage, tags=TAGS)
def children(number: str):
    with current_itsm().unit_of_work(current_actor()) as service:
        incident = _incident(service, number)
        items = [_ref(r) for r in linked(service.session, incident, CHILD_OF, incoming=True)
                 if service.can("incident.read", r)]
    return jsonify({"items": items})


@bp.post("/<number>/children")
@document(summary="attach an incident to this major incident", body=ChildIn,
          response=RefOut, status=201, tags=TAGS)
def add_child(number: str):
    data = ChildIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        parent = _incident(service, number)
        if not parent.major:
            raise Conflict(f"{parent.number} is not a major incident; mark it major first",
                           reasons=["not a major incident"])
        try:
            child = _incident(service, data["incident"])
        except Exception:
            raise ValidationError(f"no incident {data['incident']}",
                                  fields={"incident": ["no such incident"]}) from None
        if child.major:
            raise ValidationError("a major incident cannot be the child of another",
                                  fields={"incident": ["is a major incident"]})
        service.link(child, parent.number, CHILD_OF)
        out = _ref(child)
    response = jsonify(out)
    response.status_code = 201
    return response


@bp.post("/<number>/review")
@document(summary="open the post-incident review of a major incident (timeline from the "
                  "journal)", response=RefOut, status=201, tags=TAGS)
def open_review(number: str):
    with current_itsm().unit_of_work(current_actor()) as service:
        incident = _incident(service, number)
        if not incident.major:
            raise Conflict(f"{incident.number} is not a major incident",
                           reasons=["post-incident reviews are for major incidents"])
        existing = [r for r in linked(service.session, incident, REVIEWS, incoming=True)
                    if r.type == "incident_review"]
        if existing:
            raise Conflict(f"{incident.number} already has review {existing[0].number}")
        timeline = [{"at": e.created_at.isoformat(), "kind": e.kind,
                     "actor": service.ref("user", e.actor_id) or "system",
                     "summary": _summary(e)} for e in service.journal(incident)]
        review = service.create("incident_review", {
            "title": f"Review of {incident.number}: {incident.title}"[:300],
            "description": incident.description or ""},
            preset={"incident_number": incident.number, "timeline": timeline})
        service.link(review, incident.number, REVIEWS)
        out = _ref(review)
    response = jsonify(out)
    response.status_code = 201
    return response


def _summary(entry) -> str:
    data = entry.data or {}
    if entry.kind == "transitioned":
        state = (data.get("changes") or {}).get("state", ["", ""])
        return f"{data.get('transition', 'moved')}: {state[0]} -> {state[1]}"
    if entry.kind in ("commented", "work_noted"):
        return (entry.body or "")[:200]
    if entry.kind == "updated":
        return "changed " + ", ".join(sorted(data.get("changes") or {}))
    if entry.kind == "linked":
        return f"{data.get('kind', 'linked')} {data.get('target', '')}"
    return entry.kind


@bp.post("/<number>/escalate")
@document(summary="functional escalation: hand the incident to another group", body=EscalateIn,
          response=RefOut, tags=TAGS)
def escalate(number: str):
    data = EscalateIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        incident = _incident(service, number)
        if incident.state not in OPEN_STATES:
            raise Conflict(f"{incident.number} is {incident.state}; only open incidents move")
        service.update(incident, {"group": data["group"], "assignee": None})
        service.comment(incident, f"Escalated to {data['group']}: {data['reason']}",
                        public=False)
        out = _ref(incident)
    return jsonify(out)


@bp.get("/breaching")
@document(summary="open incidents whose next SLA target falls due soon (the 'breaching "
                  "soon' queue), soonest first", response=BreachingPage, tags=TAGS,
          params=[{"name": "within", "in": "query", "schema": {
              "type": "integer", "minimum": 1, "maximum": 10080},
              "description": "minutes ahead (default 120)"},
              {"name": "group", "in": "query", "schema": {"type": "string"}}])
def breaching():
    return jsonify({"items": breaching_soon(current_actor(), request.args)})


def breaching_soon(actor, args) -> list[dict[str, Any]]:
    """Open incidents the actor may read whose next SLA target falls due within a window,
    breached ones first: the rows of the console's "Breaching soon" view."""
    try:
        within = parse_int(args.get("within", "120"), "within", minimum=1, maximum=10080)
    except InputError:
        raise ValidationError("within: minutes from 1 to 10080",
                              fields={"within": ["minutes from 1 to 10080"]}) from None
    itsm = current_itsm()
    rt = itsm.types.get("incident")
    with itsm.unit_of_work(actor) as service:
        rows = queue_breaching_soon(service, rt, within, args.get("group", "")[:100] or None)
        return [{"number": row["number"], "title": row["title"], "priority": row["priority"],
                 "group": row["group"], "metric": row["sla"]["metric"],
                 "breach_due_at": row["sla"]["due_at"].isoformat(),
                 "minutes_left": row["sla"]["minutes_left"], "left": row["sla"]["left"],
                 "breached": row["sla"]["status"] == "breached"}
                for row in rows if row["sla"]]
