"""The transition gate's tables: the transition record type and the checklist, meetings,
milestones, roles and gate exceptions hanging off each transition, plus the
admin-editable checklist templates."""

from __future__ import annotations

from datetime import UTC, date, datetime

from marshmallow import Schema, fields, validate
from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, LinkKind, Record, RecordType, State, Transition, Workflow, utcnow

TYPE_NAME = "service_transition"
DELIVERABLE_STATES = ("open", "submitted", "approved", "rejected")
# What the pages say for each code: people read a checklist, not the stored values.
DELIVERABLE_STATE_LABELS = {"open": "Not submitted", "submitted": "Waiting for approval",
                            "approved": "Approved", "rejected": "Rejected"}
MEETING_KINDS = ("start_up", "follow_up", "review")
MEETING_KIND_LABELS = {"start_up": "Start-up", "follow_up": "Follow-up", "review": "Review"}
GATE_LABELS = {"blocked": "Blocked", "ready": "Ready", "passed": "Passed"}
EVIDENCE_KINDS = ("", "link", "record", "attachment")
# Transitions that have not passed the gate yet: they hold their service back.
OPEN_STATES = ("planning", "in_transition")
# "TRN0000003 early-life incident INC0000042": an incident of the service while the
# transition's early-life support period runs.
EARLY_LIFE = LinkKind("early_life_incident", "early-life incident", "early-life incident of")


class ServiceTransition(Record):
    """A transition (``TRN…``): the core's ``record`` row plus ``service_transition``."""

    __tablename__ = "service_transition"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    project: Mapped[str] = mapped_column(String(200), default="")
    service: Mapped[str] = mapped_column(String(200), default="", index=True)
    service_name: Mapped[str] = mapped_column(String(200), default="")
    catalog_key: Mapped[str] = mapped_column(String(100), default="", index=True)
    # The catalog's stable id of the service: a rename of its key keeps the reference.
    catalog_id: Mapped[int | None] = mapped_column(Integer, index=True)
    project_manager: Mapped[str] = mapped_column(String(254), default="")
    service_manager: Mapped[str] = mapped_column(String(254), default="")
    go_live_date: Mapped[date | None] = mapped_column(Date)
    support_days: Mapped[int] = mapped_column(Integer, default=30)
    template: Mapped[str] = mapped_column(String(100), default="")
    accepted_by: Mapped[str] = mapped_column(String(254), default="")
    accepted_at: Mapped[datetime | None]
    # What the service manager accepted: the checklist and the service, as values and
    # their digest (service.ACCEPTANCE_SCOPE); go-live compares it with the checklist.
    accepted_scope: Mapped[dict] = mapped_column(JSON, default=dict)
    accepted_digest: Mapped[str] = mapped_column(String(64), default="")
    gate_passed_at: Mapped[datetime | None]
    support_until: Mapped[datetime | None] = mapped_column(index=True)
    __mapper_args__ = {"polymorphic_identity": TYPE_NAME}


class ChecklistTemplate(Base):
    """A named checklist of deliverables new transitions start from."""

    __tablename__ = "transition_template"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # [{"title", "description", "mandatory", "document_url", "due_days_before"}, ...]
    items: Mapped[list] = mapped_column(JSON, default=list)


