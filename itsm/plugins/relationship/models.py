"""The relationship plugin's tables: relationship managers' portfolios and the monthly
service reviews kept for each agency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, utcnow


class Portfolio(Base):
    """An agency in a relationship manager's portfolio."""

    __tablename__ = "relationship_portfolio"
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"),
                                           primary_key=True)


class Review(Base):
    """An agency's service review of one month, as the processes reported it then: kept
    unchanged, so next year's reader sees what was reviewed."""

    __tablename__ = "relationship_review"
    __table_args__ = (UniqueConstraint("agency_id", "period", name="uq_relationship_review"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"),
                                           index=True)
    period: Mapped[str] = mapped_column(String(7))  # 2026-11
    sections: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
