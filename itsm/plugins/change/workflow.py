"""The change record type: its schema, its workflow and the guards that keep it honest.

The guards are the rules people notice: a change cannot be scheduled or implemented
until it is approved (a standard change by its template, the others by the CAB rules'
quorum), and a planned window inside a freeze window needs an emergency approval. Each
refusal names its reason, which the API answers with 409 and the console shows.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from itsm.plugin import Actor, LinkKind, RecordType, State, Transition, Workflow
from itsm.plugins.change import service as changes
from itsm.plugins.change.impact import REFERENCES
from itsm.plugins.change.models import CHANGE_TYPES, OUTCOMES, Change

TEXT = validate.Length(max=20000)
REFS = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                   validate=validate.Length(max=50))


class ChangeSchema(Schema):
    """The change's own fields (the core adds title, description, assignee = owner ...)."""

    change_type = fields.String(validate=validate.OneOf(CHANGE_TYPES), metadata={
        "description": "standard (from a template, no CAB), normal or emergency"})
    template = fields.String(validate=validate.Length(max=100), metadata={
        "description": "name of the standard change template (standard changes)"})
    category = fields.String(validate=validate.Length(max=64))
    reason = fields.String(validate=TEXT)
    services = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                           validate=validate.Length(max=50),
                           metadata={"description": "affected services (ids, keys or "
                                                     "names; stored as stable ids)"})
    config_items = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                               validate=validate.Length(max=50),
                               metadata={"description": "affected configuration items"})
    environment = fields.String(validate=validate.Length(min=1, max=64))
    implementation_plan = fields.String(validate=TEXT)
    backout_plan = fields.String(validate=TEXT)
    test_plan = fields.String(validate=TEXT)
    planned_start = fields.AwareDateTime(default_timezone=UTC, allow_none=True)
    planned_end = fields.AwareDateTime(default_timezone=UTC, allow_none=True)
    actual_start = fields.AwareDateTime(default_timezone=UTC, allow_none=True)
    actual_end = fields.AwareDateTime(default_timezone=UTC, allow_none=True)
    risk_answers = fields.Dict(keys=fields.String(validate=validate.Length(max=64)),
                               values=fields.String(validate=validate.Length(max=100)),
                               metadata={"description": "risk questionnaire: question key "
                                                        "-> chosen answer"})
    risk_score = fields.Integer(dump_only=True, allow_none=True)
    risk_level = fields.String(dump_only=True)
    review_outcome = fields.String(validate=validate.OneOf(("", *OUTCOMES)))
    lessons = fields.String(validate=TEXT)


def _value(record: Change, data: dict[str, Any], name: str) -> Any:
    return data[name] if name in data else getattr(record, name)


def _session(record: Change) -> Session:
    session = Session.object_session(record)
    assert session is not None
    return session


def not_standard(record: Change, actor: Actor, data: dict) -> str | None:
    """Guard of submit: a standard change is pre-approved and skips assessment and CAB."""
    if record.change_type == "standard":
        return "a standard change is pre-approved: schedule it directly, without the CAB"
    return None


def window_valid(record: Change, actor: Actor, data: dict) -> str | None:
    """The planned window must end after it starts."""
    start, end = _value(record, data, "planned_start"), _value(record, data, "planned_end")
    if start is not None and end is not None and end <= start:
        return "planned_end must come after planned_start"
    return None


def risk_assessed(record: Change, actor: Actor, data: dict) -> str | None:
    """Guard of assess: every active question of the questionnaire answered validly."""
    answers = _value(record, data, "risk_answers") or {}
    _, _, errors = changes.score_risk(_session(record), answers)
    return "; ".join(errors) or None


def approvers_found(record: Change, actor: Actor, data: dict) -> str | None:
    """Guard of assess: the CAB rules name groups with approvers for this change."""
    session = _session(record)
    answers = _value(record, data, "risk_answers") or {}
    _, level, errors = changes.score_risk(session, answers)
    if errors:
        return None  # risk_assessed says why
    return "; ".join(changes.approver_problems(session, record, level, data)) or None


def approved(record: Change, actor: Actor, data: dict) -> str | None:
    """Guard of schedule and implement: the change holds its approval, for the scope it
    has (with what the transition sets)."""
    return changes.approval_refusal(_session(record), record, data)


def freeze_cleared(record: Change, actor: Actor, data: dict) -> str | None:
    """Guard of schedule and implement: no freeze window without an emergency approval."""
    return changes.freeze_refusal(_session(record), record, data)


ACTIVE_BEFORE_IMPLEMENTATION = ("draft", "assessment", "cab_review", "scheduled")

WORKFLOW = Workflow(
    states=[
        State("draft"),
        State("assessment", "Risk assessment"),
        State("cab_review", "CAB review"),
        State("scheduled"),
        State("implementing"),
        State("review", "Post-implementation review"),
        State("closed", final=True),
        State("rejected", final=True),
        State("cancelled", final=True),
        State("failed"),
        State("backout", "Backing out"),
    ],
    transitions=[
        Transition("submit", ("draft",), "assessment", "Submit for assessment",
                   fields=("services", "config_items", "reason"), guards=(not_standard,)),
        Transition("assess", ("assessment",), "cab_review", "Assess risk and request CAB",
                   required=("risk_answers", "implementation_plan", "backout_plan",
                             "planned_start", "planned_end"),
                   fields=("test_plan", "services", "config_items"),
                   guards=(window_valid, risk_assessed, approvers_found)),
        Transition("schedule", ("draft", "cab_review"), "scheduled", "Schedule",
                   required=("planned_start", "planned_end"),
                   guards=(window_valid, approved, freeze_cleared)),
        Transition("implement", ("scheduled",), "implementing", "Start implementation",
                   guards=(approved, freeze_cleared)),
        Transition("complete", ("implementing",), "review", "Implementation done",
                   fields=("actual_end",)),
        Transition("fail", ("implementing",), "failed", "Implementation failed",
                   fields=("actual_end",)),
        Transition("back_out", ("failed",), "backout", "Back out"),
        Transition("finish_backout", ("backout",), "review", "Backout done"),
        Transition("close", ("review",), "closed", "Close after review",
                   required=("review_outcome", "lessons")),
        Transition("reject", ("cab_review",), "rejected", "Reject", roles=("admin",)),
        Transition("revise", ("rejected",), "draft", "Revise and resubmit"),
        Transition("cancel", ACTIVE_BEFORE_IMPLEMENTATION, "cancelled", "Cancel"),
    ],
)

CHANGE = RecordType(name="change", model=Change, prefix="CHG", collection="changes",
                    workflow=WORKFLOW, schema=ChangeSchema, label="Change",
                    requester_roles=(), references=REFERENCES)

CAUSED = LinkKind("change_caused", "caused", "caused by change")
