"""Billing's REST routes under ``/api/v1/billing``.

- ``GET/POST /statements``: the statements the caller may read; compute a draft;
- ``GET /statements/<id>``, ``POST /statements/<id>/review|issue|reopen`` (no body);
- ``POST /statements/<id>/credits``: correct an issued statement on the next one;
- ``GET/POST /subscriptions``, ``PATCH /subscriptions/<id>``: recurring services;
- ``POST /time``: time worked on a record under a service charged by the hour;
- ``POST /contacts``: an agency's billing contact.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from marshmallow import Schema, fields, validate

from itsm.plugin import (
    InputSchema,
    ValidationError,
    current_actor,
    current_itsm,
    document,
    json_body,
)
from itsm.plugins.billing import service as billing

api = Blueprint("billing_api", __name__, url_prefix="/api/v1/billing")
TAGS = ["Billing"]


class StatementLineOut(Schema):
    """One line of a statement."""

    position = fields.Integer()
    kind = fields.String(metadata={"description": "one_time, subscription, time or credit"})
    kind_label = fields.String()
    key = fields.String(metadata={"description": "the work billed, billed once"})
    service_id = fields.String()
    service = fields.String()
    description = fields.String()
    quantity = fields.String(metadata={"description": "a decimal number"})
    unit_price = fields.String(metadata={"description": "a decimal amount"})
    amount = fields.String(metadata={"description": "a decimal amount, rounded to the cent"})


class StatementOut(Schema):
    """An agency's statement for a month."""

    id = fields.Integer()
    number = fields.String()
    agency = fields.String()
    agency_name = fields.String()
    period = fields.String(metadata={"description": "YYYY-MM"})
    state = fields.String(metadata={"description": "draft, reviewed or issued"})
    state_label = fields.String()
    currency = fields.String()
    total = fields.String()
    computed_at = fields.String()
    issued_at = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(StatementLineOut))


class StatementPage(Schema):
    """Statements, newest month first."""

    items = fields.List(fields.Nested(StatementOut), required=True)


class GenerateIn(InputSchema):
    """Body of ``POST /api/v1/billing/statements``."""

    agency = fields.String(required=True, validate=validate.Length(min=1, max=32))
    period = fields.String(required=True, validate=validate.Length(min=7, max=7),
                           metadata={"description": "the month, YYYY-MM"})


class CreditIn(InputSchema):
    """Body of ``POST /api/v1/billing/statements/<id>/credits``."""

    amount = fields.String(required=True, validate=validate.Length(min=1, max=20),
                           metadata={"description": "a decimal amount above 0"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class CreditOut(Schema):
    """A recorded credit."""

    id = fields.Integer()
    corrects = fields.String()
    amount = fields.String()
    reason = fields.String()


class SubscriptionIn(InputSchema):
    """Body of ``POST /api/v1/billing/subscriptions``."""

    agency = fields.String(required=True, validate=validate.Length(min=1, max=32))
    service = fields.String(required=True, validate=validate.Length(min=1, max=200),
                            metadata={"description": "the service's id or name"})
    quantity = fields.Integer(required=True, strict=True,
                              validate=validate.Range(1, billing.MAX_QUANTITY))
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(load_default=None, allow_none=True)
    note = fields.String(load_default="", validate=validate.Length(max=300))


class SubscriptionPatch(InputSchema):
    """Body of ``PATCH /api/v1/billing/subscriptions/<id>``."""

    quantity = fields.Integer(strict=True, validate=validate.Range(1, billing.MAX_QUANTITY))
    ends_on = fields.Date(allow_none=True)


class SubscriptionOut(Schema):
    """An agency's subscription to a recurring service."""

    id = fields.Integer()
    agency = fields.String()
    service_id = fields.String()
    service = fields.String()
    quantity = fields.Integer()
    starts_on = fields.String()
    ends_on = fields.String(allow_none=True)
    note = fields.String()


class SubscriptionPage(Schema):
    """Subscriptions."""

    items = fields.List(fields.Nested(SubscriptionOut), required=True)


class TimeIn(InputSchema):
    """Body of ``POST /api/v1/billing/time``."""

    record = fields.String(required=True, validate=validate.Length(min=1, max=32))
    minutes = fields.Integer(required=True, strict=True, validate=validate.Range(1, 1440))
    service = fields.String(required=True, validate=validate.Length(min=1, max=200))
    worked_on = fields.Date(load_default=None, allow_none=True)
    note = fields.String(load_default="", validate=validate.Length(max=300))


class TimeOut(Schema):
    """Recorded time."""

    id = fields.Integer()
    record = fields.String()
    minutes = fields.Integer()
    worked_on = fields.String()


class ContactIn(InputSchema):
    """Body of ``POST /api/v1/billing/contacts``."""

    agency = fields.String(required=True, validate=validate.Length(min=1, max=32))
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))


class ContactOut(Schema):
    """A billing contact."""

    agency = fields.String()
    email = fields.String()


def _query(name: str, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
            "description": description}


def _created(payload: dict):
    response = jsonify(payload)
    response.status_code = 201
    return response


