"""The transition gate's own API routes (the generic record routes, including
``POST /api/v1/transitions/<number>/transitions`` {"name": "go_live"}, come from the
core).

- ``GET /api/v1/transitions/dashboard``: readiness of every transition.
- ``GET|POST /api/v1/transitions/templates``: checklist templates (POST: gatekeepers).
- ``GET /api/v1/transitions/<number>/overview`` and ``.../report``.
- ``POST .../deliverables``, ``PATCH .../deliverables/<id>``, ``POST
  .../deliverables/<id>/submit|decision|exception``; ``POST .../acceptance``.
- ``POST .../meetings|milestones|roles``, ``PATCH .../meetings|milestones/<id>``,
  ``DELETE .../roles/<id>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import Schema, fields

from itsm.plugin import RecordService, current_actor, current_itsm, document, json_body
from itsm.plugins.transition_gate import gate as gating
from itsm.plugins.transition_gate import plan, views
from itsm.plugins.transition_gate import service as gate
from itsm.plugins.transition_gate.models import TRANSITION, ServiceTransition

bp = Blueprint("transition_gate_api", __name__, url_prefix="/api/v1/transitions")
TAGS = ["Service transition"]


def _text(**kwargs) -> fields.String:
    return fields.String(allow_none=True, **kwargs)


class DeliverableOut(Schema):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    description = _text()
    mandatory = fields.Boolean()
    document_url = _text()
    owner = _text()
    approver = _text()
    due_date = _text(metadata={"description": "ISO date"})
    state = fields.String(metadata={"description": "open, submitted, approved or rejected"})
    excepted = fields.Boolean(metadata={"description": "waived by a gate exception"})
    late = fields.Boolean()
    evidence_kind = _text()
    evidence = _text()
    evidence_note = _text()
    rejection_reason = _text()
    submitted_at = _text()
    decided_at = _text()
    decided_by = _text()


class MeetingOut(Schema):
    id = fields.Integer(required=True)
    kind = fields.String()
    scheduled_at = _text()
    location = _text()
    attendees = fields.List(fields.String())
    minutes = _text()


class MilestoneOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String()
    due_date = _text()
    done_on = _text()
    late = fields.Boolean()


class RoleOut(Schema):
    id = fields.Integer(required=True)
    role = fields.String()
    name = fields.String()
    email = _text()
    phone = _text()
    responsibility = _text()


class ExceptionOut(Schema):
    id = fields.Integer(required=True)
    deliverable_id = fields.Integer()
    deliverable = fields.String(metadata={"description": "the deliverable's title"})
    reason = fields.String()
    until = _text()
    granted_by = _text()
    granted_at = _text()
    active = fields.Boolean()


class TimelineEntry(Schema):
    date = fields.String()
    kind = fields.String(metadata={"description": "deliverable, milestone, meeting, go-live"})
    what = fields.String()
    done = fields.Boolean()
    late = fields.Boolean()


class NextMilestone(Schema):
    name = fields.String()
    due_date = _text()


class CatalogEntryRef(Schema):
    id = fields.String(metadata={"description": "the service's stable id"})
    name = fields.String()
    status = fields.String()
    url = fields.String(allow_none=True)


class TransitionRef(Schema):
    number = fields.String()
    type = fields.String()
    title = fields.String()
    state = fields.String()
    available = fields.Boolean()


class TransitionSummary(Schema):
    """A transition's line on the readiness dashboard."""

    number = fields.String(required=True)
    title = fields.String()
    project = _text()
    service = _text()
    catalog_key = _text()
    state = fields.String()
    project_manager = _text()
    service_manager = _text()
    go_live_date = _text()
    percent_complete = fields.Integer()
    deliverables = fields.Integer(metadata={"description": "how many"})
    approved = fields.Integer(metadata={"description": "how many are done or waived"})
    late_deliverables = fields.List(fields.String())
    next_milestone = fields.Nested(NextMilestone, allow_none=True)
    accepted = fields.Boolean()
    gate = fields.String(metadata={"description": "blocked, ready or passed"})
    missing = fields.Integer(metadata={"description": "how many items block the gate"})


class DashboardPage(Schema):
    items = fields.List(fields.Nested(TransitionSummary), required=True)


class TemplateOut(Schema):
    id = fields.Integer(required=True)
    name = fields.String()
    description = _text()
    active = fields.Boolean()
    items = fields.List(fields.Nested(plan.TemplateItemIn))


