"""SQLAlchemy models of the core tables: records, journal, links, attachments, people, outbox.

A plugin's record type subclasses :class:`Record` with its own table (joined-table
inheritance): the shared columns live in ``record``, the type's own in its table.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    insert,
    inspect,
    select,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    make_transient_to_detached,
    mapped_column,
)
from sqlalchemy.orm.attributes import instance_dict
from sqlalchemy.types import TypeDecorator

# Stable constraint names so that migrations can address them on every back end.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timestamps stored as UTC and always returned timezone-aware, on every back end."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):  # keep microseconds: ordering and claims
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; itsm stores aware UTC timestamps")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


def insert_now(session: Session, objects: list[Any]) -> bool:
    """Write new objects of one mapped class with plain INSERT statements, at once, and
    attach them to ``session`` as persistent objects with their new ids. Returns False,
    having written nothing, for a class this cannot write (see :func:`_insert_plan`) or
    inside a savepoint: the caller then adds the objects to the session as usual.

    For the rows every command writes (the record, its journal entry, outbox event and
    SLA clocks): the unit of work's bookkeeping cost several times the statements. A
    column left None that has a client-side default gets it, on the object too, as a
    flush would. A joined-table subclass (a record type) gets one INSERT per table.
    """
    if not objects:
        return True
    cls = type(objects[0])
    plan = _insert_plan(cls)
    events = inspect(cls).dispatch  # listeners may come after the plan was made
    if plan is None or events.before_insert or events.after_insert \
            or session.in_nested_transaction():
        return False  # in a savepoint, only the unit of work forgets what a rollback undid
    rows = [[_row(obj, columns) for _, columns in plan] for obj in objects]
    (base, _), *joined = plan
    plain, (one, many) = _insert(base), _returning_ids(base)
    dialect = session.get_bind().dialect
    if len(rows) == 1 and len(joined) == 1 and dialect.name == "postgresql":
        # A record of a type with a table of its own: both rows in one statement.
        (base_row, own_row), = rows
        ids = [session.execute(_insert_both(cls), {
            **{f"base_{k}": v for k, v in base_row.items()},
            **{f"own_{k}": v for k, v in own_row.items()}}).scalar_one()]
        joined = []  # written by that statement
    elif not dialect.insert_returning:  # MySQL: the driver's last row id
        ids = [session.execute(plain, row[0]).inserted_primary_key[0] for row in rows]
    elif len(rows) == 1:
        ids = [session.execute(one, rows[0][0]).scalar_one()]
    elif dialect.insert_executemany_returning_sort_by_parameter_order:
        ids = list(session.scalars(many, [row[0] for row in rows]))
    else:
        ids = [session.execute(one, row[0]).scalar_one() for row in rows]
    for index, (table, _) in enumerate(joined, start=1):
        key = table.primary_key.columns[0].key
        session.execute(_insert(table), [{**row[index], key: id_}
                                         for row, id_ in zip(rows, ids, strict=True)])
    for obj, id_ in zip(objects, ids, strict=True):
        obj.id = id_
        make_transient_to_detached(obj)
        session.add(obj)
    return True


def write_now(session: Session, objects: list[Any]) -> bool:
    """:func:`insert_now`, or else add ``objects`` to the session for its next flush.
    True when they are written already (and have their ids)."""
    if insert_now(session, objects):
        return True
    session.add_all(objects)
    return False


_Columns = list[tuple[Any, str, Any]]  # (column, attribute, client-side default)


@functools.cache
def _insert_plan(cls: type) -> list[tuple[Any, _Columns]] | None:
    """The tables of ``cls``, base first, with the columns to write; None for a class
    only the unit of work may write: one with relationships, server-side defaults or a
    default that needs the statement's context (insert events are checked on each call)."""
    mapper = inspect(cls)
    if mapper.relationships \
            or [c.key for c in mapper.base_mapper.local_table.primary_key] != ["id"]:
        return None
    plan = []
    for level in reversed(list(mapper.iterate_to_root())):
        table = level.local_table
        columns: _Columns = []
        for column in table.columns:
            if column.primary_key and (level.inherits is None or column.foreign_keys):
                continue  # the base's id is returned; a subclass's is the base's
            default = column.default
            if column.server_default is not None or (
                    default is not None and not default.is_scalar
                    and not (default.is_callable  # wrapped: a function of no argument
                             and default.arg is not getattr(default, "_fn", default.arg))):
                return None
            columns.append((column, mapper.get_property_by_column(column).key, default))
        plan.append((table, columns))
    return plan


