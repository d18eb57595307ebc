"""Satisfaction reports on the web: ``GET /api/v1/satisfaction`` and the page
``/satisfaction`` (a bar chart of the averages drawn on the server, and the numbers),
by group, service, agency, month or type over a period of months."""

from __future__ import annotations

from flask import jsonify, request, url_for
from marshmallow import Schema, fields

from itsm.core import satisfaction
from itsm.core.api import bp as api_bp
from itsm.core.api import current_actor, document
from itsm.core.errors import ValidationError
from itsm.core.pagekit import _actor, _itsm, _render, bp

TAGS = ["Satisfaction"]


class SatisfactionLineOut(Schema):
    label = fields.String()
    count = fields.Integer()
    average = fields.Float()
    low = fields.Integer(metadata={"description": "scores at or below the threshold"})
    scores = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "how many of each score, 1 to 5"})


class LowOut(Schema):
    number = fields.String()
    type = fields.String()
    agency = fields.String()
    group = fields.String()
    service = fields.String()
    score = fields.Integer()
    comment = fields.String()
    rated_at = fields.String()


class SatisfactionTotalOut(Schema):
    count = fields.Integer()
    average = fields.Float(allow_none=True)


class SatisfactionReportOut(Schema):
    by = fields.String()
    period_from = fields.String(data_key="from")
    to = fields.String(metadata={"description": "the day after the period"})
    threshold = fields.Integer()
    total = fields.Nested(SatisfactionTotalOut)
    items = fields.List(fields.Nested(SatisfactionLineOut))
    low = fields.List(fields.Nested(LowOut))


def _args() -> tuple[str, str, str]:
    return (request.args.get("by", "group").strip(), request.args.get("from", ""),
            request.args.get("to", ""))


@api_bp.get("/satisfaction")
@document(summary="Satisfaction by group, service, agency, month or type (staff; an "
          "agency's people see their agency's only)", response=SatisfactionReportOut, tags=TAGS,
          params=[{"name": "by", "in": "query", "schema": {
                       "type": "string", "enum": list(satisfaction.DIMENSIONS)}},
                  {"name": "from", "in": "query", "schema": {"type": "string"},
                   "description": "first month, YYYY-MM (default this month)"},
                  {"name": "to", "in": "query", "schema": {"type": "string"},
                   "description": "last month, YYYY-MM (default from)"}])
def api_satisfaction():
    by, first, last = _args()
    start, end = satisfaction.period(first, last)
    return jsonify(satisfaction.read(_itsm(), current_actor(), by, start, end))


@bp.get("/satisfaction")
def satisfaction_page():
    by, first, last = _args()
    errors: dict[str, list[str]] = {}
    try:
        start, end = satisfaction.period(first, last)
        data = satisfaction.read(_itsm(), _actor(), by, start, end)
    except ValidationError as exc:
        errors = exc.fields or {"by": [str(exc)]}
        start, end = satisfaction.period("", "")
        data = satisfaction.read(_itsm(), _actor(), "group", start, end)
    types = _itsm().types.by_name
    for row in data["low"]:
        rt = types.get(row["type"])
        row["url"] = url_for("console.record_detail", collection=rt.collection,
                             number=row["number"]) if rt is not None else None
    return _render("console/satisfaction.html", report=data, chart=satisfaction.chart(
        data["items"]), errors=errors, typed={"by": by, "from": first, "to": last},
        dimensions=satisfaction.DIMENSIONS)