@api.get("/statements")
@document(summary="statements the caller may read", response=StatementPage, tags=TAGS,
          params=[_query("agency", "an agency's code"), _query("period", "a month, YYYY-MM")])
def list_statements():
    """Billing staff read every statement; an agency's contacts its issued ones."""
    with current_itsm().unit_of_work(current_actor()) as service:
        items = [billing.statement_dict(service, s) for s in billing.statements(
            service, request.args.get("agency") or None, request.args.get("period") or None)]
    return jsonify({"items": items})


@api.post("/statements")
@document(summary="compute (again) an agency's draft statement for a month",
          body=GenerateIn, response=StatementOut, status=201, tags=TAGS)
def generate_statement():
    """The draft's lines come from fulfilled requests, subscriptions, time and credits."""
    data = GenerateIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        found = billing.generate(service, data["agency"], data["period"])
        payload = billing.statement_dict(service, found)
    return _created(payload)


@api.get("/statements/<int:statement_id>")
@document(summary="one statement with its lines", response=StatementOut, tags=TAGS)
def get_statement(statement_id: int):
    """A statement the caller may read (another agency's answers 404)."""
    with current_itsm().unit_of_work(current_actor()) as service:
        payload = billing.statement_dict(service, billing.statement(service, statement_id))
    return jsonify(payload)


STEPS = billing.STEPS


@api.post("/statements/<int:statement_id>/<any(review, issue, reopen):step>")
@document(summary="move a statement on: review (a draft), issue (a reviewed one; it never "
          "changes again) or reopen (a reviewed one, back to draft)",
          response=StatementOut, tags=TAGS)
def move_statement(statement_id: int, step: str):
    """Draft to reviewed, reviewed to issued, or reviewed back to draft."""
    with current_itsm().unit_of_work(current_actor()) as service:
        payload = billing.statement_dict(service, STEPS[step](service, statement_id))
    return jsonify(payload)


@api.post("/statements/<int:statement_id>/credits")
@document(summary="credit an issued statement on the agency's next one", body=CreditIn,
          response=CreditOut, status=201, tags=TAGS)
def credit_statement(statement_id: int):
    """A correction of an issued statement."""
    data = CreditIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        entry = billing.credit(service, statement_id, data["amount"], data["reason"])
        payload = {"id": entry.id, "corrects": billing.statement(service, statement_id).number,
                   "amount": str(entry.amount), "reason": entry.reason}
    return _created(payload)


@api.get("/subscriptions")
@document(summary="agencies' subscriptions to recurring services",
          response=SubscriptionPage, tags=TAGS, params=[_query("agency", "an agency's code")])
def list_subscriptions():
    """Billing staff only."""
    with current_itsm().unit_of_work(current_actor()) as service:
        items = [billing.subscription_dict(service, s)
                 for s in billing.subscriptions(service, request.args.get("agency") or None)]
    return jsonify({"items": items})


@api.post("/subscriptions")
@document(summary="subscribe an agency to a recurring service", body=SubscriptionIn,
          response=SubscriptionOut, status=201, tags=TAGS)
def add_subscription():
    """So many units from a date on (to a date, optionally)."""
    data = SubscriptionIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        sub = billing.subscribe(service, data["agency"], data["service"], data["quantity"],
                                data["starts_on"], data["ends_on"], data["note"])
        payload = billing.subscription_dict(service, sub)
    return _created(payload)


@api.patch("/subscriptions/<int:sub_id>")
@document(summary="change a subscription's quantity or end date", body=SubscriptionPatch,
          response=SubscriptionOut, tags=TAGS)
def change_subscription(sub_id: int):
    """Months already issued keep what they billed."""
    data = SubscriptionPatch().load(json_body())
    if not data:
        raise ValidationError("nothing to change: give quantity or ends_on",
                              fields={"_body": ["give quantity or ends_on"]})
    with current_itsm().unit_of_work(current_actor()) as service:
        sub = billing.change_subscription(service, sub_id, units=data.get("quantity"),
                                          ends_on=data.get("ends_on"))
        payload = billing.subscription_dict(service, sub)
    return jsonify(payload)


@api.post("/time")
@document(summary="record time worked on a record under a service charged by the hour",
          body=TimeIn, response=TimeOut, status=201, tags=TAGS)
def add_time():
    """Billed on the agency's statement of the month it was worked."""
    data = TimeIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        entry = billing.record_time(service, data["record"], data["minutes"], data["service"],
                                    data["worked_on"], data["note"])
        payload = {"id": entry.id, "record": data["record"].strip().upper(),
                   "minutes": entry.minutes, "worked_on": entry.worked_on.isoformat()}
    return _created(payload)


@api.post("/contacts")
@document(summary="make a person of an agency its billing contact", body=ContactIn,
          response=ContactOut, status=201, tags=TAGS)
def add_contact():
    """The contact reads the agency's issued statements in the portal."""
    data = ContactIn().load(json_body())
    with current_itsm().unit_of_work(current_actor()) as service:
        user = billing.add_contact(service, data["agency"], data["email"])
        payload = {"agency": data["agency"], "email": user.email}
    return _created(payload)
