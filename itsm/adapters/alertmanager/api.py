"""``POST /api/v1/integrations/alertmanager``: Alertmanager's webhook receiver."""

from __future__ import annotations

from flask import Blueprint, jsonify

from itsm.adapters.alertmanager.processing import handle
from itsm.adapters.alertmanager.schemas import AlertmanagerPayload, AlertmanagerResult
from itsm.plugin import Forbidden, current_actor, current_itsm, document, json_body

bp = Blueprint("alertmanager_api", __name__, url_prefix="/api/v1/integrations/alertmanager")
TAGS = ["Integrations"]


@bp.post("")
@document(summary="Alertmanager webhook: a firing alert group opens or updates one "
                  "incident, a resolved one resolves it",
          body=AlertmanagerPayload, response=AlertmanagerResult, status=201, also=(200,),
          tags=TAGS)
def receive():
    actor = current_actor()
    if actor.role == "requester":  # the same test as RecordService.is_staff
        raise Forbidden("the Alertmanager integration acts as IT staff: use the token of "
                        "an agent or of a service account")
    payload = AlertmanagerPayload().load(json_body())
    result = handle(current_itsm(), actor, payload)
    response = jsonify(result)
    response.status_code = 201 if result["action"] == "created" else 200
    return response
