"""The change plugin's own API routes (the generic record routes come from the core).

- ``GET /api/v1/changes/gate?service=S&environment=E``: may a pipeline deploy now?
- ``GET /api/v1/changes/calendar?from=&to=&service=``: changes, freezes, conflicts.
- ``GET /api/v1/changes/approvals``, ``POST /api/v1/changes/approvals/<id>``: the
  approver's queue and decisions.
- ``GET /api/v1/changes/<number>/overview``, ``POST .../freeze-exception``,
  ``POST .../incidents``.
- ``GET /api/v1/changes/reports/summary``.
- The admin catalogs: ``/api/v1/changes/{templates,cab-rules,freeze-windows,
  risk-questions}`` (GET for staff; POST, PATCH and DELETE ``/<id or name>`` for admins).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, jsonify, request
from marshmallow import RAISE, Schema, fields, validate

from itsm.plugin import ValidationError, current_actor, current_itsm, document, json_body
from itsm.plugins.change import catalogs, reports, schedule
from itsm.plugins.change import gate as deploy_gate
from itsm.plugins.change import service as changes

bp = Blueprint("change_api", __name__, url_prefix="/api/v1/changes")
TAGS = ["Change"]


class GateOut(Schema):
    allowed = fields.Boolean()
    service = fields.String()
    environment = fields.String()
    change = fields.String(allow_none=True, metadata={
        "description": "the change the call is recorded on"})
    reasons = fields.List(fields.String())
    checked_at = fields.String()


class ApprovalOut(Schema):
    id = fields.Integer()
    change = fields.String()
    title = fields.String()
    change_type = fields.String()
    risk_level = fields.String()
    planned_start = fields.String(allow_none=True)
    planned_end = fields.String(allow_none=True)
    purpose = fields.String()
    quorum = fields.String()
    group = fields.String()
    approver = fields.String()
    state = fields.String()
    comment = fields.String()
    requested_at = fields.String()
    decided_at = fields.String(allow_none=True)


class ApprovalPage(Schema):
    items = fields.List(fields.Nested(ApprovalOut))


class ApprovalDecisionIn(Schema):
    class Meta:
        unknown = RAISE

    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    comment = fields.String(load_default="", validate=validate.Length(max=5000))


class CausedIncidentIn(Schema):
    class Meta:
        unknown = RAISE

    incident = fields.String(required=True, validate=validate.Length(min=3, max=32))


class CalendarChange(Schema):
    number = fields.String(required=True)
    title = fields.String()
    state = fields.String()
    change_type = fields.String(allow_none=True)
    risk_level = fields.String(allow_none=True)
    services = fields.List(fields.String(), allow_none=True)
    config_items = fields.List(fields.String(), allow_none=True)
    environment = fields.String(allow_none=True)
    planned_start = fields.String()
    planned_end = fields.String()
    freeze = fields.List(fields.String(), metadata={"description": "freeze windows it meets"})
    conflicts = fields.List(fields.String(), metadata={"description": "changes it clashes with"})


class CalendarFreeze(Schema):
    name = fields.String(required=True)
    starts_at = fields.String()
    ends_at = fields.String()
    services = fields.List(fields.String(), allow_none=True)
    reason = fields.String(allow_none=True)


class CalendarOut(Schema):
    # "from" is a Python keyword: the attribute names differ, the keys do not.
    period_from = fields.DateTime(data_key="from")
    period_to = fields.DateTime(data_key="to")
    changes = fields.List(fields.Nested(CalendarChange))
    freeze_windows = fields.List(fields.Nested(CalendarFreeze))


class OverviewOut(Schema):
    number = fields.String()
    change_type = fields.String()
    risk_score = fields.Integer(allow_none=True)
    risk_level = fields.String()
    approved = fields.Boolean()
    approval = fields.Dict()
    freeze_approval = fields.Dict()
    approvals = fields.List(fields.Nested(ApprovalOut))
    conflicts = fields.List(fields.Dict())
    freeze_windows = fields.List(fields.String())
    gate_calls = fields.List(fields.Dict())
    incidents_caused = fields.List(fields.Dict())
    incident_management = fields.Boolean()
    impact = fields.Dict(metadata={"description": "services, agencies and configuration "
                                   "items the change reaches, each with its path"})


def _load(schema: type[Schema]) -> dict:
    import marshmallow

    try:
        return schema().load(json_body())
    except marshmallow.ValidationError as exc:
        raise ValidationError("invalid request: " + ", ".join(sorted(exc.messages)),
                              fields=exc.messages) from None


def parse_time(name: str, raw: str | None, default: datetime) -> datetime:
    """An ISO date or date-time from a query argument, as aware UTC (422 otherwise)."""
    if raw in (None, ""):
        return default
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValidationError(f"{name}: an ISO date such as 2026-12-01",
                              fields={name: ["an ISO date or date-time"]}) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def period(args) -> tuple[datetime, datetime]:
    """The calendar period: ``from`` (default today) to ``to`` (default 31 days on)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = parse_time("from", args.get("from"), today)
    end = parse_time("to", args.get("to"), start + timedelta(days=31))
    if end <= start or end - start > timedelta(days=366):
        raise ValidationError("to must come after from, at most a year later",
                              fields={"to": ["after from, within a year"]})
    return start, end


