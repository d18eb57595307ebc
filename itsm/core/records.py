"""The record service: the one way in for every write to every record type.

Whether a change comes from the API, a web page, the CLI, e-mail or a webhook, it goes
through :class:`RecordService`: validation (marshmallow), permission check, workflow
guard, the prepare phase (the type's ``derive`` rule and ``itsm_record_prepare``), journal
entry, ``itsm_record_changed`` hook and outbox event, all in the caller's transaction (see
:func:`itsm.core.app.Itsm.unit_of_work`).

The journal is the truth: every field a plugin derives is set in the prepare phase,
before the entry is taken, so :func:`replay_values` of a record's journal gives what the
record holds. ``itsm_record_changed`` only reacts; a plugin that changes the record's own
fields there is refused in debug and testing mode (:class:`UnjournaledChange`).
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

import marshmallow
from sqlalchemy import and_, bindparam, case, literal, or_, select, union_all
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from itsm.core import search, sla
from itsm.core.auth import Actor, Permission, visibility_scope
from itsm.core.dumping import dumper
from itsm.core.errors import Conflict, Forbidden, NotFound, StaleRecord, ValidationError
from itsm.core.expectations import expectations
from itsm.core.models import (
    Agency,
    Attachment,
    Event,
    Group,
    JournalEntry,
    Link,
    Record,
    User,
    utcnow,
    write_now,
)
from itsm.core.numbering import next_number
from itsm.core.query import ListQuery, build, cursor_after
from itsm.core.references import field_refs, resolve_fields
from itsm.core.schemas import type_schemas
from itsm.core.workflow import Transition, Workflow, flatten_reasons

if TYPE_CHECKING:
    from itsm.core.state import Itsm

log = logging.getLogger("itsm.records")

RECORD_ACTIONS = ("read", "create", "update", "comment", "transition")
REFERENCE_FIELDS = ("agency", "requester", "assignee", "group")
STAFF_ONLY_FIELDS = ("assignee", "group", "agency", "requester")


# A queue's columns unless the record type says otherwise (RecordType.columns).
DEFAULT_COLUMNS = ("number", "title", "requester", "agency", "group", "assignee", "priority",
                   "state", "sla_due", "updated_at")


@dataclass(frozen=True)
class RecordType:
    """A kind of record a plugin provides (returned by ``itsm_record_types``).

    :param name: the type's name, stored in ``record.type`` (``incident``).
    :param model: its SQLAlchemy model, a joined-table subclass of ``Record`` whose
        ``polymorphic_identity`` is ``name``.
    :param prefix: human number prefix, 2 to 8 capital letters (``INC``).
    :param collection: the API collection (``incidents`` -> ``/api/v1/incidents``).
    :param workflow: its :class:`itsm.core.workflow.Workflow`.
    :param schema: a marshmallow schema for the type's own fields (optional).
    :param label: the name people read (``Incident``).
    :param requester_roles: roles that may create and read such records as requesters
        (the default lets requesters report them; use ``()`` for staff-only types).
    :param suggest: offer answers from other plugins (``itsm_suggestions``) when such a
        record is created: the API's create response carries ``suggestions`` and the
        console shows them on the record.
    :param derive: ``(record) -> {field: value}``, fields computed from others (an
        incident's priority from impact x urgency), applied on create, update and
        transition before the change is journaled, so the journal and the SLA clocks
        see them. Raise ``ValueError`` with a message to refuse the values.
    :param references: ``{field: kind}``, the type's own fields that refer to things a
        plugin provides (``{"service": "service", "config_items":
        "configuration_item"}``, see :mod:`itsm.core.references`). A field holds one id
        or a list of ids: what a user types is resolved to the stable id before it is
        stored, and the API adds ``<field>_ref`` (``<field>_refs`` for a list). With no
        provider of the kind the field is validated free text.
    :param columns: the queue's columns, in order: the core's (``number``, ``title``,
        ``requester``, ``agency``, ``group``, ``assignee``, ``priority``, ``state``,
        ``sla_due``, ``updated_at``, ``created_at``) and the type's own fields; each sorts.
    :param major: the name of a true/false field that marks a record "major": the queue
        makes such records stand out, as it does those of priority 1.
    :param filter_fields: the type's own fields behind the queue's ``category`` and
        ``service`` filters, when named otherwise (``{"service": "affected_service"}``).
    """

    name: str
    model: type[Record]
    prefix: str
    collection: str
    workflow: Workflow
    schema: type[marshmallow.Schema] | None = None
    label: str = ""
    requester_roles: tuple[str, ...] = ("requester",)
    suggest: bool = False
    derive: Callable[[Record], dict[str, Any] | None] | None = field(default=None,
                                                                      compare=False)
    references: Mapping[str, str] = field(default_factory=dict, compare=False)
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    major: str = ""
    filter_fields: Mapping[str, str] = field(default_factory=dict, compare=False)
    plugin: str = field(default="", compare=False)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def permissions(self) -> list[Permission]:
        staff = ("agent",)
        return [
            Permission(f"{self.name}.read", f"see {self.title} records",
                       (*staff, *self.requester_roles)),
            Permission(f"{self.name}.create", f"open {self.title} records",
                       (*staff, *self.requester_roles)),
            Permission(f"{self.name}.update", f"edit {self.title} records", staff),
            Permission(f"{self.name}.comment", f"comment on {self.title} records",
                       (*staff, *self.requester_roles)),
            Permission(f"{self.name}.transition", f"move {self.title} records through "
                       "their workflow", staff),
        ]


@dataclass(frozen=True)
class LinkKind:
    """A kind of link between records, read from source to target and back."""

    name: str
    label: str
    inverse_label: str


CORE_LINK_KINDS = (
    LinkKind("relates_to", "relates to", "relates to"),
    LinkKind("caused_by", "caused by", "caused"),
    LinkKind("resolved_by", "resolved by", "resolves"),
    LinkKind("duplicate_of", "duplicate of", "has duplicate"),
    LinkKind("implements", "implements", "implemented by"),
)


@dataclass
class RecordChange:
    """What happened to a record, passed to ``itsm_record_prepare`` (before it is
    journaled), to ``itsm_record_changed`` (after) and into the event."""

    kind: str
    actor: Actor
    changes: dict[str, list[Any]] = field(default_factory=dict)
    transition: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def event_name(self) -> str:
        return f"record.{self.kind}"


class UnjournaledChange(RuntimeError):
    """A plugin changed a record's own fields in ``itsm_record_changed``, after the change
    was journaled: the journal would no longer tell what the record holds."""


# Bookkeeping the unit of work changes by itself: the version goes up at each flush, and
# the SLA engine keeps the next due time from the clocks (a figure of them, not a field).
# The customer-reply mark is a workspace marker, not a field of the record: it is not
# journaled, so neither :func:`replay_values` nor the unjournaled-change check compares it.
_UNWATCHED = frozenset({"version", "sla_due_at", "customer_reply_at"})


@functools.cache
def _watched_attributes(model: type) -> tuple[str, ...]:
    return tuple(a.key for a in sa_inspect(model).column_attrs if a.key not in _UNWATCHED)


@functools.cache
def _column_defaults(model: type) -> tuple[tuple[str, Any], ...]:
    out = []
    for attr in sa_inspect(model).column_attrs:
        default = attr.columns[0].default
        if attr.key not in ("id", "version") and default is not None \
                and (default.is_scalar or default.is_callable):
            out.append((attr.key, default))
    return tuple(out)


def fill_defaults(record: Any) -> None:
    """Give a new record's unset attributes their column defaults now, as the INSERT
    would: the prepare phase then reads what will be stored (a channel, a type)."""
    state = record.__dict__
    for key, default in _column_defaults(type(record)):
        if state.get(key) is None:
            setattr(record, key, default.arg if default.is_scalar else default.arg(None))


def field_values(record: Record) -> dict[str, Any]:
    """The record's column attributes as loaded (a snapshot: JSON values are copied)."""
    state = record.__dict__
    out = {}
    for key in _watched_attributes(type(record)):
        if key in state:
            value = state[key]
            out[key] = copy.deepcopy(value) if isinstance(value, dict | list) else value
    return out


def replay_values(entries: Iterable[Any]) -> dict[str, Any]:
    """The record's public fields as its journal tells them, replayed from empty.

    ``entries`` are the record's journal entries (anything with ``kind`` and ``data``)
    in order: a ``created`` entry holds every field, and each ``updated`` and
    ``transitioned`` entry the ``changes`` it made, ``{field: [old, new]}``. The result
    maps the fields of ``RecordService.public_values`` to their JSON values; a long text
    journaled as edited (``"(edited)"``) is left out, as its text is not in the journal.
    Workspace markers of the record row (``customer_reply_at``, "updated by customer") are
    not fields: the journal does not hold them and the replay does not compare them.
    """
    values: dict[str, Any] = {}
    for entry in entries:
        data = entry.data or {}
        if entry.kind == "created":
            values = dict(data)
        elif entry.kind in ("updated", "transitioned"):
            for name, (_old, new) in (data.get("changes") or {}).items():
                values[name] = new
    return {k: v for k, v in values.items() if v != "(edited)"}


class RecordTypes:
    """The record types of the enabled plugins, by name, collection and prefix."""

    def __init__(self, declared: Iterable[tuple[str, RecordType]]) -> None:
        self.by_name: dict[str, RecordType] = {}
        self.by_collection: dict[str, RecordType] = {}
        self.by_prefix: dict[str, RecordType] = {}
        self.schemas: dict[str, dict[str, type[marshmallow.Schema]]] = {}
        self.errors: list[str] = []
        for plugin, rt in declared:
            rt = RecordType(**{**rt.__dict__, "plugin": plugin})
            clash = (self.by_name.get(rt.name) or self.by_collection.get(rt.collection)
                     or self.by_prefix.get(rt.prefix))
            if clash:
                self.errors.append(f"plugin {plugin!r}: record type {rt.name!r} clashes with "
                                   f"{clash.name!r} of plugin {clash.plugin!r} (same name, "
                                   "collection or prefix); it is left out")
                continue
            if not (rt.prefix.isalpha() and rt.prefix.isupper() and 2 <= len(rt.prefix) <= 8):
                self.errors.append(f"plugin {plugin!r}: record type {rt.name!r} has prefix "
                                   f"{rt.prefix!r}; use 2 to 8 capital letters")
                continue
            self.by_name[rt.name] = rt
            self.by_collection[rt.collection] = rt
            self.by_prefix[rt.prefix] = rt
            self.schemas[rt.name] = type_schemas(rt.name, rt.schema, rt.references)

    def __iter__(self):
        return iter(self.by_name.values())

    def get(self, name: str) -> RecordType:
        try:
            return self.by_name[name]
        except KeyError:
            raise NotFound(f"no record type {name!r} is enabled") from None

    def for_number(self, number: str) -> RecordType | None:
        prefix = number.rstrip("0123456789")
        return self.by_prefix.get(prefix)


def jsonable(value: Any) -> Any:
    """A value as it goes into the journal and events (JSON types only)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value


@functools.cache
def schema_instance(schema: type[marshmallow.Schema]) -> marshmallow.Schema:
    """One instance per schema class: building one deep-copies its fields (about half a
    millisecond), too much to pay for every record of a list page. Loading and dumping
    keep no state on the instance, so it is shared."""
    return schema()


def _by_name(table: Any, column: str) -> Any:
    return select(table.c.id, table.c[column]).where(table.c[column] == bindparam("value"))


# What a record's references are named by in requests: (id lookup, kind, message).
_REFERENCES = {"agency": (_by_name(Agency.__table__, "code"), "agency", "unknown agency"),
               "requester": (_by_name(User.__table__, "email"), "user", "unknown user"),
               "assignee": (_by_name(User.__table__, "email"), "user", "unknown user"),
               "group": (_by_name(Group.__table__, "name"), "group", "unknown group")}



def _ref_columns(table: Any) -> tuple[Any, ...]:
    """The core table's columns a record's short view (and its read check) needs."""
    c = table.c
    return (c.number, c.type, c.title, c.state, c.agency_id, c.requester_id)

class RecordService:
    """Reads and writes records on behalf of one actor, inside one transaction."""

    def __init__(self, itsm: Itsm, session: Session, actor: Actor) -> None:
        self.itsm = itsm
        self.session = session
        self.actor = actor
        # Shared by every service on this session: events of records a hook changes
        # through a service of its own are announced with the command's (after commit).
        self.events: list[Event] = session.info.setdefault("itsm_events", [])
        self.denials: list[tuple[str, int | None]] = []
        self._refs: dict[tuple[str, int], str | None] = {}

    # -- permissions -----------------------------------------------------------------

    def can(self, permission: str, record: Record | None = None) -> bool:
        result = self.itsm.hook.itsm_permission_check(actor=self.actor, permission=permission,
                                                      record=record)
        return bool(result)

    def require(self, permission: str, record: Record | None = None) -> None:
        if not self.can(permission, record):
            self.denials.append((permission, record.id if record is not None else None))
            raise Forbidden(f"{self.actor.email} may not {permission.replace('.', ': ')}")

    @property
    def is_staff(self) -> bool:
        return self.actor.role not in ("requester",)

    # -- reading ---------------------------------------------------------------------

    def get(self, number: str, type_name: str | None = None) -> Record:
        """The record with ``number``, if the actor may read it (else NotFound: a record
        the actor may not see must not even be confirmed to exist)."""
        rt = self.itsm.types.get(type_name) if type_name else self.itsm.types.for_number(number)
        if rt is None:
            raise NotFound(f"no record {number}")
        record = self.session.scalar(select(rt.model).where(rt.model.number == number))
        if record is not None and not self.can(f"{rt.name}.read", record):
            self.denials.append((f"{rt.name}.read", record.id))
            record = None
        if record is None:
            raise NotFound(f"no {rt.title.lower()} {number}")
        return record

    def list(self, type_name: str, query: ListQuery, *, prefetch: bool = True) \
            -> tuple[list[Record], str | None]:
        """One page of records the actor may see, and the cursor of the next page.

        :param prefetch: look up the page's references for :meth:`to_dict` at once (a
            page that shows names of its own, as the queue does, skips it).
        """
        rt = self.itsm.types.get(type_name)
        self.require(f"{rt.name}.read")
        if query.record_type is None:
            query.record_type = rt
        scope = self.list_scope(rt, query)
        from itsm.core.query import search_page

        rows = search_page(self.session, rt.model, query, self.actor, scope) \
            if query.q else None
        if rows is None:
            rows = list(self.session.scalars(build(self.session, rt.model, query,
                                                   self.actor, scope)))
        more = len(rows) > query.limit
        rows = rows[:query.limit]
        cursor = cursor_after(self.session, rows[-1], query) if more and rows else None
        if prefetch:
            self.prefetch_refs(rows)
        # The scope above is the fast path; the permission hook has the last word per row.
        return [r for r in rows if self.can(f"{rt.name}.read", r)], cursor

    def list_scope(self, rt: RecordType, query: ListQuery) -> Any:
        """The SQL condition on ``record`` every list, count and total of ``rt`` for this
        actor starts from: what the actor may read (an agency's records for its
        requesters), and ``closed_at IS NULL`` when only open states are asked for."""
        scope = visibility_scope(self.actor)
        states = rt.workflow.states
        every_open = {name for name, state in states.items() if not state.final}
        # (every open state is asked as "not closed" by the list itself: said twice, the
        # planner would count its share twice and estimate a fifth of the rows)
        if query.state and all(s in states and not states[s].final for s in query.state) \
                and set(query.state) != every_open:
            # Implied by those states (closed_at is set exactly in final ones); said so
            # that the database can use the open-records queue indexes (core_0005, 0014).
            scope = and_(scope, Record.closed_at.is_(None)) if scope is not None \
                else Record.closed_at.is_(None)
        return scope

    def ref(self, kind: str, id_: int | None) -> str | None:
        """Agency code (``agency``) or name (``agency_name``), user e-mail or group name
        for an id (cached per service)."""
        if id_ is None:
            return None
        key = (kind, id_)
        if key not in self._refs:
            model, column = {"agency": (Agency, Agency.code), "user": (User, User.email),
                             "group": (Group, Group.name),
                             "agency_name": (Agency, Agency.name)}[kind]
            self._refs[key] = self.session.scalar(select(column).where(model.id == id_))
        return self._refs[key]

    def prefetch_refs(self, records: Iterable[Record], agency_names: bool = False) -> None:
        """Look up the agencies, people and groups of many records in one query instead
        of one per reference (a page of 50 records took up to 200, one record four);
        with ``agency_names``, the agencies' names too (a record page's header)."""
        wanted: dict[str, set[int]] = {"agency": set(), "user": set(), "group": set(),
                                       "agency_name": set()}
        for record in records:
            wanted["agency"].add(record.agency_id)
            wanted["user"].update((record.requester_id, record.assignee_id))
            wanted["group"].add(record.group_id)
            if agency_names:
                wanted["agency_name"].add(record.agency_id)
        columns = {"agency": (Agency.id, Agency.code), "user": (User.id, User.email),
                   "group": (Group.id, Group.name), "agency_name": (Agency.id, Agency.name)}
        parts = []
        for kind, ids in wanted.items():
            ids = {i for i in ids if i is not None and (kind, i) not in self._refs}
            if ids:
                id_column, column = columns[kind]
                parts.append(select(literal(kind).label("kind"), id_column.label("id"),
                                    column.label("value")).where(id_column.in_(ids)))
        if parts:  # one round trip for all of them
            query = parts[0] if len(parts) == 1 else union_all(*parts)
            for kind, id_, value in self.session.execute(query):
                self._refs[(kind, id_)] = value

    def to_dict(self, record: Record) -> dict[str, Any]:
        rt = self.itsm.types.get(record.type)
        refs = self._refs
        if any(id_ is not None and (kind, id_) not in refs for kind, id_ in (
                ("agency", record.agency_id), ("user", record.requester_id),
                ("user", record.assignee_id), ("group", record.group_id))):
            self.prefetch_refs([record])
        out = {
            "number": record.number, "type": record.type, "title": record.title,
            "description": record.description, "state": record.state,
            "state_label": rt.workflow.state(record.state).title,
            "priority": record.priority,
            "agency": self.ref("agency", record.agency_id),
            "requester": self.ref("user", record.requester_id),
            "assignee": self.ref("user", record.assignee_id),
            "group": self.ref("group", record.group_id),
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
            "closed_at": record.closed_at.isoformat() if record.closed_at else None,
            "version": record.version,
            "transitions": [t.name for t in rt.workflow.actions(record.state)],
        }
        if rt.schema is not None:
            own = dumper(rt.schema)(record)
            out.update(own)
            if rt.references:
                out.update(field_refs(self.session, dict(rt.references), own, self.itsm))
        return out

    # -- writing ---------------------------------------------------------------------

    def _load(self, rt: RecordType, data: Any, *, partial: bool) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ValidationError("the body must be a JSON object", fields={})
        try:
            return schema_instance(self.itsm.types.schemas[rt.name]["in"]).load(
                data, partial=partial)
        except marshmallow.ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
            raise ValidationError(f"invalid {rt.title.lower()}: "
                                  + ", ".join(sorted(messages)), fields=messages) from None

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        """Turn agency codes, e-mails and group names into ids, with field messages."""
        out = dict(values)
        errors: dict[str, list[str]] = {}
        for name, (lookup, kind, message) in _REFERENCES.items():
            attr = f"{name}_id"
            if name not in out:
                continue
            value = out.pop(name)
            if value in (None, ""):
                out[attr] = None
                continue
            if kind == "user":
                value = value.strip().lower()
            row = self.session.execute(lookup, {"value": value}).first()
            if row is None:
                errors[name] = [message]
                out[attr] = None
                continue
            out[attr] = row[0]
            self._refs[(kind, row[0])] = row[1]  # the answer names it: no second lookup
        if errors:
            raise ValidationError("unknown references: " + ", ".join(sorted(errors)),
                                  fields=errors)
        return out

    def _resolve_own(self, rt: RecordType, values: dict[str, Any]) -> dict[str, Any]:
        """The type's reference fields (``RecordType.references``) as stable ids."""
        if not rt.references:
            return values
        return resolve_fields(self.session, dict(rt.references), values, self.itsm)

    def _check_staff_fields(self, values: dict[str, Any]) -> None:
        if self.is_staff:
            return
        sent = sorted(f for f in STAFF_ONLY_FIELDS if f in values)
        if sent:
            raise ValidationError("only IT staff may set " + ", ".join(sent),
                                  fields={f: ["only IT staff may set this field"] for f in sent})

    def create(self, type_name: str, data: Any, *,
               preset: dict[str, Any] | None = None) -> Record:
        """Create a record of ``type_name`` from ``data`` (the API's create body).

        :param preset: attributes the calling plugin sets itself and a body may not send
            (dump-only fields, such as the request a fulfilment task belongs to). They are
            set before the prepare phase, so the "created" journal entry holds them.
        """
        rt = self.itsm.types.get(type_name)
        self.require(f"{rt.name}.create")
        values = self._load(rt, data, partial=False)
        self._check_staff_fields(values)
        values = self._resolve(self._resolve_own(rt, values))
        if not self.is_staff:
            values["requester_id"] = self.actor.id
            values["agency_id"] = self.actor.agency_id
        elif "requester_id" not in values and self.actor.id is not None:
            values["requester_id"] = self.actor.id
        if values.get("requester_id") and "agency_id" not in values:
            if values["requester_id"] == self.actor.id:
                values["agency_id"] = self.actor.agency_id
            else:
                values["agency_id"] = self.session.get(User, values["requester_id"]).agency_id
        if self.actor.id is not None:
            self._refs.setdefault(("user", self.actor.id), self.actor.email)
        now = utcnow()
        record = rt.model(type=rt.name, number=next_number(self.session, rt.prefix),
                          state=rt.workflow.initial, created_at=now, updated_at=now,
                          created_by_id=self.actor.id, **values)
        if rt.workflow.state(record.state).final:
            record.closed_at = now
        for key, value in (preset or {}).items():
            setattr(record, key, value)
        fill_defaults(record)
        change = RecordChange("created", self.actor)
        self._prepare(rt, record, change)
        if not write_now(self.session, [record]):
            self.session.flush()  # its id, for the journal entry
        change.data = {k: jsonable(v) for k, v in self._public_values(rt, record).items()}
        self._changed(record, change)
        return record

    def public_values(self, record: Record) -> dict[str, Any]:
        """The fields the journal tracks, as JSON values: what :func:`replay_values` of
        the record's journal gives back."""
        rt = self.itsm.types.get(record.type)
        return {k: jsonable(v) for k, v in self._public_values(rt, record).items()}

    def _public_values(self, rt: RecordType, record: Record) -> dict[str, Any]:
        own = dumper(rt.schema)(record) if rt.schema else {}
        return {"title": record.title, "state": record.state, "priority": record.priority,
                "agency": self.ref("agency", record.agency_id),
                "requester": self.ref("user", record.requester_id),
                "assignee": self.ref("user", record.assignee_id),
                "group": self.ref("group", record.group_id), **own}

    def _check_version(self, record: Record, expected: int | None) -> None:
        if expected is not None and expected != record.version:
            raise StaleRecord(f"{record.number} was changed by someone else (version "
                              f"{record.version}, you sent {expected}): reload and retry")

    def _apply(self, rt: RecordType, record: Record, values: dict[str, Any],
               change: RecordChange) -> dict[str, list[Any]]:
        """Set ``values`` on the record, run the prepare phase and return the visible
        changes, without flushing: the command flushes once, so the version goes up by
        exactly one per command."""
        before = self._public_values(rt, record)
        old_description = record.description
        for key, value in values.items():
            setattr(record, key, value)
        self._derive(rt, record)
        change.changes = self._diff(before, self._public_values(rt, record))
        self._prepare_hook(record, change)
        changes = self._diff(before, self._public_values(rt, record))
        if old_description != record.description:
            changes["description"] = ["(edited)", "(edited)"]  # long text: note the edit only
        return changes

    @staticmethod
    def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
        return {k: [jsonable(before.get(k)), jsonable(v)] for k, v in after.items()
                if before.get(k) != v}

    def _prepare(self, rt: RecordType, record: Record, change: RecordChange) -> None:
        """The prepare phase of a new record: the type's derived fields, then the plugins'."""
        self._derive(rt, record)
        self._prepare_hook(record, change)

    def _prepare_hook(self, record: Record, change: RecordChange) -> None:
        self.itsm.hook.itsm_record_prepare(session=self.session, record=record, change=change)

    def _derive(self, rt: RecordType, record: Record) -> None:
        """Set the fields the type derives from others, before anything is journaled."""
        if rt.derive is None:
            return
        try:
            derived = rt.derive(record) or {}
        except ValueError as exc:
            raise ValidationError(f"invalid {rt.title.lower()}: {exc}",
                                  fields={"_": [str(exc)]}) from None
        for key, value in derived.items():
            setattr(record, key, value)

    def update(self, record: Record, data: Any, *, expected_version: int | None = None) \
            -> Record:
        rt = self.itsm.types.get(record.type)
        self.require(f"{rt.name}.update", record)
        self._check_version(record, expected_version)
        if isinstance(data, dict) and "state" in data:
            raise ValidationError("state changes go through a transition: POST "
                                  f"/api/v1/{rt.collection}/{record.number}/transitions",
                                  fields={"state": ["use a transition"]})
        values = self._resolve(self._resolve_own(rt, self._load(rt, data, partial=True)))
        change = RecordChange("updated", self.actor)
        changes = self._apply(rt, record, values, change)
        if changes:
            record.updated_at = utcnow()
            change.changes = changes
            self._changed(record, change)
        return record

    def set_fields(self, record: Record, values: dict[str, Any]) -> Record:
        """Set fields of ``record`` that its plugin owns and no request may send
        (dump-only fields: an acceptance, a rating, the version in force), journaled as an
        update, with the prepare phase, the reactions and the outbox event of
        :meth:`update`, so that the journal keeps telling what the record holds. The
        caller has checked who may do it. ``values`` are model attributes."""
        rt = self.itsm.types.get(record.type)
        change = RecordChange("updated", self.actor)
        changes = self._apply(rt, record, values, change)
        if changes:
            record.updated_at = utcnow()
            change.changes = changes
            self._changed(record, change)
        return record

    def available_transitions(self, record: Record) -> list[tuple[Transition, list[str]]]:
        """Every transition from the record's state with the reasons it is refused now."""
        rt = self.itsm.types.get(record.type)
        out = []
        for transition in rt.workflow.actions(record.state):
            out.append((transition, self._refusals(rt, record, transition, {})))
        return out

    def customer_replied(self, record: Record) -> Transition | None:
        """Run the first allowed transition the record's workflow declares for a
        requester's reply in its state (``Transition.customer_reply``), as this actor;
        None when there is none or every one is refused (the record stays)."""
        rt = self.itsm.types.get(record.type)
        for transition in rt.workflow.on_customer_reply(record.state):
            values = self._public_values(rt, record)
            reasons = rt.workflow.check(transition, record, self.actor, {}, values)
            reasons += flatten_reasons(self.itsm.hook.itsm_transition_guard(
                record=record, transition=transition, actor=self.actor, data={}))
            if not reasons:
                self._run_transition(rt, record, transition, {}, None)
                return transition
            log.info("%s stays %s after the requester's reply: %s", record.number,
                     record.state, "; ".join(reasons))
        return None

    def _refusals(self, rt: RecordType, record: Record, transition: Transition,
                  data: dict[str, Any]) -> list[str]:
        own = (transition.requester and record.requester_id is not None
               and record.requester_id == self.actor.id and self.can(f"{rt.name}.read", record))
        if not (own or self.can(f"{rt.name}.transition", record)):
            return [f"{self.actor.email} may not move {rt.title.lower()} records"]
        values = {**self._public_values(rt, record), **data}
        reasons = rt.workflow.check(transition, record, self.actor, data, values)
        vetoes = self.itsm.hook.itsm_transition_guard(record=record, transition=transition,
                                                     actor=self.actor, data=data)
        return reasons + flatten_reasons(vetoes)

    def transition(self, record: Record, name: str, data: dict[str, Any] | None = None, *,
                   comment: str | None = None, expected_version: int | None = None) -> Record:
        rt = self.itsm.types.get(record.type)
        self.require(f"{rt.name}.read", record)
        self._check_version(record, expected_version)
        transition = rt.workflow.transitions.get(name)
        if transition is None:
            known = ", ".join(rt.workflow.transitions) or "none"
            raise ValidationError(f"{rt.title} has no transition {name!r} (known: {known})",
                                  fields={"name": [f"unknown transition {name!r}"]})
        data = dict(data or {})
        extra = sorted(set(data) - set(transition.settable))
        if extra:
            raise ValidationError(f"{transition.name} does not set " + ", ".join(extra),
                                  fields={f: [f"not set by {transition.name}"] for f in extra})
        if transition.customer_reply:
            raise ValidationError(f"{transition.name} runs by itself when the requester "
                                  "replies; send a comment",
                                  fields={"name": ["runs on the requester's reply"]})
        loaded = self._resolve_own(rt, self._load(rt, data, partial=True)) if data else {}
        reasons = self._refusals(rt, record, transition, loaded)
        if reasons:
            raise Conflict(f"cannot {transition.title.lower()} {record.number}: "
                           + "; ".join(reasons), reasons=reasons)
        return self._run_transition(rt, record, transition, loaded, comment)

    def _run_transition(self, rt: RecordType, record: Record, transition: Transition,
                        loaded: dict[str, Any], comment: str | None) -> Record:
        """Apply an allowed transition: prepare phase, journal, reactions, outbox."""
        old_state = record.state
        # Set before the prepare phase, which may read them (a date of activation).
        now = utcnow()
        record.updated_at = now
        final = rt.workflow.state(transition.target).final
        record.closed_at = (record.closed_at or now) if final else None
        change = RecordChange("transitioned", self.actor, transition=transition.name)
        changes = self._apply(rt, record, {**self._resolve(loaded), "state": transition.target},
                              change)
        changes["state"] = [old_state, transition.target]
        change.changes = changes
        self._changed(record, change, body=comment or "")
        return record

    def comment(self, record: Record, body: str, *, public: bool = True) -> JournalEntry:
        rt = self.itsm.types.get(record.type)
        self.require(f"{rt.name}.comment", record)
        if not public and not self.is_staff:
            raise Forbidden("work notes are for IT staff; send a public comment")
        if not body or not body.strip():
            raise ValidationError("a comment needs text", fields={"body": ["required"]})
        # A comment does not touch the record row: it never bumps the version a colleague
        # is editing against, and never resets a clock.
        entry = self._changed(record, RecordChange(
            "commented" if public else "work_noted", self.actor), body=body, public=public)
        if public:
            from itsm.core.conversation import requester_replied

            requester_replied(self, record)
        return entry

    def opened(self, record: Record) -> None:
        """The actor opened the record's page: its assignee has now seen the customer's
        reply, so the queue's "updated by customer" mark goes (see
        :mod:`itsm.core.conversation`)."""
        from itsm.core.conversation import assignee_opened

        assignee_opened(self, record)

    def link(self, record: Record, target_number: str, kind: str = "relates_to") -> Link:
        rt = self.itsm.types.get(record.type)
        self.require(f"{rt.name}.update", record)
        kinds = self.itsm.link_kinds
        if kind not in kinds:
            raise ValidationError(f"unknown link kind {kind!r} (kinds: {', '.join(kinds)})",
                                  fields={"kind": ["unknown link kind"]})
        try:
            target = self.get(target_number)
        except NotFound:
            raise ValidationError(f"no record {target_number} to link to",
                                  fields={"target": ["no such record"]}) from None
        if target.id == record.id:
            raise ValidationError("a record cannot link to itself",
                                  fields={"target": ["same record"]})
        exists = self.session.scalar(select(Link.id).where(
            Link.source_id == record.id, Link.target_id == target.id, Link.kind == kind))
        if exists:
            raise Conflict(f"{record.number} already {kinds[kind].label} {target.number}")
        link = Link(source_id=record.id, target_id=target.id, kind=kind,
                    created_by_id=self.actor.id)
        self.session.add(link)
        self.session.flush()
        self._changed(record, RecordChange("linked", self.actor, data={
            "kind": kind, "target": target.number}))
        return link

    def attach(self, record: Record, filename: str, content_type: str, stream: IO[bytes]) \
            -> Attachment:
        rt = self.itsm.types.get(record.type)
        self.require(f"{rt.name}.comment", record)
        name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
        if not name:
            raise ValidationError("the file needs a name", fields={"file": ["no file name"]})
        limit = self.itsm.settings["attachments.max_bytes"]
        key, size, digest = self.itsm.attachments.put(stream, limit=limit)
        attachment = Attachment(record_id=record.id, filename=name[:255],
                                content_type=(content_type or "application/octet-stream")[:127],
                                size=size, sha256=digest, storage_key=key,
                                created_by_id=self.actor.id)
        self.session.add(attachment)
        self.session.flush()
        self._changed(record, RecordChange("attached", self.actor, data={
            "filename": attachment.filename, "size": size, "attachment": attachment.id}))
        return attachment

    def _changed(self, record: Record, change: RecordChange, *, body: str = "",
                 public: bool = True) -> JournalEntry:
        """Journal the change, call the hook, queue the outbox event: same transaction."""
        data = {"changes": change.changes} if change.changes else {}
        if change.transition:
            data["transition"] = change.transition
        data.update(change.data)
        now = utcnow()
        entry = JournalEntry(record_id=record.id, kind=change.kind, actor_id=self.actor.id,
                             created_at=now, public=public, body=body, data=data)
        write_now(self.session, [entry])
        self._react(record, change)
        self.events.extend(sla.on_record_changed(self.itsm, self.session, record, change,
                                                 now=now, entry=entry))
        event = Event(name=change.event_name, record_id=record.id, actor_id=self.actor.id,
                      payload={"record": {"number": record.number, "type": record.type,
                                          "title": record.title, "state": record.state,
                                          "priority": record.priority},
                               "actor": self.actor.email, "public": public,
                               "body": body[:2000], **data},
                      created_at=now, dispatched_at=None)
        if change.kind == "created":
            # The acknowledgement mail sets expectations; the adapter reads them from here.
            event.payload["expectations"] = expectations(self.session, record, itsm=self.itsm)
        write_now(self.session, [event])
        self.session.flush()  # what the command and its hooks changed besides
        self.events.append(event)
        return entry

    def _react(self, record: Record, change: RecordChange) -> None:
        """Call ``itsm_record_changed`` and hold it to its contract: the record's own
        fields stay as journaled. A command of the record service on the same record
        inside the hook (a transition a plugin makes) journals itself, so the check
        compares with the latest journaled state of the record, kept per session."""
        journaled = self.session.info.setdefault("itsm_journaled", {})
        journaled[record.id] = field_values(record)
        hook = self.itsm.hook.itsm_record_changed
        if not self.itsm.strict_hooks:
            hook(session=self.session, record=record, change=change)
            self._check_unjournaled(record, change, journaled, None)
            return
        # Debug and testing: one plugin at a time, so the error names the culprit.
        for plugin, caller in self.itsm.host.by_plugin("itsm_record_changed"):
            caller(session=self.session, record=record, change=change)
            self._check_unjournaled(record, change, journaled, plugin)

    def _check_unjournaled(self, record: Record, change: RecordChange,
                           journaled: dict[int, dict[str, Any]], plugin: str | None) -> None:
        before = journaled.get(record.id)
        if before is None:
            return
        after = field_values(record)
        # An attribute the snapshot did not hold (never loaded on a new record) counts when
        # the hook set it: its history has a value added since the last flush.
        attrs = sa_inspect(record).attrs
        moved = sorted(k for k, v in after.items()
                       if (before[k] != v if k in before else bool(attrs[k].history.added)))
        if not moved:
            return
        who = f"plugin {plugin!r}" if plugin else "a plugin"
        message = (f"{who} changed {', '.join(moved)} of {record.number} in "
                   f"itsm_record_changed ({change.kind}), after the change was journaled: "
                   "set the record's own fields in itsm_record_prepare, or change them "
                   "through the record service")
        if plugin is not None:
            raise UnjournaledChange(message)
        log.warning("%s", message)
        journaled[record.id] = after  # warned once; later reactions are checked from here

    # -- related data ----------------------------------------------------------------

    def suggestions(self, record: Record, limit: int = 5) -> list[search.Suggestion]:
        """Answers the enabled plugins offer for ``record`` (``itsm_suggestions``)."""
        self.require(f"{record.type}.read", record)
        return search.suggestions(self.itsm, self.session, self.actor,
                                  f"{record.title}\n{record.description or ''}", record, limit)

    def journal(self, record: Record) -> list[JournalEntry]:
        """The record's history as the actor may see it: requesters get public entries,
        and no entry of theirs names a linked record they may not read."""
        query = select(JournalEntry).where(JournalEntry.record_id == record.id)
        if self.is_staff:
            return list(self.session.scalars(query.order_by(JournalEntry.id)))
        entries = self.session.scalars(query.where(JournalEntry.public.is_(True))
                                       .order_by(JournalEntry.id))
        return [e for e in entries if e.kind != "linked" or self._readable(e.data.get("target"))]

    def _readable(self, number: str | None) -> bool:
        table = Record.__table__
        found = self.session.scalar(select(table.c.id).where(table.c.number == number))
        return found is not None and self.record_ref(found) is not None

    def links(self, record: Record) -> list[dict[str, Any]]:
        table = Record.__table__
        other = case((Link.source_id == record.id, Link.target_id), else_=Link.source_id)
        # The linked records' short views in the same statement, not one query per link.
        rows = self.session.execute(
            select(Link, *_ref_columns(table)).outerjoin(table, table.c.id == other)
            .where(or_(Link.source_id == record.id, Link.target_id == record.id))
            .order_by(Link.id))
        out = []
        for row in rows:
            link = row[0]
            outgoing = link.source_id == record.id
            ref = self._ref_of(row) if row.number is not None else None
            if ref is None:
                continue
            kind = self.itsm.link_kinds.get(link.kind) or LinkKind(link.kind, link.kind,
                                                                   link.kind)
            out.append({"id": link.id, "kind": link.kind,
                        "direction": "outgoing" if outgoing else "incoming",
                        "label": kind.label if outgoing else kind.inverse_label,
                        "record": ref})
        return out

    def record_ref(self, record_id: int) -> dict[str, Any] | None:
        """A short view of any record, also of a type whose plugin is disabled or gone.

        Read straight from the core table, so no plugin model is needed to show it.
        """
        table = Record.__table__
        row = self.session.execute(select(*_ref_columns(table))
                                   .where(table.c.id == record_id)).one_or_none()
        return None if row is None else self._ref_of(row)

    def _ref_of(self, row: Any) -> dict[str, Any] | None:
        """:meth:`record_ref` of a row of :func:`_ref_columns` (None: not for this actor)."""
        rt = self.itsm.types.by_name.get(row.type)
        if rt is None:
            if not self.is_staff:
                return None
            return {"number": row.number, "type": row.type, "available": False,
                    "title": "record of a disabled process", "state": row.state}
        if not self.can(f"{rt.name}.read", row):
            return None
        return {"number": row.number, "type": row.type, "title": row.title,
                "state": row.state, "available": True}

    def attachments(self, record: Record) -> list[Attachment]:
        return list(self.session.scalars(select(Attachment).where(
            Attachment.record_id == record.id).order_by(Attachment.id)))

    def attachment(self, record: Record, attachment_id: int) -> Attachment:
        found = self.session.scalar(select(Attachment).where(
            Attachment.record_id == record.id, Attachment.id == attachment_id))
        if found is None:
            raise NotFound(f"no attachment {attachment_id} on {record.number}")
        return found