class TemplatePage(Schema):
    items = fields.List(fields.Nested(TemplateOut), required=True)


class Overview(TransitionSummary):
    support_days = fields.Integer(allow_none=True)
    template = _text()
    accepted_by = _text()
    accepted_at = _text()
    gate_passed_at = _text()
    support_until = _text()
    in_early_life = fields.Boolean()
    catalog_enabled = fields.Boolean()
    catalog = fields.Nested(CatalogEntryRef, allow_none=True)
    missing_items = fields.List(fields.String())
    checklist = fields.List(fields.Nested(DeliverableOut))
    meetings = fields.List(fields.Nested(MeetingOut))
    milestones = fields.List(fields.Nested(MilestoneOut))
    roles = fields.List(fields.Nested(RoleOut))
    exceptions = fields.List(fields.Nested(ExceptionOut))
    timeline = fields.List(fields.Nested(TimelineEntry))
    early_life_incidents = fields.List(fields.Nested(TransitionRef))


class Report(Schema):
    number = fields.String(required=True)
    title = fields.String()
    project = _text()
    service = _text()
    state = fields.String()
    gate = fields.String()
    gate_passed_at = _text()
    support_until = _text()
    in_early_life = fields.Boolean()
    exceptions = fields.List(fields.Nested(ExceptionOut))
    early_life_incidents = fields.List(fields.Nested(TransitionRef))


class AcceptanceOut(Schema):
    number = fields.String(required=True)
    accepted_by = _text()
    accepted_at = _text()


def _on(number: str, action: Callable[[RecordService, ServiceTransition], Any]) -> Any:
    """Run ``action`` on the transition ``number`` in one unit of work."""
    with current_itsm().unit_of_work(current_actor()) as svc:
        return action(svc, gate.get_transition(svc, number))


def _item(svc: RecordService, trn: ServiceTransition, item) -> dict[str, Any]:
    waived = gating.excepted_ids(svc.session, trn)
    return views.deliverable_dict(item, waived, gate.today())


@bp.get("/dashboard")
@document(summary="readiness of every open transition: % complete, late deliverables, "
                  "next milestone, gate status", response=DashboardPage, tags=TAGS,
          params=[{"name": "all", "in": "query", "schema": {"type": "boolean"}}])
def dashboard():
    include = request.args.get("all", "").lower() in ("1", "true", "yes")
    with current_itsm().unit_of_work(current_actor()) as svc:
        items = views.dashboard(svc, include_closed=include)
    return jsonify({"items": items})


@bp.get("/templates")
@document(summary="checklist templates", response=TemplatePage, tags=TAGS)
def list_templates():
    with current_itsm().unit_of_work(current_actor()) as svc:
        svc.require(f"{TRANSITION.name}.read")
        items = [plan.template_dict(t) for t in plan.templates(svc.session)]
    return jsonify({"items": items})


@bp.post("/templates")
@document(summary="create a checklist template or replace the one of the same name "
                  "(gatekeepers)", body=plan.TemplateIn, response=TemplateOut, status=201,
          tags=TAGS)
def save_template():
    with current_itsm().unit_of_work(current_actor()) as svc:
        out = plan.template_dict(plan.save_template(svc, json_body()))
    return jsonify(out), 201


@bp.get("/<number>/overview")
@document(summary="a transition's checklist, meetings, milestones, roles, exceptions, "
                  "timeline, gate status with what is missing, early-life incidents",
          response=Overview, tags=TAGS)
def overview(number: str):
    return jsonify(_on(number, views.overview))


@bp.get("/<number>/report")
@document(summary="the report to the project: gate, early-life support and the "
                  "service's incidents flagged during it", response=Report, tags=TAGS)
def report(number: str):
    def build(svc, trn):
        data = views.overview(svc, trn)
        keys = ("number", "title", "project", "service", "state", "gate", "gate_passed_at",
                "support_until", "in_early_life", "exceptions", "early_life_incidents")
        return {k: data[k] for k in keys}

    return jsonify(_on(number, build))


@bp.post("/<number>/deliverables")
@document(summary="add a deliverable to the checklist (project manager, gatekeepers)",
          body=gate.DeliverableIn, response=DeliverableOut, status=201, tags=TAGS)
def add_deliverable(number: str):
    body = json_body()
    return jsonify(_on(number, lambda s, t: _item(s, t, gate.save_deliverable(
        s, t, body)))), 201


