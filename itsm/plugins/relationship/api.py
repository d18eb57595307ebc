"""The relationship plugin's REST routes under ``/api/v1/relationship``: portfolios, an
agency's situation, and its monthly service reviews."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import Schema, fields, validate

from itsm.plugin import InputSchema, current_actor, current_itsm, document, json_body
from itsm.plugins.relationship import service as relationship

api = Blueprint("relationship_api", __name__, url_prefix="/api/v1/relationship")
TAGS = ["Relationship"]


class AgencyOut(Schema):
    """An agency in a portfolio."""

    code = fields.String()
    name = fields.String()


class AgencyPage(Schema):
    """The caller's agencies."""

    items = fields.List(fields.Nested(AgencyOut), required=True)


class FactOut(Schema):
    """A labelled figure."""

    label = fields.String()
    value = fields.String()


class ItemOut(Schema):
    """A notable thing, with a link."""

    text = fields.String()
    url = fields.String(allow_none=True)


class SectionOut(Schema):
    """One process's part of an agency's situation."""

    title = fields.String()
    order = fields.Integer()
    facts = fields.List(fields.Nested(FactOut))
    items = fields.List(fields.Nested(ItemOut))


class SituationOut(Schema):
    """An agency this month so far."""

    agency = fields.String()
    agency_name = fields.String()
    managers = fields.List(fields.String())
    from_ = fields.String(data_key="from")
    to = fields.String()
    sections = fields.List(fields.Nested(SectionOut))


class ReviewOut(Schema):
    """A kept monthly service review."""

    id = fields.Integer()
    agency = fields.String()
    agency_name = fields.String()
    period = fields.String()
    created_at = fields.String()
    sections = fields.List(fields.Nested(SectionOut))


class ReviewPage(Schema):
    """An agency's reviews, newest first."""

    items = fields.List(fields.Nested(ReviewOut), required=True)


class AssignIn(InputSchema):
    """Put an agency in a staff member's portfolio."""

    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    agency = fields.String(required=True, validate=validate.Length(min=1, max=32))


@api.get("/agencies")
@document(summary="the agencies in the caller's portfolio", response=AgencyPage, tags=TAGS)
def list_agencies():
    """Every agency for those who manage portfolios."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        items = [{"code": a.code, "name": a.name} for a in relationship.portfolio(svc)]
    return jsonify({"items": items})


@api.get("/agencies/<code>")
@document(summary="an agency's situation this month, from every process",
          response=SituationOut, tags=TAGS)
def get_agency(code: str):
    """Another relationship manager's agency answers 404."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        payload = relationship.situation(svc, code[:32])
    return jsonify(payload)


@api.get("/agencies/<code>/reviews")
@document(summary="an agency's monthly service reviews", response=ReviewPage, tags=TAGS)
def list_reviews(code: str):
    """Its relationship managers and its own people read them."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        items = [relationship.review_dict(svc.session, r)
                 for r in relationship.reviews(svc, code[:32])]
    return jsonify({"items": items})


@api.post("/portfolio")
@document(summary="put an agency in a staff member's portfolio", body=AssignIn,
          response=AgencyPage, status=201, tags=TAGS)
def assign():
    """Administrators."""
    data = AssignIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as svc:
        relationship.assign(svc, data["email"], data["agency"])
        items = [{"code": data["agency"].strip().upper(), "name": ""}]
    response = jsonify({"items": items})
    response.status_code = 201
    return response
