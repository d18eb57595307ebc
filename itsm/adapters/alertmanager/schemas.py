"""The Alertmanager webhook payload (version 4), validated before anything is written."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

STATUSES = ("firing", "resolved")


def _labels(**kwargs) -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=validate.Length(max=200)),
                       values=fields.String(validate=validate.Length(max=10_000)),
                       load_default=dict, **kwargs)


class AlertIn(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    labels = _labels()
    annotations = _labels()
    startsAt = fields.String(load_default="", validate=validate.Length(max=64))  # noqa: N815
    endsAt = fields.String(load_default="", validate=validate.Length(max=64))  # noqa: N815
    generatorURL = fields.String(load_default="",  # noqa: N815
                                 validate=validate.Length(max=2000))
    fingerprint = fields.String(load_default="", validate=validate.Length(max=200))


class AlertmanagerPayload(Schema):
    """What Alertmanager's webhook_config sends; unknown keys are ignored."""

    class Meta:
        unknown = EXCLUDE

    version = fields.String(required=True, validate=validate.Equal(
        "4", error="only version 4 of the Alertmanager webhook payload is understood"))
    groupKey = fields.String(required=True,  # noqa: N815
                             validate=validate.Length(min=1, max=10_000))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    receiver = fields.String(load_default="", validate=validate.Length(max=200))
    groupLabels = _labels()  # noqa: N815
    commonLabels = _labels()  # noqa: N815
    commonAnnotations = _labels()  # noqa: N815
    externalURL = fields.String(load_default="",  # noqa: N815
                                validate=validate.Length(max=2000))
    truncatedAlerts = fields.Integer(load_default=0)  # noqa: N815
    alerts = fields.List(fields.Nested(AlertIn), required=True,
                         validate=validate.Length(min=1, max=1000))


class AlertmanagerResult(Schema):
    action = fields.String(metadata={
        "description": "created, updated, unchanged, resolved or ignored"})
    number = fields.String(allow_none=True, metadata={"description": "the record's number"})
    state = fields.String(allow_none=True)