def _row(obj: Any, columns: _Columns) -> dict[str, Any]:
    """The column values of a new object; every attribute ends up set on it (one never
    set would read as expired once the object is attached, and be loaded again)."""
    state = instance_dict(obj)  # history does not matter: the object is written now
    row = {}
    for column, key, default in columns:
        value = state.get(key)
        if value is None and default is not None:
            value = default.arg(None) if default.is_callable else default.arg
        state[key] = row[column.key] = value
    return row


@functools.cache
def _insert(table: Any) -> Any:
    return insert(table)


@functools.cache
def _insert_both(cls: type) -> Any:
    """One statement for the base and own rows of a joined-table class (PostgreSQL): the
    base's INSERT .. RETURNING id in a WITH clause, the own table's row made from that
    id; a round trip less on every create. Parameters: ``base_<column>``, ``own_<column>``.
    """
    (base, base_columns), (own, own_columns) = _insert_plan(cls)
    new = (insert(base).values({column.key: bindparam(f"base_{column.key}", type_=column.type)
                                for column, _, _ in base_columns})
           .returning(base.c.id).cte("new_base"))
    key = next(c for c in own.primary_key.columns).key
    values = [bindparam(f"own_{column.key}", type_=column.type) for column, _, _ in own_columns]
    return (insert(own).from_select([key, *(column.key for column, _, _ in own_columns)],
                                    select(new.c.id, *values))
            .returning(own.c[key]))


@functools.cache
def _returning_ids(table: Any) -> tuple[Any, Any]:
    """INSERT .. RETURNING id for one row, and for many rows in their order."""
    return (insert(table).returning(table.c.id),
            insert(table).returning(table.c.id, sort_by_parameter_order=True))


class Agency(Base):
    """A customer organisation served by the IT provider."""

    __tablename__ = "agency"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    contacts: Mapped[str] = mapped_column(Text, default="")  # who to call there, free text
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # never deleted: records keep it


class Group(Base):
    """A resolver team (assignment group)."""

    __tablename__ = "support_group"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str] = mapped_column(String(254), default="")  # the team's shared mailbox
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                              ondelete="SET NULL"))


class User(Base):
    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), default="requester")
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    phone: Mapped[str] = mapped_column(String(50), default="")
    # The sign-in method that made and keeps this user (``ldap``), None for a local user:
    # with ``auth.local_passwords`` off such a user signs in only through it.
    auth_source: Mapped[str | None] = mapped_column(String(50))
    # IANA zone the pages show this person's times in; empty: the install's zone.
    time_zone: Mapped[str] = mapped_column(String(64), default="")


class WebSession(Base):
    """A signed-in browser. The cookie holds a random secret, this row its SHA-256: signing
    out, a password change or an expiry ends the row, and a copied cookie with it."""

    __tablename__ = "web_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class GroupMember(Base):
    __tablename__ = "group_member"
    group_id: Mapped[int] = mapped_column(ForeignKey("support_group.id", ondelete="CASCADE"),
                                          primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         primary_key=True)


