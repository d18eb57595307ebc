"""The facilities plugin's own API route: open requests per building."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import Schema, fields
from sqlalchemy import func, select

from itsm.core.api import current_actor, document
from itsm.core.app import current_itsm
from itsm_facilities import FacilityRequest

api = Blueprint("facilities", __name__, url_prefix="/api/v1/facilities")


class BuildingLoad(Schema):
    building = fields.String()
    open = fields.Integer(metadata={"description": "requests not done or cancelled"})


class BuildingLoadPage(Schema):
    items = fields.List(fields.Nested(BuildingLoad))


@api.get("/buildings")
@document(summary="open facility requests per building", response=BuildingLoadPage)
def buildings():
    with current_itsm().unit_of_work(current_actor()) as service:
        service.require("facilities.report")
        rows = service.session.execute(
            select(FacilityRequest.building, func.count(FacilityRequest.id))
            .where(FacilityRequest.closed_at.is_(None))
            .group_by(FacilityRequest.building).order_by(FacilityRequest.building)).all()
    return jsonify({"items": [{"building": b, "open": n} for b, n in rows]})


