"""The catalog plugin's tables: categories, services, offerings, feedback, technical
documents, and the two record types (requests and their fulfillment tasks)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, Record, utcnow

SERVICE_STATUSES = ("planned", "in_transition", "live", "retired")
BILLING_PERIODS = ("", "one_time", "monthly", "quarterly", "yearly", "per_use", "hourly")
APPROVALS = ("none", "manager", "service_owner", "group")
TASK_ORDERS = ("sequential", "parallel")
FEEDBACK_KINDS = ("problem", "comment", "suggestion")
FEEDBACK_STATES = ("new", "accepted", "done", "declined")
DOCUMENT_KINDS = ("runbook", "architecture", "contacts", "recovery", "other")


class Category(Base):
    """A heading of the catalog under which end users browse services."""

    __tablename__ = "catalog_category"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)


class Service(Base):
    """A service described in business language, with its owner, hours and costs."""

    __tablename__ = "catalog_service"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalog_category.id", ondelete="SET NULL"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    support_hours: Mapped[str] = mapped_column(String(200), default="")
    rate_unit: Mapped[str] = mapped_column(String(100), default="")
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    billing_period: Mapped[str] = mapped_column(String(20), default="")
    cost_notes: Mapped[str] = mapped_column(Text, default="")
    faq_url: Mapped[str] = mapped_column(String(500), default="")
    help_url: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20), default="planned", index=True)
    # The group that resolves the service's incidents (routing by service, before category).
    resolver_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("support_group.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceAgency(Base):
    """An agency that may request a service; a service without any row is for everyone."""

    __tablename__ = "catalog_service_agency"
    service_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_service.id", ondelete="CASCADE"), primary_key=True)
    agency_id: Mapped[int] = mapped_column(
        ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True)


class Offering(Base):
    """Something a user may request of a service: its form, approval, tasks and targets."""

    __tablename__ = "catalog_offering"
    __table_args__ = (UniqueConstraint("service_id", "code", name="uq_catalog_offering_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_service.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    form: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    approval: Mapped[str] = mapped_column(String(20), default="none")
    approval_group_id: Mapped[int | None] = mapped_column(ForeignKey("support_group.id"))
    tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    task_order: Mapped[str] = mapped_column(String(20), default="sequential")
    response_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Approver(Base):
    """A manager who approves the requests of an agency (approval "manager")."""

    __tablename__ = "catalog_approver"
    agency_id: Mapped[int] = mapped_column(
        ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)


class Feedback(Base):
    """A user's problem report, comment or suggestion about a catalog entry."""

    __tablename__ = "catalog_feedback"
    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_service.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    state: Mapped[str] = mapped_column(String(20), default="new", index=True)
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TechnicalDocument(Base):
    """A document resolver teams need to run and restore a service (IT staff only)."""

    __tablename__ = "catalog_document"
    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_service.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="runbook")
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    review_due: Mapped[date | None] = mapped_column(Date, index=True)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentVersion(Base):
    """One version of a technical document; versions are never changed, only added."""

    __tablename__ = "catalog_document_version"
    __table_args__ = (UniqueConstraint("document_id", "number",
                                       name="uq_catalog_document_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("catalog_document.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(String(500), default="")
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceRequest(Record):
    """A request for an offering (REQ…): the answers to its form, approval, targets."""

    __tablename__ = "catalog_request"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    offering_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_offering.id"),
                                                    index=True)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_service.id"),
                                                   index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    approval: Mapped[str] = mapped_column(String(20), default="none")
    decided_by: Mapped[str] = mapped_column(String(254), default="")
    decided_at: Mapped[datetime | None]
    # What the approver approved (hooks.REQUEST_SCOPE: offering and answers) and its
    # digest; fulfilment compares the request with it.
    approved_scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    approved_digest: Mapped[str] = mapped_column(String(64), default="")
    response_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    fulfilled_at: Mapped[datetime | None]
    # The requester's rating of the fulfilment (1-5) and what they wrote with it.
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    satisfaction_comment: Mapped[str] = mapped_column(Text, default="")
    __mapper_args__ = {"polymorphic_identity": "request"}


class FulfillmentTask(Record):
    """One piece of work that fulfils a request (TSK…), done by a resolver group."""

    __tablename__ = "catalog_task"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("record.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"polymorphic_identity": "task", "inherit_condition": id == Record.id}
