"""``/api/v1/webhooks``: webhook subscriptions, for admins."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import RAISE, Schema, fields, validate

from itsm.adapters.webhooks import subscriptions
from itsm.plugin import Boolean, Forbidden, current_actor, current_itsm, document, json_body

bp = Blueprint("webhooks_api", __name__, url_prefix="/api/v1/webhooks")
TAGS = ["Webhooks"]


class WebhookIn(Schema):
    class Meta:
        unknown = RAISE

    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                     validate=validate.Length(max=2000))
    events = fields.List(fields.String(validate=validate.Regexp(
        subscriptions.PATTERN, error="an event name, a prefix like record.* or *")),
        required=True, validate=validate.Length(min=1, max=50))
    secret = fields.String(validate=validate.Length(min=16, max=200), metadata={
        "description": "HMAC key of X-Itsm-Signature; generated when omitted"})
    format = fields.String(load_default="json", validate=validate.OneOf(subscriptions.FORMATS),
                           metadata={"description": "json (itsm.event/1) or slack ({text})"})
    description = fields.String(load_default="", validate=validate.Length(max=200))


class WebhookOut(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    format = fields.String()
    description = fields.String()
    active = Boolean()
    secret_prefix = fields.String(metadata={"description": "first characters of the secret"})
    secret = fields.String(metadata={"description": "the whole secret: only on creation"})
    created_by = fields.String()
    created_at = fields.DateTime()


class WebhookList(Schema):
    items = fields.List(fields.Nested(WebhookOut))


def _admin():
    actor = current_actor()
    if actor.role != "admin":
        raise Forbidden("only admins manage webhooks")
    return actor


@bp.get("")
@document(summary="List webhook subscriptions (admins)", response=WebhookList, tags=TAGS)
def list_webhooks():
    _admin()
    with current_itsm().Session() as session:
        return jsonify({"items": [subscriptions.to_dict(s)
                                  for s in subscriptions.listed(session)]})


@bp.post("")
@document(summary="Subscribe a URL to events (admins); the answer shows the secret once",
          body=WebhookIn, response=WebhookOut, status=201, tags=TAGS)
def create_webhook():
    actor = _admin()
    data = WebhookIn().load(json_body())
    with current_itsm().Session() as session:
        subscription, secret = subscriptions.create(
            session, url=data["url"], events=data["events"], secret=data.get("secret"),
            fmt=data["format"], description=data["description"], created_by=actor.email)
        session.commit()
        body = {**subscriptions.to_dict(subscription), "secret": secret}
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = f"{bp.url_prefix}/{body['id']}"
    return response


@bp.delete("/<int:subscription_id>")
@document(summary="Remove a webhook subscription (admins)", response=WebhookOut, tags=TAGS)
def delete_webhook(subscription_id: int):
    _admin()
    with current_itsm().Session() as session:
        subscription = subscriptions.remove(session, subscription_id)
        body = subscriptions.to_dict(subscription)
        session.commit()
    return jsonify(body)
