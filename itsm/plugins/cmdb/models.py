"""The cmdb's tables: CI types, configuration items, their relations, agencies that use
them, and the history that answers "as it was on date D"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from itsm.plugin import Base, UTCDateTime, utcnow

LIFECYCLE = {"planned": "Planned", "in_use": "In use", "maintenance": "Maintenance",
             "retired": "Retired"}


@dataclass(frozen=True)
class RelationKind:
    """A typed relation ``source <label> target``; ``dependent`` names the end that
    relies on the other, so impact flows from the provider to the dependent."""

    name: str
    label: str
    inverse: str
    dependent: str = "source"


# "part of" points from the part to the whole, and the whole relies on its parts; for the
# others the source relies on the target (an application runs on a server).
RELATION_KINDS = {k.name: k for k in (
    RelationKind("depends_on", "depends on", "is needed by"),
    RelationKind("runs_on", "runs on", "runs"),
    RelationKind("hosted_by", "hosted by", "hosts"),
    RelationKind("connected_to", "connected to", "connects"),
    RelationKind("part_of", "part of", "consists of", dependent="target"),
)}


class CiType(Base):
    """A kind of configuration item and its own attributes, defined as data."""

    __tablename__ = "cmdb_ci_type"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    # [{"name", "label", "type": string|integer|number|boolean|date|choice,
    #   "required", "choices"}]: a marshmallow schema is generated from it.
    attributes: Mapped[list] = mapped_column(JSON, default=list)
    is_service: Mapped[bool] = mapped_column(Boolean, default=False)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)


class ConfigItem(Base):
    """A configuration item: the current state (history keeps every earlier one)."""

    __tablename__ = "cmdb_ci"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    type_key: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    lifecycle: Mapped[str] = mapped_column(String(20), default="in_use")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey(
        "user_account.id", ondelete="SET NULL"))
    support_group_id: Mapped[int | None] = mapped_column(ForeignKey(
        "support_group.id", ondelete="SET NULL"))
    location: Mapped[str] = mapped_column(String(200), default="")
    agency_id: Mapped[int | None] = mapped_column(ForeignKey(
        "agency.id", ondelete="SET NULL"), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The stable id of the service this CI *is* (business services only): the catalog's
    # id when the catalog provides services, else one of the cmdb's own.
    service_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(40), default="")  # csv, json, ansible ...
    merged_into_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class CiAgency(Base):
    """An agency that uses a CI (a business service used by two agencies)."""

    __tablename__ = "cmdb_ci_agency"
    ci_id: Mapped[int] = mapped_column(ForeignKey("cmdb_ci.id", ondelete="CASCADE"),
                                       primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"),
                                           primary_key=True, index=True)


class Relation(Base):
    """``source <kind> target``; never deleted, ended with ``removed_at`` so the graph
    of any past date can be read."""

    __tablename__ = "cmdb_relation"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[int] = mapped_column(ForeignKey("cmdb_ci.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("cmdb_ci.id", ondelete="CASCADE"))
    # Derived from kind at insert: the walk reads one pair of columns for every kind.
    dependent_id: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_cmdb_relation_provider", "provider_id", "removed_at"),
        Index("ix_cmdb_relation_dependent", "dependent_id", "removed_at"),
        Index("ix_cmdb_relation_source", "source_id"),
        # The impact walk's look-ups: live relations by the end a step leaves from, the
        # other end in the index itself, so PostgreSQL never reads the table to walk.
        Index("ix_cmdb_relation_live_provider", "provider_id",
              postgresql_include=["dependent_id"], postgresql_where=text("removed_at IS NULL"),
              sqlite_where=text("removed_at IS NULL")),
        Index("ix_cmdb_relation_live_dependent", "dependent_id",
              postgresql_include=["provider_id"], postgresql_where=text("removed_at IS NULL"),
              sqlite_where=text("removed_at IS NULL")),
    )


class CiHistory(Base):
    """One change of a CI: what changed (``changes``: field -> [before, after]) and the
    whole CI after it (``snapshot``), so "as on date D" is one row, not a replay."""

    __tablename__ = "cmdb_ci_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    ci_id: Mapped[int] = mapped_column(ForeignKey("cmdb_ci.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(254), default="")
    action: Mapped[str] = mapped_column(String(32))  # created updated retired related ...
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_cmdb_ci_history_ci_at", "ci_id", "at"),)


TABLES = [CiType.__table__, ConfigItem.__table__, CiAgency.__table__, Relation.__table__,
          CiHistory.__table__]
