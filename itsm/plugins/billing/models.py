"""The billing plugin's tables: subscriptions, recorded time, statements and credits.

A statement is an agency's bill for one calendar month. It is computed while a draft,
checked (reviewed) and then issued; an issued statement and its lines never change again
(:func:`refuse_changes_to_issued` holds that for every session, not only this plugin's
own code), so a correction is a credit recorded against it that becomes a negative line
on the agency's next statement.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Date,
    ForeignKey,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from itsm.plugin import Base, Conflict, utcnow

STATEMENT_STATES = ("draft", "reviewed", "issued")
STATE_LABELS = {"draft": "Draft", "reviewed": "Reviewed", "issued": "Issued"}
LINE_KINDS = {"one_time": "Fulfilled request", "subscription": "Subscription",
              "time": "Time recorded", "credit": "Credit"}


class Subscription(Base):
    """An agency's standing use of a recurring service: so many units from a date on."""

    __tablename__ = "billing_subscription"
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"),
                                           index=True)
    # The service's stable id (the "service" reference kind), not its name: a rename
    # of the service keeps the subscription.
    service_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TimeEntry(Base):
    """Time worked on a record under a service whose rate is by the hour."""

    __tablename__ = "billing_time_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                           index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"),
                                           index=True)
    service_id: Mapped[str] = mapped_column(String(64))
    minutes: Mapped[int] = mapped_column(Integer)
    worked_on: Mapped[date] = mapped_column(Date, index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingContact(Base):
    """A person of an agency who receives and may read its issued statements."""

    __tablename__ = "billing_contact"
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"),
                                           primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         primary_key=True)


class Statement(Base):
    """An agency's bill for one month."""

    __tablename__ = "billing_statement"
    __table_args__ = (UniqueConstraint("agency_id", "period", name="uq_billing_statement"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"),
                                           index=True)
    period: Mapped[str] = mapped_column(String(7))  # 2026-11
    state: Mapped[str] = mapped_column(String(20), default="draft")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0.00"))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    reviewed_at: Mapped[datetime | None]
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    issued_at: Mapped[datetime | None]
    lines: Mapped[list[StatementLine]] = relationship(
        back_populates="statement", order_by="StatementLine.position",
        cascade="all, delete-orphan")

    @property
    def number(self) -> str:
        return f"ST-{self.period}-{self.id:05d}"


class StatementLine(Base):
    """One line of a statement: what, how many, at what price, how much."""

    __tablename__ = "billing_statement_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("billing_statement.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    # Stable for the work billed (request:REQ0000012, subscription:4:2026-11): a key is
    # billed once.
    key: Mapped[str] = mapped_column(String(120), index=True)
    service_id: Mapped[str] = mapped_column(String(64), default="")
    service: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    statement: Mapped[Statement] = relationship(back_populates="lines")


class Credit(Base):
    """A correction of an issued statement, billed as a negative line on the next one."""

    __tablename__ = "billing_credit"
    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"),
                                           index=True)
    corrects_id: Mapped[int] = mapped_column(ForeignKey("billing_statement.id"))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))  # positive: owed back
    reason: Mapped[str] = mapped_column(String(500))
    # The statement that bills it, once one has been computed after it.
    applied_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_statement.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _issued(obj: object) -> bool:
    if isinstance(obj, Statement):
        committed = inspect(obj).attrs.state.history
        before = committed.deleted[0] if committed.deleted else obj.state
        return before == "issued"
    if isinstance(obj, StatementLine):
        statement = obj.statement
        return statement is not None and _issued(statement)
    return False


ISSUED_NEVER_CHANGES = ("an issued statement never changes: record a credit against it, "
                        "which the next statement bills")


@event.listens_for(Session, "before_flush")
def refuse_changes_to_issued(session: Session, _context, _instances) -> None:
    """No code path may change or delete an issued statement or its lines."""
    for obj in session.dirty:
        if isinstance(obj, (Statement, StatementLine)) and session.is_modified(obj) \
                and _issued(obj):
            raise Conflict(ISSUED_NEVER_CHANGES)
    for obj in [*session.deleted, *session.new]:
        statement = obj if isinstance(obj, Statement) else getattr(obj, "statement", None)
        if isinstance(obj, (Statement, StatementLine)) and statement is not None \
                and inspect(statement).persistent and _issued(statement):
            raise Conflict(ISSUED_NEVER_CHANGES)
