"""``/api/v1/notification-preferences``: the caller's own notification preferences."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import RAISE, Schema, fields, validate

from itsm.adapters.email import preferences
from itsm.plugin import Boolean, Unauthorized, current_actor, current_itsm, document, json_body

bp = Blueprint("email_api", __name__, url_prefix="/api/v1/notification-preferences")
TAGS = ["Notifications"]


class RuleSchema(Schema):
    class Meta:
        unknown = RAISE

    event = fields.String(required=True, validate=[validate.Length(max=100), validate.Regexp(
        preferences.PATTERN, error="an event name, a prefix like record.* or *")],
        metadata={"description": "event name (record.commented), prefix (record.*) or *"})
    channel = fields.String(load_default="email", validate=validate.Length(min=1, max=64))
    enabled = Boolean(required=True, metadata={"description": "false: not notified"})


class PreferencesSchema(Schema):
    class Meta:
        unknown = RAISE

    items = fields.List(fields.Nested(RuleSchema), required=True,
                        validate=validate.Length(max=200))


def _user_id() -> int:
    actor = current_actor()
    if actor.id is None:
        raise Unauthorized("the system actor has no preferences")
    return actor.id


@bp.get("")
@document(summary="The caller's notification preferences", response=PreferencesSchema,
          tags=TAGS)
def read_preferences():
    user_id = _user_id()
    with current_itsm().Session() as session:
        return jsonify({"items": preferences.rules_of(session, user_id)})


@bp.put("")
@document(summary="Replace the caller's notification preferences", body=PreferencesSchema,
          response=PreferencesSchema, tags=TAGS)
def replace_preferences():
    user_id = _user_id()
    data = PreferencesSchema().load(json_body())
    with current_itsm().Session() as session:
        preferences.replace(session, user_id, data["items"])
        session.commit()
        return jsonify({"items": preferences.rules_of(session, user_id)})