class Deliverable(Base):
    """One item of a transition's checklist: what, by whom, approved by whom, by when."""

    __tablename__ = "transition_deliverable"
    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(
        ForeignKey("record.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    mandatory: Mapped[bool] = mapped_column(Boolean, default=True)
    document_url: Mapped[str] = mapped_column(String(500), default="")
    owner: Mapped[str] = mapped_column(String(254), default="")
    approver: Mapped[str] = mapped_column(String(254), default="")
    # The role that approves it, from its template ("Service desk lead"): whoever holds
    # that role in the transition becomes the approver; empty: set by hand.
    approver_role: Mapped[str] = mapped_column(String(100), default="")
    due_date: Mapped[date | None] = mapped_column(Date, index=True)
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    evidence_kind: Mapped[str] = mapped_column(String(16), default="")
    evidence: Mapped[str] = mapped_column(String(500), default="")
    evidence_note: Mapped[str] = mapped_column(Text, default="")
    rejection_reason: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str] = mapped_column(String(254), default="")
    reminded_at: Mapped[datetime | None]
    # What the approver approved (service.DELIVERABLE_SCOPE): the item and its evidence.
    approved_scope: Mapped[dict] = mapped_column(JSON, default=dict)
    approved_digest: Mapped[str] = mapped_column(String(64), default="")


class Meeting(Base):
    """A start-up, follow-up or review meeting with its attendees and minutes."""

    __tablename__ = "transition_meeting"
    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(
        ForeignKey("record.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime]
    location: Mapped[str] = mapped_column(String(200), default="")
    attendees: Mapped[list] = mapped_column(JSON, default=list)
    minutes: Mapped[str] = mapped_column(Text, default="")


class Milestone(Base):
    """A dated milestone of a transition; done when ``done_on`` is set."""

    __tablename__ = "transition_milestone"
    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(
        ForeignKey("record.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[date] = mapped_column(Date)
    done_on: Mapped[date | None] = mapped_column(Date)


class Role(Base):
    """Who is responsible for what in a transition, with contact details."""

    __tablename__ = "transition_role"
    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(
        ForeignKey("record.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    responsibility: Mapped[str] = mapped_column(Text, default="")


class GateException(Base):
    """A gatekeeper's documented exception: a deliverable counts as done until a date."""

    __tablename__ = "transition_exception"
    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(
        ForeignKey("record.id", ondelete="CASCADE"), index=True)
    deliverable_id: Mapped[int] = mapped_column(
        ForeignKey("transition_deliverable.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    until: Mapped[date] = mapped_column(Date)
    granted_by: Mapped[str] = mapped_column(String(254))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class TransitionSchema(Schema):
    """The transition's own fields; itsm adds title, description and the rest."""

    project = fields.String(required=True, validate=validate.Length(min=1, max=200),
                            metadata={"description": "the project delivering the service"})
    service = fields.String(required=True, validate=validate.Length(min=1, max=200),
                            metadata={"description": "the catalog key of the service, or "
                                                     "its name when the catalog does not "
                                                     "know it"})
    project_manager = fields.Email(required=True, metadata={
        "description": "e-mail of the project manager"})
    service_manager = fields.Email(required=True, metadata={
        "description": "e-mail of the service manager who accepts the service"})
    go_live_date = fields.Date(required=True, metadata={"description": "target go-live"})
    support_days = fields.Integer(validate=validate.Range(0, 365), metadata={
        "description": "days of early-life support after go-live"})
    template = fields.String(validate=validate.Length(max=100), metadata={
        "description": "checklist template to start from (default: the setting)"})
    service_name = fields.String(dump_only=True)
    catalog_key = fields.String(dump_only=True)
    catalog_id = fields.Integer(dump_only=True, allow_none=True, metadata={
        "description": "the catalog's stable id of the service"})
    accepted_by = fields.String(dump_only=True)
    accepted_at = fields.AwareDateTime(dump_only=True, allow_none=True,
                                       default_timezone=UTC)
    gate_passed_at = fields.AwareDateTime(dump_only=True, allow_none=True,
                                          default_timezone=UTC)
    support_until = fields.AwareDateTime(dump_only=True, allow_none=True,
                                         default_timezone=UTC)


STAFF = ("agent",)

WORKFLOW = Workflow(
    states=[State("planning"), State("in_transition", label="In transition"),
            State("early_life", label="Live, early-life support"),
            State("closed", final=True), State("cancelled", final=True)],
    transitions=[
        Transition("start", ("planning",), "in_transition", label="Start transition",
                   roles=STAFF),
        Transition("go_live", ("planning", "in_transition"), "early_life", label="Go live",
                   roles=STAFF),
        Transition("close", ("early_life",), "closed", label="Close", roles=STAFF),
        Transition("cancel", ("planning", "in_transition"), "cancelled", roles=STAFF),
    ],
)

TRANSITION = RecordType(
    name=TYPE_NAME, model=ServiceTransition, prefix="TRN", collection="transitions",
    workflow=WORKFLOW, schema=TransitionSchema, label="Service transition",
    requester_roles=())
