"""The MOU plugin's tables, its record type and its workflow.

An agreement (``MOU…``) is a record: a memorandum of understanding with a customer
agency (``kind`` ``mou``, the record's ``agency``) or an operational level agreement
between two internal groups (``kind`` ``ola``). Its text lives in :class:`MouSection`
rows per version; :class:`MouVersion` keeps each version's diff, who proposed it and who
approved it (section 10, "Changes to this Agreement"). Targets, signatories and contacts
have their own tables; the standard template is versioned in :class:`MouTemplate`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import (
    JSON,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session

from itsm.plugin import Base, Record, RecordType, State, Transition, Workflow, utcnow

TYPE_NAME = "mou"
KINDS = ("mou", "ola")
SIDES = ("provider", "agency")
# The states in which the agreement's targets drive SLA clocks.
LIVE_STATES = ("active",)
# While an agreement is being written its text and targets are edited in place; after
# approval every change is an amendment (a new version).
EDITABLE_STATES = ("draft", "in_review")


class Mou(Record):
    """An agreement: the core's ``record`` row plus the ``mou`` table."""

    __tablename__ = "mou"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), default="mou")
    # An OLA: the group that provides the service and the group it serves.
    provider_group: Mapped[str] = mapped_column(String(100), default="")
    customer_group: Mapped[str] = mapped_column(String(100), default="")
    # Record types an OLA governs (comma-separated), "task" by default.
    ola_types: Mapped[str] = mapped_column(String(200), default="task")
    template_version: Mapped[int | None] = mapped_column(Integer)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    effective_from: Mapped[date | None] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    __mapper_args__ = {"polymorphic_identity": TYPE_NAME}