@bp.get("/gate")
@document(summary="deployment gate: may this service be deployed to this environment now? "
                  "Allowed only inside the window of an approved change and outside every "
                  "freeze window; each call is recorded on the change", response=GateOut,
          tags=TAGS, params=[
              {"name": "service", "in": "query", "required": True,
               "schema": {"type": "string"}},
              {"name": "environment", "in": "query", "required": True,
               "schema": {"type": "string"}}])
def gate():
    with current_itsm().unit_of_work(current_actor()) as service:
        answer = deploy_gate.gate(service, request.args.get("service", "").strip(),
                              request.args.get("environment", "").strip())
    return jsonify(answer)


@bp.get("/calendar")
@document(summary="the change calendar: changes whose planned window overlaps the period, "
                  "freeze windows, and each change's conflicts", response=CalendarOut,
          tags=TAGS, params=[
              {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
              {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
              {"name": "service", "in": "query", "schema": {"type": "string"}}])
def calendar():
    start, end = period(request.args)
    with current_itsm().unit_of_work(current_actor()) as service:
        out = schedule.calendar(service, start, end,
                               request.args.get("service", "").strip()[:200] or None)
    return jsonify(out)


@bp.get("/approvals")
@document(summary="the approver's queue: approval requests awaiting the caller",
          response=ApprovalPage, tags=TAGS)
def approvals():
    with current_itsm().unit_of_work(current_actor()) as service:
        items = [changes.approval_dict(service.session, a) for a in changes.queue(service)]
    return jsonify({"items": items})


@bp.post("/approvals/<int:approval_id>")
@document(summary="approve or reject a change (the approver; a comment is required to "
                  "reject)", body=ApprovalDecisionIn, response=ApprovalOut, tags=TAGS)
def decide(approval_id: int):
    data = _load(ApprovalDecisionIn)
    with current_itsm().unit_of_work(current_actor()) as service:
        approval = changes.decide(service, approval_id, data["decision"], data["comment"])
        out = changes.approval_dict(service.session, approval)
    return jsonify(out)


@bp.get("/<number>/overview")
@document(summary="risk, approvals and quorum, conflicts, freeze windows, gate calls and "
                  "incidents caused of one change", response=OverviewOut, tags=TAGS)
def overview(number: str):
    with current_itsm().unit_of_work(current_actor()) as service:
        out = schedule.overview(service, changes.get_change(service, number))
    return jsonify(out)


@bp.post("/<number>/freeze-exception")
@document(summary="ask the emergency approvers to allow a planned window inside a freeze",
          response=ApprovalPage, status=201, tags=TAGS)
def freeze_exception(number: str):
    with current_itsm().unit_of_work(current_actor()) as service:
        made = changes.request_freeze_exception(service, changes.get_change(service, number))
        items = [changes.approval_dict(service.session, a) for a in made]
    return jsonify({"items": items}), 201


class CausedIncidentOut(Schema):
    number = fields.String(required=True, metadata={"description": "the incident linked"})


@bp.post("/<number>/incidents")
@document(summary="record an incident this change caused (incident management enabled)",
          body=CausedIncidentIn, response=CausedIncidentOut, status=201, tags=TAGS)
def add_incident(number: str):
    data = _load(CausedIncidentIn)
    with current_itsm().unit_of_work(current_actor()) as service:
        out = changes.link_incident(service, changes.get_change(service, number),
                                    data["incident"])
    return jsonify(out), 201


@bp.get("/reports/summary")
@document(summary="change success rate, emergency share and changes causing incidents",
          response=reports.ChangeReportSummary, tags=TAGS, params=[
              {"name": "days", "in": "query", "schema": {
                  "type": "integer", "minimum": 1, "maximum": reports.MAX_DAYS}}])
def report():
    days = reports.parse_days(request.args.get("days"))
    return jsonify(reports.report_for(current_actor(), days))


class MemberIn(Schema):
    class Meta:
        unknown = RAISE

    email = fields.String(required=True, validate=validate.Length(min=3, max=254))


class MemberPage(Schema):
    items = fields.List(fields.String(), required=True, metadata={
        "description": "the members' e-mail addresses"})


@bp.get("/groups/<group>/members")
@document(summary="members of an approver group (staff)", response=MemberPage, tags=TAGS)
def group_members(group: str):
    with current_itsm().unit_of_work(current_actor()) as service:
        emails = catalogs.members(service, group[:100])
    return jsonify({"items": emails})


@bp.post("/groups/<group>/members")
@document(summary="add a user to an approver group (admins)", body=MemberIn,
          response=MemberPage, status=201, tags=TAGS)
def add_group_member(group: str):
    data = _load(MemberIn)
    with current_itsm().unit_of_work(current_actor()) as service:
        catalogs.add_member(service, group[:100], data["email"])
        emails = catalogs.members(service, group[:100])
    return jsonify({"items": emails}), 201


@bp.delete("/groups/<group>/members/<email>")
@document(summary="take a user out of an approver group (admins)", status=204, tags=TAGS)
def remove_group_member(group: str, email: str):
    with current_itsm().unit_of_work(current_actor()) as service:
        catalogs.remove_member(service, group[:100], email[:254])
    return "", 204


def _catalog_routes(cat: catalogs.Catalog) -> None:
    """``/api/v1/changes/<catalog>`` and ``/<catalog>/<id or name>``: one route per catalog,
    each documented with its own schema and its own path (a templated ``{name}`` beside
    ``{number}`` is the same path template to OpenAPI, which forbids two)."""
    name = cat.name
    stem = cat.schema.__name__.removesuffix("Schema")
    page = type(f"Change{stem}Page", (Schema,), {
        "items": fields.List(fields.Nested(cat.schema), required=True)})
    endpoint = name.replace("-", "_")

    @document(summary=f"the {cat.label}s (staff)", response=page, tags=TAGS)
    def list_rows():
        with current_itsm().unit_of_work(current_actor()) as service:
            items = catalogs.list_rows(service, name)
        return jsonify({"items": items})

    @document(summary=f"add a {cat.label} (admins)", body=cat.schema, response=cat.schema,
              status=201, tags=TAGS)
    def add_row():
        with current_itsm().unit_of_work(current_actor()) as service:
            out = catalogs.add(service, name, json_body())
        return jsonify(out), 201

    @document(summary=f"change a {cat.label}, by id or {cat.key} (admins)", body=cat.schema,
              partial=True, response=cat.schema, tags=TAGS)
    def update_row(ident: str):
        with current_itsm().unit_of_work(current_actor()) as service:
            out = catalogs.update(service, name, ident[:100], json_body())
        return jsonify(out)

    @document(summary=f"remove a {cat.label}, by id or {cat.key} (admins)", status=204,
              tags=TAGS)
    def remove_row(ident: str):
        with current_itsm().unit_of_work(current_actor()) as service:
            catalogs.remove(service, name, ident[:100])
        return "", 204

    bp.add_url_rule(f"/{name}", f"{endpoint}_list", list_rows, methods=["GET"])
    bp.add_url_rule(f"/{name}", f"{endpoint}_add", add_row, methods=["POST"])
    bp.add_url_rule(f"/{name}/<ident>", f"{endpoint}_update", update_row, methods=["PATCH"])
    bp.add_url_rule(f"/{name}/<ident>", f"{endpoint}_remove", remove_row, methods=["DELETE"])


for _catalog in catalogs.CATALOGS.values():
    _catalog_routes(_catalog)
