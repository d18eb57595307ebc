"""The problem record type: its table, its fields, its workflow and its link kind.

A problem groups incidents that share a cause. It is investigated (root cause), becomes
a *known error* once a workaround is documented, and is resolved when the cause is
removed. The type is staff-only: requesters never open or read problems.
"""

from __future__ import annotations

from datetime import datetime

from marshmallow import Schema, fields, validate
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import LinkKind, Record, RecordType, State, Transition, Workflow

TYPE_NAME = "problem"
LONG_TEXT = 20000

# "PRB0000001 is the problem behind INC0000042"; on the incident: "has problem PRB…".
PROBLEM_OF = LinkKind("problem_of", "problem behind", "has problem")

# States of the known error database: a workaround is documented. Suggestions offer only
# the live known errors; the database also lists resolved ones (the fix may not have
# reached every site yet).
KNOWN_ERROR_STATES = ("known_error", "resolved")
# Problems still being worked on: they "cover" an incident trend. A resolved problem
# whose incidents keep coming is worth a fresh look, so it no longer counts.
WORKING_STATES = ("new", "under_investigation", "known_error")


class Problem(Record):
    """A problem: the core's ``record`` row plus the ``problem`` table."""

    __tablename__ = "problem"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    category: Mapped[str] = mapped_column(String(100), default="")
    affected_service: Mapped[str] = mapped_column(String(200), default="")
    root_cause: Mapped[str] = mapped_column(Text, default="")
    workaround: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(Text, default="")
    known_error_at: Mapped[datetime | None]
    __mapper_args__ = {"polymorphic_identity": TYPE_NAME}


class ProblemSchema(Schema):
    """The problem's own fields; itsm adds title, description, priority and the rest."""

    category = fields.String(validate=validate.Length(max=100), metadata={
        "description": "the incident category this problem concerns (for trends)"})
    affected_service = fields.String(validate=validate.Length(max=200), metadata={
        "description": "the service the incidents affect"})
    root_cause = fields.String(validate=validate.Length(max=LONG_TEXT), metadata={
        "description": "root-cause analysis notes"})
    workaround = fields.String(validate=validate.Length(max=LONG_TEXT), metadata={
        "description": "how to restore service until the cause is removed"})
    resolution = fields.String(validate=validate.Length(max=LONG_TEXT), metadata={
        "description": "how the cause was removed"})
    known_error_at = fields.AwareDateTime(dump_only=True, allow_none=True, metadata={
        "description": "when the problem became a known error"})


STAFF = ("agent",)

WORKFLOW = Workflow(
    states=[State("new"), State("under_investigation"),
            State("known_error", label="Known error"), State("resolved"),
            State("closed", final=True), State("cancelled", final=True)],
    transitions=[
        Transition("investigate", ("new",), "under_investigation", label="Start investigation",
                   roles=STAFF, fields=("assignee", "group", "root_cause")),
        Transition("record_known_error", ("new", "under_investigation"), "known_error",
                   label="Record known error", roles=STAFF,
                   required=("root_cause", "workaround"), fields=("category",
                                                                  "affected_service")),
        Transition("resolve", ("under_investigation", "known_error"), "resolved",
                   roles=STAFF, required=("resolution",), fields=("root_cause",)),
        Transition("reopen", ("resolved",), "under_investigation", roles=STAFF),
        Transition("close", ("resolved",), "closed", roles=STAFF),
        Transition("cancel", ("*",), "cancelled", roles=STAFF),
    ],
)

PROBLEM = RecordType(
    name=TYPE_NAME, model=Problem, prefix="PRB", collection="problems", workflow=WORKFLOW,
    schema=ProblemSchema, label="Problem", requester_roles=(),
    references={"affected_service": "service"})