class ApiToken(Base):
    """An API token. Only its SHA-256 is stored; the secret is shown once, at creation."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class PluginState(Base):
    """Whether a plugin is enabled in this install, and the version last enabled."""

    __tablename__ = "plugin_state"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[str] = mapped_column(String(32), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class NumberSequence(Base):
    """The last human number handed out per prefix (INC, CHG ...); never goes back."""

    __tablename__ = "number_sequence"
    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class Record(Base):
    """What every process's records share. Plugins extend it with joined-table subclasses."""

    __tablename__ = "record"
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int | None] = mapped_column(Integer)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("support_group.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    # When the requester last replied while the assignee had not looked since ("updated by
    # customer" in the queue); cleared when the assignee opens the record.
    customer_reply_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {
        "polymorphic_on": "type",
        "polymorphic_identity": "record",
        "version_id_col": version,
    }
    __table_args__ = (
        # Queue columns: an agent's queue, a group's queue, an agency's list, "updated since".
        Index("ix_record_type_state_priority", "type", "state", "priority", "id"),
        Index("ix_record_group_state", "group_id", "state", "priority", "id"),
        Index("ix_record_assignee_state", "assignee_id", "state"),
        Index("ix_record_agency_type", "agency_id", "type", "id"),
        Index("ix_record_updated_at", "updated_at", "id"),
        Index("ix_record_created_at", "created_at", "id"),
        Index("ix_record_requester", "requester_id"),
        Index("ix_record_customer_reply", "customer_reply_at", "id"),
    )


class _FallbackPolymorphicMap(dict):
    """A record of a type whose plugin is no longer installed loads as a plain Record.

    SQLAlchemy refuses rows whose discriminator has no mapper; a service desk must still
    show such records (in links, journals, exports) instead of crashing a page.
    """

    def __missing__(self, key):
        return Record.__mapper__


Record.__mapper__.polymorphic_map = _FallbackPolymorphicMap(Record.__mapper__.polymorphic_map)


class JournalEntry(Base):
    """Append-only history of a record: field changes, transitions, comments, work notes."""

    __tablename__ = "journal"
    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_journal_record", "record_id", "id"),)


class Link(Base):
    """A typed relation between two records of any types."""

    __tablename__ = "record_link"
    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                           index=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                           index=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("source_id", "target_id", "kind",
                                       name="uq_record_link_source_target_kind"),)


class Attachment(Base):
    __tablename__ = "attachment"
    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"),
                                           index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """The transactional outbox: written with the change, delivered after commit."""

    __tablename__ = "outbox_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    record_id: Mapped[int | None] = mapped_column(ForeignKey("record.id", ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_event_pending", "dispatched_at", "id"),
                      Index("ix_outbox_event_record", "record_id"))


class Delivery(Base):
    """One event to one recipient over one channel, retried with backoff until delivered."""

    __tablename__ = "outbox_delivery"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_event.id", ondelete="CASCADE"),
                                          index=True)
    channel: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(254))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("event_id", "channel", "recipient",
                         name="uq_outbox_delivery_event_channel_recipient"),
        Index("ix_outbox_delivery_due", "state", "next_attempt_at"),
    )


class LoginFailure(Base):
    """A failed sign-in, kept for throttling (per e-mail and per address) and for audit."""

    __tablename__ = "login_failure"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    remote_addr: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_login_failure_email", "email", "created_at"),
                      Index("ix_login_failure_addr", "remote_addr", "created_at"))


class AccessDenial(Base):
    """A refused action: who tried what, on which record (if any), and when."""

    __tablename__ = "access_denial"
    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id",
                                                            ondelete="SET NULL"))
    actor_email: Mapped[str] = mapped_column(String(254))
    permission: Mapped[str] = mapped_column(String(100))
    record_id: Mapped[int | None] = mapped_column(ForeignKey("record.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_access_denial_created", "created_at"),
                      Index("ix_access_denial_record", "record_id"))


class WorkerRun(Base):
    """When a kind of background work last finished a cycle (``cycle``: the SLA sweep,
    the plugins' periodic work and outbox delivery), whoever ran it: what ``itsm doctor``
    and ``/metrics`` tell from any process."""

    __tablename__ = "worker_run"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float] = mapped_column(Double, default=0.0)


class IdempotencyKey(Base):
    """A create's first answer, kept under the client's ``Idempotency-Key`` so that a retry
    gets that answer instead of making a second record (see :mod:`itsm.core.idempotency`).
    ``status`` is null while the first request is in flight."""

    __tablename__ = "idempotency_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    client_key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None]
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("user_id", "client_key",
                                       name="uq_idempotency_key_user_id"),
                      Index("ix_idempotency_key_expires", "expires_at"))
