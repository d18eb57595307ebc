"""The change plugin's tables: changes, and the catalogs and decisions around them.

``change_request`` extends the core ``record`` table (joined-table inheritance). The
other tables are the admin-managed catalogs (standard change templates, CAB rules, freeze
windows, risk questions) and the per-change rows (approvals, deployment gate calls).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, Record, utcnow

CHANGE_TYPES = ("standard", "normal", "emergency")
RISK_LEVELS = ("low", "medium", "high")
QUORUMS = ("all", "majority", "any")
PURPOSES = ("cab", "freeze")  # a CAB approval, or an emergency approval of a freeze hit
OUTCOMES = ("success", "partial", "failed")
APPROVAL_STATES = ("pending", "approved", "rejected", "not_needed", "superseded")


class Change(Record):
    """A request for change (``CHG…``). The change owner is the record's assignee."""

    __tablename__ = "change_request"
    id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                    primary_key=True)
    change_type: Mapped[str] = mapped_column(String(16), default="normal", index=True)
    template: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    config_items: Mapped[list[str]] = mapped_column(JSON, default=list)
    environment: Mapped[str] = mapped_column(String(64), default="production")
    implementation_plan: Mapped[str] = mapped_column(Text, default="")
    backout_plan: Mapped[str] = mapped_column(Text, default="")
    test_plan: Mapped[str] = mapped_column(Text, default="")
    planned_start: Mapped[datetime | None] = mapped_column(index=True)
    planned_end: Mapped[datetime | None] = mapped_column(index=True)
    actual_start: Mapped[datetime | None]
    actual_end: Mapped[datetime | None]
    risk_answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    risk_score: Mapped[int | None] = mapped_column(Integer)
    risk_level: Mapped[str] = mapped_column(String(16), default="")
    review_outcome: Mapped[str] = mapped_column(String(16), default="")
    lessons: Mapped[str] = mapped_column(Text, default="")
    __mapper_args__ = {"polymorphic_identity": "change"}


class ChangeTemplate(Base):
    """A pre-approved standard change: created from it, a change skips the CAB."""

    __tablename__ = "change_template"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64), default="")
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    implementation_plan: Mapped[str] = mapped_column(Text, default="")
    backout_plan: Mapped[str] = mapped_column(Text, default="")
    test_plan: Mapped[str] = mapped_column(Text, default="")
    risk_level: Mapped[str] = mapped_column(String(16), default="low")
    # What the template allows (empty or 0: anything): a change outside it is not standard.
    # ``services`` above is both the default and the allowed set.
    environments: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_window_hours: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CabRule(Base):
    """Who must approve which changes: a group of approvers and its quorum.

    Empty lists match anything; every matching rule's group must reach its quorum.
    """

    __tablename__ = "change_cab_rule"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("support_group.id", ondelete="CASCADE"),
                                          index=True)
    purpose: Mapped[str] = mapped_column(String(16), default="cab")
    quorum: Mapped[str] = mapped_column(String(16), default="majority")
    change_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    risk_levels: Mapped[list[str]] = mapped_column(JSON, default=list)
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class FreezeWindow(Base):
    """A blackout period: no change without an emergency approval (empty services: all)."""

    __tablename__ = "change_freeze_window"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime] = mapped_column(index=True)
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text, default="")


class RiskQuestion(Base):
    """One question of the risk questionnaire; each answer carries a weight."""

    __tablename__ = "change_risk_question"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(String(500))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Approval(Base):
    """One approver's decision on one change (a CAB vote or a freeze exception)."""

    __tablename__ = "change_approval"
    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                           index=True)
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("change_cab_rule.id", ondelete="SET NULL"))
    group_id: Mapped[int] = mapped_column(ForeignKey("support_group.id", ondelete="CASCADE"))
    approver_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16), default="cab")
    quorum: Mapped[str] = mapped_column(String(16), default="majority")
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    # What an approval covered (the CAB scope's values, their digest, the change's
    # version), stored when the approver approves: a guard compares it with the change.
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scope_digest: Mapped[str] = mapped_column(String(64), default="")
    record_version: Mapped[int | None] = mapped_column(Integer)


class GateCall(Base):
    """One question a pipeline asked the deployment gate, and the answer it got."""

    __tablename__ = "change_gate_call"
    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int | None] = mapped_column(
        ForeignKey("record.id", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(64))
    allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    caller: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