class MouTemplate(Base):
    """One version of the standard agreement template (sections 1-10, appendices A-G)."""

    __tablename__ = "mou_template"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    sections: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MouVersion(Base):
    """A version of an agreement: the first one, or an amendment with its diff."""

    __tablename__ = "mou_version"
    __table_args__ = (UniqueConstraint("mou_id", "number", name="uq_mou_version_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mou_id: Mapped[int] = mapped_column(ForeignKey("mou.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # draft (version 1 until approval), proposed, approved or rejected
    status: Mapped[str] = mapped_column(String(16), default="approved")
    summary: Mapped[str] = mapped_column(String(500), default="")
    diff: Mapped[str] = mapped_column(Text, default="")
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    proposed_by: Mapped[str] = mapped_column(String(254), default="")
    proposed_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_by: Mapped[str] = mapped_column(String(254), default="")
    approved_at: Mapped[datetime | None]


class MouSection(Base):
    """The text of one section or appendix of one version of an agreement."""

    __tablename__ = "mou_section"
    __table_args__ = (UniqueConstraint("mou_id", "version", "key",
                                       name="uq_mou_section_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mou_id: Mapped[int] = mapped_column(ForeignKey("mou.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(8))  # "1".."10", "A".."G"
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")


class MouTarget(Base):
    """A service level target: per service (empty: any service) and priority (null: any).

    ``support_hours`` names the business calendar the clocks run on (``[calendars]`` of
    the settings). ``availability`` is the agreed availability in percent, reported as
    agreed; ``compliance_percent`` is the share of records that must meet the target.
    """

    __tablename__ = "mou_target"
    __table_args__ = (Index("ix_mou_target_mou", "mou_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mou_id: Mapped[int] = mapped_column(ForeignKey("mou.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(200), default="")
    # The service's stable id (reference kind "service") when a provider knew the name
    # as the target was set, else the name: a renamed service keeps its target.
    service_ref: Mapped[str] = mapped_column(String(200), default="")
    priority: Mapped[int | None] = mapped_column(Integer)
    response_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    availability: Mapped[float | None] = mapped_column(Double)
    support_hours: Mapped[str] = mapped_column(String(64), default="default")
    compliance_percent: Mapped[float] = mapped_column(Double, default=95.0)


class MouSignatory(Base):
    """A named person who signed a version of an agreement for one side."""

    __tablename__ = "mou_signatory"
    id: Mapped[int] = mapped_column(primary_key=True)
    mou_id: Mapped[int] = mapped_column(ForeignKey("mou.id", ondelete="CASCADE"),
                                        index=True)
    version: Mapped[int] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200), default="")
    signed_on: Mapped[date] = mapped_column(Date)
    # What the signature covers: every section, appendix, target and contact as signed
    # (service.SIGNATURE_SCOPE), and their digest; approval compares it with the text.
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scope_digest: Mapped[str] = mapped_column(String(64), default="")


class MouContact(Base):
    """The relationship manager (``position`` 0) and the escalation contacts in order."""

    __tablename__ = "mou_contact"
    __table_args__ = (UniqueConstraint("mou_id", "position", name="uq_mou_contact_position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mou_id: Mapped[int] = mapped_column(ForeignKey("mou.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    when: Mapped[str] = mapped_column(String(300), default="")  # when to call them


class MouAlert(Base):
    """A compliance alert sent for one target, metric and period (a month): never twice."""

    __tablename__ = "mou_alert"
    __table_args__ = (UniqueConstraint("mou_id", "target", "metric", "period",
                                       name="uq_mou_alert_target_period"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mou_id: Mapped[int] = mapped_column(ForeignKey("mou.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(200))  # the target's service and priority
    metric: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))  # "2026-11"
    compliance: Mapped[float] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MouSchema(Schema):
    """The agreement's own fields; itsm adds title, description, agency and the rest."""

    kind = fields.String(validate=validate.OneOf(KINDS), metadata={
        "description": "mou: with a customer agency; ola: between two internal groups"})
    provider_group = fields.String(validate=validate.Length(max=100), metadata={
        "description": "OLA: the group that provides the service"})
    customer_group = fields.String(validate=validate.Length(max=100), metadata={
        "description": "OLA: the group it serves"})
    ola_types = fields.String(validate=validate.Length(max=200), metadata={
        "description": "OLA: record types it governs, comma-separated (task)"})
    effective_from = fields.Date(allow_none=True)
    effective_to = fields.Date(allow_none=True)
    template_version = fields.Integer(dump_only=True, allow_none=True)
    current_version = fields.Integer(dump_only=True)

    @validates_schema
    def _period(self, data: dict[str, Any], **_kwargs: Any) -> None:
        start, end = data.get("effective_from"), data.get("effective_to")
        if start and end and end < start:
            raise ValidationError("must not be before effective_from", "effective_to")


def _signed_by_both_sides(record: Mou, actor: Any, data: dict) -> str | None:
    """Approval and activation need a named signatory of each side on the current
    version, whose signature covers the agreement's text, targets and contacts as they
    are now."""
    from itsm.plugins.mou.service import signature_refusal  # the service imports this

    session = object_session(record)
    sides = set(session.scalars(select(MouSignatory.side).where(
        MouSignatory.mou_id == record.id, MouSignatory.version == record.current_version)))
    missing = [side for side in SIDES if side not in sides]
    if missing:
        return ("a signatory of each side must sign version "
                f"{record.current_version} first (missing: {', '.join(missing)})")
    return signature_refusal(session, record)


STAFF = ("agent",)

WORKFLOW = Workflow(
    states=[State("draft"), State("in_review", label="In review"), State("approved"),
            State("active"), State("expired", final=True),
            State("superseded", final=True), State("withdrawn", final=True)],
    transitions=[
        Transition("submit", ("draft",), "in_review", label="Submit for review",
                   roles=STAFF),
        Transition("revise", ("in_review",), "draft", label="Back to draft", roles=STAFF),
        Transition("approve", ("in_review",), "approved", label="Approve (both sides signed)",
                   roles=STAFF, guards=(_signed_by_both_sides,)),
        Transition("activate", ("approved",), "active", roles=STAFF,
                   fields=("effective_from", "effective_to"),
                   guards=(_signed_by_both_sides,)),
        Transition("expire", ("active",), "expired", roles=STAFF),
        Transition("supersede", ("active", "approved"), "superseded", roles=STAFF),
        Transition("withdraw", ("draft", "in_review", "approved"), "withdrawn",
                   roles=STAFF),
    ],
)

MOU = RecordType(
    name=TYPE_NAME, model=Mou, prefix="MOU", collection="mous", workflow=WORKFLOW,
    schema=MouSchema, label="Agreement", requester_roles=())
