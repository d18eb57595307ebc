"""The problem plugin's REST routes, beside the generic ``/api/v1/problems`` collection.

- ``GET/POST /api/v1/problems/<number>/incidents``: the incidents a problem groups;
- ``GET /api/v1/problems/trends``: proactive identification from incident trends;
- ``GET /api/v1/known-errors``: the known error database.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from marshmallow import Schema, fields, validate

from itsm.plugin import ValidationError, current_actor, current_itsm, document, json_body
from itsm.plugins.problem import service as problems
from itsm.plugins.problem.models import PROBLEM

api = Blueprint("problem_api", __name__, url_prefix="/api/v1")


class LinkIncidentIn(Schema):
    """Body of ``POST /api/v1/problems/<number>/incidents``."""

    incident = fields.String(required=True, validate=validate.Length(min=1, max=32),
                             metadata={"description": "number of the incident, INC…"})


class IncidentRef(Schema):
    """A linked incident, as the core's record reference."""

    number = fields.String()
    type = fields.String()
    title = fields.String()
    state = fields.String()
    available = fields.Boolean()


class IncidentRefPage(Schema):
    """The incidents linked to a problem."""

    items = fields.List(fields.Nested(IncidentRef), required=True)


class TrendOut(Schema):
    """One value shared by many incidents."""

    field = fields.String(metadata={"description": "a field of the incident type"})
    value = fields.Raw(metadata={"description": "the value the incidents share"})
    label = fields.String(metadata={"description": "what people read for the value (a "
                                    "service's or configuration item's name)"})
    count = fields.Integer(metadata={"description": "incidents created in the period"})
    problems = fields.List(fields.String(), metadata={
        "description": "open problems already covering it"})


class TrendPage(Schema):
    """The trends of a period."""

    incident_type = fields.String()
    days = fields.Integer()
    min = fields.Integer()
    fields_ = fields.List(fields.String(), data_key="fields",
                          metadata={"description": "fields counted"})
    items = fields.List(fields.Nested(TrendOut), required=True)


class KnownErrorOut(Schema):
    """One entry of the known error database."""

    number = fields.String()
    title = fields.String()
    state = fields.String()
    state_label = fields.String()
    category = fields.String()
    affected_service = fields.String()
    root_cause = fields.String()
    workaround = fields.String()
    known_error_at = fields.String(allow_none=True)
    url = fields.String(metadata={"description": "the problem's console page"})


class KnownErrorPage(Schema):
    """Known errors, newest first."""

    items = fields.List(fields.Nested(KnownErrorOut), required=True)


def _query(name: str, description: str, kind: str = "integer") -> dict:
    """An OpenAPI query parameter."""
    return {"name": name, "in": "query", "required": False,
            "schema": {"type": kind}, "description": description}


@api.get("/problems/<number>/incidents")
@document(summary="incidents grouped by a problem", response=IncidentRefPage,
          tags=["Problem"])
def list_incidents(number: str):
    """The incidents linked to the problem that the caller may see."""
    with current_itsm().unit_of_work(current_actor()) as service:
        problem = service.get(number.upper(), PROBLEM.name)
        items = problems.incident_refs(service, problem)
    return jsonify({"items": items})


@api.post("/problems/<number>/incidents")
@document(summary="link an incident to a problem", body=LinkIncidentIn,
          response=IncidentRefPage, status=201, tags=["Problem"])
def link_incident(number: str):
    """Link an incident to the problem; answers the linked incidents."""
    data = LinkIncidentIn().load(json_body())  # 422 with field messages
    with current_itsm().unit_of_work(current_actor()) as service:
        problem = service.get(number.upper(), PROBLEM.name)
        problems.link_incident(service, problem, data["incident"])
        items = problems.incident_refs(service, problem)
    response = jsonify({"items": items})
    response.status_code = 201
    return response


@api.get("/problems/trends")
@document(summary="categories and services with many incidents in a period (proactive "
          "problem identification)", response=TrendPage, tags=["Problem"],
          params=[_query("days", "the period: incidents created in the last N days"),
                  _query("min", "report values shared by at least this many incidents")])
def trends():
    """Values shared by many incidents of the period, with covering problems."""
    with current_itsm().unit_of_work(current_actor()) as service:
        days, minimum = problems.trend_options(request.args.get("days"),
                                               request.args.get("min"))
        report = problems.trends(service, days, minimum)
    return jsonify(report.to_dict())


@api.get("/known-errors")
@document(summary="the known error database: known errors with their workarounds",
          response=KnownErrorPage, tags=["Problem"],
          params=[_query("q", "words in the title, description, workaround or root cause",
                         "string"),
                  _query("limit", f"at most this many (1 to {problems.MAX_KNOWN_ERRORS})")])
def known_errors():
    """Known errors with their workarounds, optionally matching ``q``."""
    text = request.args.get("q", "")
    if "\x00" in text or len(text) > 500:
        raise ValidationError("q: text of at most 500 characters",
                              fields={"q": ["at most 500 characters, no NUL"]})
    limit = problems.whole_number("limit", request.args.get("limit"), 50,
                               problems.MAX_KNOWN_ERRORS)
    with current_itsm().unit_of_work(current_actor()) as service:
        items = [problems.known_error_dict(p)
                 for p in problems.known_errors(service, text, limit)]
    return jsonify({"items": items})