@bp.patch("/<number>/deliverables/<int:item_id>")
@document(summary="change a deliverable: owner, approver, due date ...",
          body=gate.DeliverableIn, partial=True, response=DeliverableOut, tags=TAGS)
def change_deliverable(number: str, item_id: int):
    body = json_body()
    return jsonify(_on(number, lambda s, t: _item(s, t, gate.save_deliverable(
        s, t, body, gate.get_deliverable(s, t, item_id)))))


@bp.post("/<number>/deliverables/<int:item_id>/submit")
@document(summary="the owner submits a deliverable with its evidence; the approver is "
                  "told", body=gate.EvidenceIn, response=DeliverableOut, tags=TAGS)
def submit(number: str, item_id: int):
    body = json_body()
    return jsonify(_on(number, lambda s, t: _item(s, t, gate.submit(
        s, t, gate.get_deliverable(s, t, item_id), body))))


@bp.post("/<number>/deliverables/<int:item_id>/decision")
@document(summary="the approver approves or rejects (with a reason) a submitted "
                  "deliverable", body=gate.DecisionIn, response=DeliverableOut, tags=TAGS)
def decide(number: str, item_id: int):
    body = json_body()
    return jsonify(_on(number, lambda s, t: _item(s, t, gate.decide(
        s, t, gate.get_deliverable(s, t, item_id), body))))


@bp.post("/<number>/deliverables/<int:item_id>/exception")
@document(summary="a gatekeeper lets the gate pass without this deliverable until a "
                  "date, for a documented reason", body=gate.ExceptionIn,
          response=ExceptionOut, status=201, tags=TAGS)
def exception(number: str, item_id: int):
    body = json_body()

    def grant(svc, trn):
        item = gate.get_deliverable(svc, trn, item_id)
        granted = gate.grant_exception(svc, trn, item, body)
        return views.exception_dict(granted, {item.id: item.title}, gate.today())

    return jsonify(_on(number, grant)), 201


@bp.post("/<number>/acceptance")
@document(summary="the service manager accepts responsibility for the service",
          response=AcceptanceOut, tags=TAGS)
def acceptance(number: str):
    def run(svc, trn):
        gate.accept(svc, trn)
        return {"number": trn.number, "accepted_by": trn.accepted_by,
                "accepted_at": trn.accepted_at.isoformat()}

    return jsonify(_on(number, run))


@bp.post("/<number>/meetings")
@document(summary="schedule a start-up, follow-up or review meeting",
          body=plan.MeetingIn, response=MeetingOut, status=201, tags=TAGS)
def add_meeting(number: str):
    body = json_body()
    return jsonify(_on(number, lambda s, t: views.meeting_dict(plan.save_meeting(
        s, t, body)))), 201


@bp.patch("/<number>/meetings/<int:meeting_id>")
@document(summary="change a meeting: attendees, minutes ...", body=plan.MeetingIn,
          partial=True, response=MeetingOut, tags=TAGS)
def change_meeting(number: str, meeting_id: int):
    body = json_body()
    return jsonify(_on(number, lambda s, t: views.meeting_dict(plan.save_meeting(
        s, t, body, meeting_id))))


@bp.post("/<number>/milestones")
@document(summary="add a milestone", body=plan.MilestoneIn, response=MilestoneOut,
          status=201, tags=TAGS)
def add_milestone(number: str):
    body = json_body()
    return jsonify(_on(number, lambda s, t: views.milestone_dict(plan.save_milestone(
        s, t, body), gate.today()))), 201


@bp.patch("/<number>/milestones/<int:milestone_id>")
@document(summary="change a milestone (done_on marks it reached)", body=plan.MilestoneIn,
          partial=True, response=MilestoneOut, tags=TAGS)
def change_milestone(number: str, milestone_id: int):
    body = json_body()
    return jsonify(_on(number, lambda s, t: views.milestone_dict(plan.save_milestone(
        s, t, body, milestone_id), gate.today())))


@bp.post("/<number>/roles")
@document(summary="add a role and its contact details", body=plan.RoleIn,
          response=RoleOut, status=201, tags=TAGS)
def add_role(number: str):
    body = json_body()
    return jsonify(_on(number, lambda s, t: views.role_dict(plan.add_role(s, t, body)))), 201


@bp.delete("/<number>/roles/<int:role_id>")
@document(summary="remove a role", status=204, tags=TAGS)
def remove_role(number: str, role_id: int):
    _on(number, lambda s, t: plan.remove_role(s, t, role_id))
    return "", 204
