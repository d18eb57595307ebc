"""Bulk import of records: thousands a second, under the service layer's rules.

``itsm records import FILE --type incident`` reads JSON Lines (one record a line, the
same fields the API's create takes, plus ``state``, ``created_at``, ``updated_at``,
``closed_at`` and ``comments`` for history) and writes them in batches (COPY on
PostgreSQL, the driver's ``executemany`` on SQLite, multi-row INSERTs elsewhere) instead
of one ORM unit of work per record, which would be a hundred times slower. On a database
server the next batch is validated while the last one is written.

What it keeps from :class:`~itsm.core.records.RecordService`:

- validation by the type's own marshmallow schema (its field checks precompiled for
  rows that need no conversion; any other row goes to the schema itself, so values and
  messages are the schema's own), reference lookup (agency codes, e-mails, group names,
  read up front), the prepare phase (the type's ``derive`` rule, an incident's priority
  from its impact and urgency, then the plugins' ``itsm_record_prepare``, routing an
  incident to its group) so that the "created" entry holds what is stored, and a
  workflow state check;
- human numbers from the same ``number_sequence`` row, taken a block per batch in a
  transaction of its own: a failed batch leaves a gap, never a number given twice, and
  the row is not held locked while a batch is written, so live requests keep numbering;
- a ``created`` journal entry per record (and a ``transitioned`` one when it arrives in
  a later state, plus its comments), and SLA clocks computed by :func:`itsm.core.sla.replay`
  from those very entries, exactly as ``itsm sla recompute`` would.

What it leaves out on purpose: outbox events and the ``itsm_record_changed`` hook, the
reactions to a change. A history load must not send a million notifications: SLA
warnings and breaches already past at the import are recorded and marked announced,
silently (no event, hence no escalation); ``itsm sla sweep`` announces those of clocks
that come due later, as for any record.

A batch is one transaction and is validated whole before anything is written: a bad line
stops the import with one message naming the line, and nothing of its batch is written.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import marshmallow
from marshmallow import fields as mf
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.exc import DBAPIError

from itsm.core import inputs, sla
from itsm.core.auth import Actor
from itsm.core.bulkwrite import Copier, bind_processors, converted, new_ids
from itsm.core.dumping import dumper
from itsm.core.errors import ItsmError
from itsm.core.models import Agency, Group, JournalEntry, Record, User, utcnow
from itsm.core.numbering import take_numbers
from itsm.core.records import RecordChange, RecordType, jsonable
from itsm.core.schemas import GATE_HOOK
from itsm.core.schemas import Boolean as StrictBoolean
from itsm.core.sla.stored import calendars_for
from itsm.core.sla_models import SlaClock

if TYPE_CHECKING:
    from itsm.core.state import Itsm

HISTORY_FIELDS = ("state", "created_at", "updated_at", "closed_at", "comments")
DEFAULT_BATCH = 1000
MAX_BATCH = 20_000
PRELOAD_USERS = 200_000  # up to this many users, all are looked up in one query


class ImportError_(ItsmError):  # noqa: N801 - ``ImportError`` is a builtin
    status = 422
    code = "invalid"


@dataclass
class ImportStats:
    records: int = 0
    journal: int = 0
    clocks: int = 0
    batches: int = 0
    seconds: float = 0.0
    first: str | None = None
    last: str | None = None

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class _Entry(NamedTuple):
    """A journal entry as :func:`itsm.core.sla.replay` reads it, before it is stored."""

    kind: str
    created_at: datetime
    data: dict[str, Any]


@dataclass
class _Row:
    line: int
    values: dict[str, Any]  # every column of the record and its type's table, but id
    entries: list[tuple[_Entry, dict[str, Any]]] = field(default_factory=list)


# A row's values: by column key, or on PostgreSQL converted in COPY order (Copier.row).
_Values = dict[str, Any] | tuple[Any, ...]


@dataclass
class _Batch:
    """A validated batch, ready to write: rows of each table without the record ids and
    numbers (journal entries and clocks name their record by its index in the batch)."""

    count: int
    lines: tuple[int, int]  # the first and last line of the file it holds
    records: list[_Values] = field(default_factory=list)
    own: list[_Values] = field(default_factory=list)
    journal: list[tuple[int, _Values]] = field(default_factory=list)
    clocks: list[tuple[int, _Values]] = field(default_factory=list)


# Field classes whose valid input is one exact Python type, returned as it is: a value of
# that type passing the field's validators loads to itself (and dumps to itself).
_EXACT: dict[type, type] = {mf.String: str, mf.Email: str, mf.Integer: int, mf.Boolean: bool,
                            StrictBoolean: bool}
_PLAIN = (str, int, bool, type(None))  # what the journal keeps as it is (see jsonable)


class _Loader:
    """A marshmallow schema's ``load``, precompiled for the rows an import is made of.

    A row whose every value already has its field's exact type (a string for a string
    field, an int for an integer field ...) and passes the field's validators loads to
    itself: it is checked here with a few comparisons per field. Anything else (a value
    to convert, a missing required field, an unknown field, an invalid value) goes to the
    schema itself, so results and error messages are the schema's own. A schema with
    hooks (``pre_load``, ``validates_schema`` ...) or other field classes always does,
    except the input gate's own hook (:class:`~itsm.core.schemas.InputSchema`), which the
    precompiled path applies to each text itself.
    """

    def __init__(self, schema: marshmallow.Schema) -> None:
        self.schema = schema
        self.fields: dict[str, tuple[str, type, bool, tuple[Any, ...]]] | None = None
        self.absent: list[tuple[str, str, bool, Any]] = []  # required or defaulted fields
        if any(hook[0] != GATE_HOOK for hooks in schema._hooks.values() for hook in hooks):
            return
        compiled = {}
        for name, fld in schema.load_fields.items():
            kind = _EXACT.get(type(fld))
            if kind is None or getattr(fld, "pre_load", None) or getattr(fld, "post_load", None):
                return
            key, attr = fld.data_key or name, fld.attribute or name
            compiled[key] = (attr, kind, fld.allow_none, tuple(fld.validators))
            if fld.required or fld.load_default is not marshmallow.missing:
                self.absent.append((key, attr, fld.required, fld.load_default))
        self.fields = compiled

    def load(self, data: dict[str, Any]) -> dict[str, Any]:
        compiled = self.fields
        if compiled is None:
            return self.schema.load(data)
        out: dict[str, Any] = {}
        for key, value in data.items():
            spec = compiled.get(key)
            if spec is None:
                return self.schema.load(data)
            attr, kind, allow_none, validators = spec
            if value is None:
                if not allow_none:
                    return self.schema.load(data)
            elif type(value) is not kind:
                return self.schema.load(data)
            else:
                if kind is str:
                    try:
                        value = inputs.check_text(value, key)
                    except inputs.InputError as exc:
                        raise marshmallow.ValidationError({key: [exc.reason]}) from None
                try:
                    for validator in validators:
                        if validator(value) is False:
                            return self.schema.load(data)
                except marshmallow.ValidationError:
                    return self.schema.load(data)
            out[attr] = value
        for key, attr, required, default in self.absent:
            if key not in data:
                if required:
                    return self.schema.load(data)
                out[attr] = default() if callable(default) else default
        return out


@contextmanager
def _settings_fixed(itsm: Itsm) -> Iterator[None]:
    """Read each plugin's settings once for the length of an import: the type's
    ``derive`` rules ask for them on every record, and they cannot change meanwhile."""
    itsm.plugin_settings = functools.lru_cache(maxsize=None)(itsm.plugin_settings)
    try:
        yield
    finally:
        del itsm.plugin_settings  # the method again


@contextmanager
def _quick_handover() -> Iterator[None]:
    """Let the writing thread have the interpreter back soon after the server answers.

    The reading thread is always busy; at the default switch interval (5 ms) the writer
    waits that long for each answer of the database (sequence numbers, the end of each
    COPY, the commit), and the server sits idle meanwhile: measured, a fifth of the
    import's time.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, 0.0005))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def read_json_lines(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line, through the input gate; a line that
    is not JSON, nests too deep or holds a NUL character or a lone surrogate stops it."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            inputs.check_json_depth(line, "line")
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportError_(f"line {number}: not valid JSON ({exc.msg} at column "
                               f"{exc.colno})") from None
        except inputs.InputError as exc:
            raise ImportError_(f"line {number}: {exc.reason}") from None
        try:
            yield number, inputs.check_tree(value)
        except inputs.InputError as exc:
            raise ImportError_(f"line {number}: {exc.message}") from None


def _timestamp(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name}: not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name}: needs a time zone, e.g. 2026-01-31T12:00:00Z")
    return parsed.astimezone(UTC)


def _insert(session, table, rows: list[dict[str, Any]], *, ids: bool = False) -> list[int]:
    """Insert ``rows`` (all with the same keys); with ``ids``, return the new ids in order.

    SQLite gets the driver's ``executemany`` (see :func:`_insert_sqlite`); other back ends
    but PostgreSQL (which gets COPY) a multi-row INSERT .. RETURNING.
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite" and _complete(table, rows[0]):
        return _insert_sqlite(session, table, rows, ids=ids)
    if not ids:
        session.execute(insert(table), rows)
        return []
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(session.scalars(stmt, rows))


def _complete(table, row: dict[str, Any]) -> bool:
    """Whether ``row`` names every column that has a client-side default (but ``id``):
    then nothing is left for SQLAlchemy to fill in."""
    return all(c.key in row for c in table.columns
               if c.key != "id" and (c.default is not None or c.onupdate is not None))


def _insert_sqlite(session, table, rows: list[dict[str, Any]], *, ids: bool) -> list[int]:
    """SQLite: one ``executemany`` of the driver, the values converted as SQLAlchemy would.

    With ``ids``, the first row is inserted alone (its INSERT takes the database's write
    lock for the transaction and gives the next free id) and the others get the ids that
    follow, unused since the first one was the largest plus one.
    """
    dialect = session.get_bind().dialect
    keys = list(rows[0])
    taken: list[int] = []
    if ids:
        first = session.scalar(insert(table).returning(table.c.id), rows[0])
        taken = list(range(first, first + len(rows)))
        rows = [{"id": id_, **row} for id_, row in zip(taken[1:], rows[1:], strict=True)]
        keys = ["id", *keys]
    convert = bind_processors(table, keys, dialect)
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(k) for k in keys)}) "
           f"VALUES ({', '.join('?' for _ in keys)})")
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, [converted(convert, map(row.__getitem__, keys))
                                 for row in rows])
    finally:
        cursor.close()
    return taken


class BulkImporter:
    """Imports records of one type, batch by batch, for one actor (the system by default)."""

    def __init__(self, itsm: Itsm, type_name: str, *, batch: int = DEFAULT_BATCH,
                 actor: Actor | None = None, now: datetime | None = None,
                 jobs: int = 1) -> None:
        if not 1 <= batch <= MAX_BATCH:
            raise ImportError_(f"batch size {batch}: use 1 to {MAX_BATCH}")
        if jobs < 1:
            raise ImportError_(f"jobs {jobs}: use 1 or more")
        url = itsm.engine.url
        if jobs > 1 and ("fork" not in multiprocessing.get_all_start_methods() or (
                url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))):
            # Worker processes get the install by forking, and read the same database:
            # not where there is no fork, nor from a database in this process's memory.
            jobs = 1
        self.jobs = jobs
        self.itsm = itsm
        self.rt: RecordType = itsm.types.get(type_name)
        self.batch = batch
        self.actor = actor or Actor.system()
        self.now = now or utcnow()
        self.schema = _Loader(itsm.types.schemas[self.rt.name]["in"]())
        self.dump_own = dumper(self.rt.schema) if self.rt.schema else None
        self.calendars = calendars_for(itsm, None)
        self.metrics = sla.metrics_of(itsm.settings)
        self.met_once = sla.met_once_of(itsm.settings)
        self.workflow = self.rt.workflow
        self.record_table = Record.__table__
        self.own_table = self.rt.model.__table__ if self.rt.model is not Record else None
        mapper = inspect(self.rt.model)
        self.columns: dict[str, Any] = {}  # attribute -> its default (None: none)
        for attr in mapper.column_attrs:
            if attr.key in ("id", "type", "number", "version"):
                continue
            default = attr.columns[0].default
            self.columns[attr.key] = default.arg if default is not None and \
                default.is_scalar else None
        self.own_columns = [c.key for c in self.own_table.columns if c.key != "id"] \
            if self.own_table is not None else []
        self.record_keys = [c.key for c in self.record_table.columns
                            if c.key not in ("id", "number")]
        dialect = itsm.engine.dialect
        self.copiers: dict[str, Copier] | None = None
        if dialect.name == "postgresql":
            self.copiers = {"record": Copier(self.record_table, ("id", "number"), dialect),
                            "journal": Copier(JournalEntry.__table__, ("record_id",), dialect),
                            "clocks": Copier(SlaClock.__table__, ("record_id",), dialect)}
            if self.own_table is not None:
                self.copiers["own"] = Copier(self.own_table, ("id",), dialect)
        self._refs: dict[tuple[str, str], int | None] = {}
        self._names: dict[tuple[str, int], str] = {}  # (model, id) -> code, e-mail or name
        self._agency_of: dict[int, int | None] = {}
        self.policy: sla.PolicyMemo | None = None  # on the reading session, in run()

    # -- validation ----------------------------------------------------------------------

    def _ref(self, session, name: str, value: str) -> int | None:
        model, column = {"agency": (Agency, Agency.code), "requester": (User, User.email),
                         "assignee": (User, User.email), "group": (Group, Group.name)}[name]
        if model is User:
            value = value.strip().lower()
        key = (model.__name__, value)
        if key not in self._refs:
            found = session.scalar(select(model.id).where(column == value))
            self._refs[key] = found
            if found is not None:
                self._names[(model.__name__, found)] = value
        return self._refs[key]

    def _validate(self, session, line: int, data: Any) -> _Row:
        """One input line -> the row to write, or ValueError with the reasons."""
        rt = self.rt
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        history = {k: data[k] for k in HISTORY_FIELDS if k in data}
        fields = {k: v for k, v in data.items() if k not in HISTORY_FIELDS}
        try:
            values = self.schema.load(fields)
        except marshmallow.ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
            raise ValueError("; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                       for k, v in sorted(messages.items()))) from None
        for name in ("agency", "requester", "assignee", "group"):
            if name not in values:
                continue
            value = values.pop(name)
            found = self._ref(session, name, value) if value not in (None, "") else None
            if value not in (None, "") and found is None:
                kind = "user" if name in ("requester", "assignee") else name
                raise ValueError(f"{name}: unknown {kind} {value!r}")
            values[f"{name}_id"] = found
        if values.get("requester_id") is None and self.actor.id is not None:
            values["requester_id"] = self.actor.id
        requester = values.get("requester_id")
        if requester and "agency_id" not in values:
            if requester not in self._agency_of:
                self._agency_of[requester] = session.scalar(select(User.agency_id).where(
                    User.id == requester))
            values["agency_id"] = self._agency_of[requester]
        state = history.get("state", self.workflow.initial)
        if state not in self.workflow.states:
            raise ValueError(f"state: {state!r} is not a state of {rt.title.lower()} "
                             f"(states: {', '.join(self.workflow.states)})")
        created = _timestamp(history["created_at"], "created_at") \
            if "created_at" in history else self.now
        updated = _timestamp(history["updated_at"], "updated_at") \
            if "updated_at" in history else created
        if updated < created:
            raise ValueError("updated_at: before created_at")
        final = self.workflow.state(state).final
        closed = None
        if history.get("closed_at") is not None:
            if not final:
                raise ValueError(f"closed_at: {state!r} is not a final state")
            closed = _timestamp(history["closed_at"], "closed_at")
        elif final:
            closed = updated
        record = SimpleNamespace(**{**self.columns, **values, "type": rt.name, "number": None,
                                    "state": self.workflow.initial, "created_at": created,
                                    "updated_at": updated, "closed_at": closed,
                                    "created_by_id": self.actor.id, "id": None, "version": 1})
        if rt.derive is not None:
            derived = rt.derive(record) or {}  # ValueError carries the type's own message
            for key, value in derived.items():
                setattr(record, key, value)
        try:  # as RecordService.create does, before the journal entry is made from it
            self.itsm.hook.itsm_record_prepare(session=session, record=record,
                                               change=RecordChange("created", self.actor))
        except ItsmError as exc:
            raise ValueError(exc.message) from None
        row = _Row(line=line, values={k: getattr(record, k) for k in self.columns})
        row.values["state"] = state
        shown = {"title": record.title, "state": self.workflow.initial,
                 "priority": record.priority, "agency": self._name("agency", record.agency_id),
                 "requester": self._name("user", record.requester_id),
                 "assignee": self._name("user", record.assignee_id),
                 "group": self._name("group", record.group_id)}
        if self.dump_own is not None:
            shown.update(self.dump_own(record))
        shown = {k: v if type(v) in _PLAIN else jsonable(v) for k, v in shown.items()}
        row.entries.append((_Entry("created", created, shown), {"body": ""}))
        if state != self.workflow.initial:
            changes = {"changes": {"state": [self.workflow.initial, state]}, "imported": True}
            row.entries.append((_Entry("transitioned", updated, changes),
                                {"body": "imported in this state"}))
        for number, comment in enumerate(history.get("comments") or (), start=1):
            if not isinstance(comment, dict) or not str(comment.get("body") or "").strip():
                raise ValueError(f"comments[{number}]: an object with a non-empty body")
            at = _timestamp(comment.get("at", updated), f"comments[{number}].at")
            public = bool(comment.get("public", True))
            row.entries.append((_Entry("commented" if public else "work_noted", at, {}),
                                {"body": str(comment["body"])[:100_000], "public": public}))
        return row

    def _name(self, kind: str, id_: int | None) -> str | None:
        """Reverse of the reference cache: what the journal shows for an id."""
        if id_ is None:
            return None
        model = {"agency": "Agency", "user": "User", "group": "Group"}[kind]
        return self._names.get((model, id_))

    # -- writing -------------------------------------------------------------------------

    def _numbers(self, count: int) -> int:
        """Take ``count`` numbers in a transaction of their own; return the first."""
        return take_numbers(self.itsm.engine, self.rt.prefix, count) - count + 1

    def _build(self, rows: list[_Row]) -> _Batch:
        """Everything a batch writes but its ids and numbers, which only the write takes:
        dicts of column values, or on PostgreSQL rows converted for COPY."""
        copiers = self.copiers
        batch = _Batch(count=len(rows), lines=(rows[0].line, rows[-1].line))
        for index, row in enumerate(rows):
            clocks = self._clocks(row)
            record = {**row.values, "type": self.rt.name, "version": 1,
                      "sla_due_at": sla.due_of(clocks)}
            own = {k: row.values.get(k) for k in self.own_columns}
            journal = [{"kind": entry.kind, "actor_id": self.actor.id,
                        "created_at": entry.created_at, "public": extra.get("public", True),
                        "body": extra["body"], "data": entry.data}
                       for entry, extra in row.entries]
            if copiers is not None:
                record = copiers["record"].row(record)
                own = copiers["own"].row(own) if self.own_table is not None else own
                journal = [copiers["journal"].row(values) for values in journal]
                clocks = [copiers["clocks"].row(values) for values in clocks]
            else:
                record = {k: record.get(k) for k in self.record_keys}
            batch.records.append(record)
            batch.own.append(own)
            batch.journal.extend((index, values) for values in journal)
            batch.clocks.extend((index, values) for values in clocks)
        return batch

    def _write(self, batch: _Batch, stats: ImportStats) -> None:
        """Number the batch, write it in one transaction of its own and count it; what
        the database refuses (a number taken meanwhile, a reference deleted meanwhile)
        stops the import with one line."""
        try:
            self._store(batch, stats)
        except (DBAPIError, self.itsm.engine.dialect.loaded_dbapi.Error) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            first, last = batch.lines
            raise ImportError_(
                f"could not write lines {first} to {last}: the database refused them "
                f"({reason}); nothing of these lines was written, {stats.records} "
                "record(s) imported before them") from None

    def _store(self, batch: _Batch, stats: ImportStats) -> None:
        rt = self.rt
        first = self._numbers(batch.count)
        numbers = [f"{rt.prefix}{first + i:07d}" for i in range(batch.count)]
        with self.itsm.Session() as session:
            if self.copiers is not None:
                copiers = self.copiers
                ids = new_ids(session, self.record_table, batch.count)
                copiers["record"].copy(session, (
                    (id_, number, *values)
                    for id_, number, values in zip(ids, numbers, batch.records, strict=True)))
                if self.own_table is not None:
                    copiers["own"].copy(session, ((id_, *values) for id_, values
                                                  in zip(ids, batch.own, strict=True)))
                copiers["journal"].copy(session, ((ids[index], *values)
                                                  for index, values in batch.journal))
                copiers["clocks"].copy(session, ((ids[index], *values)
                                                 for index, values in batch.clocks))
            else:
                ids = _insert(session, self.record_table, [
                    {"number": number, **values}
                    for number, values in zip(numbers, batch.records, strict=True)], ids=True)
                if self.own_table is not None:
                    _insert(session, self.own_table, [
                        {"id": id_, **values}
                        for id_, values in zip(ids, batch.own, strict=True)])
                _insert(session, JournalEntry.__table__,
                        [{"record_id": ids[index], **values} for index, values in batch.journal])
                _insert(session, SlaClock.__table__,
                        [{"record_id": ids[index], **values} for index, values in batch.clocks])
            session.commit()
        stats.records += batch.count
        stats.journal += len(batch.journal)
        stats.clocks += len(batch.clocks)
        stats.batches += 1
        stats.first = stats.first or numbers[0]
        stats.last = numbers[-1]

    def _clocks(self, row: _Row) -> list[dict[str, Any]]:
        """The record's SLA clocks (but their record id), replayed from the journal
        entries being written.

        The policy is asked with the import's reading session, before the record is
        written (a policy reading the record's rows finds none, as for a record being
        created), through a memo: records alike in all the policy reads (group, agency,
        priority ...) share its answer, one call for thousands of records.
        """
        seen = SimpleNamespace(**row.values, id=None, type=self.rt.name)
        entries = [e for e, _ in row.entries if e.kind in sla.CLOCK_KINDS]
        figures = sla.replay(entries, self.workflow,
                             sla.targets_for(self.itsm, seen, memo=self.policy),
                             self.calendars, self.now, metrics=self.metrics,
                             met_once=self.met_once)
        # History is not news: a warning or breach already past when the import runs is
        # recorded (warned/breached) and marked announced, so neither the sweep nor any
        # escalation keyed on announcements acts on it; one still ahead is announced
        # when it comes due, as for any record.
        return [{"metric": f.metric, "warning_sent": f.warned,
                 "breach_sent": f.breached, **f.values()} for f in figures]

    def _prepare(self, lookups, chunk: list[tuple[int, Any]]) -> _Batch:
        """Validate a batch's lines and build what it writes; a bad line raises
        :class:`_BadLine`."""
        rows = []
        for line, data in chunk:
            try:
                rows.append(self._validate(lookups, line, data))
            except ValueError as exc:
                raise _BadLine(line, str(exc)) from None
        return self._build(rows)

    def _preload(self, lookups) -> None:
        """Agencies and groups are few: known up front, so the journal names them also
        when an agency comes from the requester. Users too, unless there are very many:
        one query instead of one per person."""
        for model, column in ((Agency, Agency.code), (Group, Group.name)):
            for id_, value in lookups.execute(select(model.id, column)):
                self._refs[(model.__name__, value)] = id_
                self._names[(model.__name__, id_)] = value
        if lookups.scalar(select(func.count()).select_from(User)) <= PRELOAD_USERS:
            for id_, email, agency_id in lookups.execute(
                    select(User.id, User.email, User.agency_id)):
                self._refs[("User", email)] = id_
                self._names[("User", id_)] = email
                self._agency_of[id_] = agency_id

    @contextmanager
    def _preparer(self, lookups) -> Iterator[Callable[[list[tuple[int, Any]]], Future[_Batch]]]:
        """``prepare(chunk) -> Future`` of its batch: in this process, or with ``jobs``
        above 1 in ``jobs - 1`` forked processes of its own (what they know of the
        install, this importer's caches included, is this process's at the fork)."""
        if self.jobs < 2:
            def here(chunk: list[tuple[int, Any]]) -> Future[_Batch]:
                done: Future[_Batch] = Future()
                try:
                    done.set_result(self._prepare(lookups, chunk))
                except _BadLine as bad:
                    done.set_exception(bad)
                return done

            yield here
            return
        # Forked, a process gets this importer as it is (the initializer's arguments are
        # not pickled): its caches, the install's plugins and settings.
        with ProcessPoolExecutor(self.jobs - 1, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_start_worker, initargs=(self,)) as pool:
            yield functools.partial(pool.submit, _prepare_in_worker)

    def run(self, lines: Iterable[tuple[int, Any]],
            progress: Callable[[int], None] | None = None) -> ImportStats:
        """Import every line; ``progress(n)`` after each batch of ``n`` records.

        On a database server, a batch is written by a thread of its own while the next
        ones are validated (by this process, or by ``jobs - 1`` processes of their own):
        the server's work on one (its indexes, foreign keys and search vectors) overlaps
        ours on the others. A batch is validated whole before its write begins, and a bad
        line waits for the batches before it to land, so what the message says was
        imported is what the database holds.
        """
        stats = ImportStats()
        started = time.perf_counter()
        in_flight: list[tuple[Future[None], int]] = []
        server = self.itsm.engine.dialect.name != "sqlite"
        # Batches being validated, oldest first; with worker processes, a few ahead of
        # the writer so that none of them waits for the next one.
        validating: deque[Future[_Batch]] = deque()
        ahead = 2 * (self.jobs - 1)

        def landed() -> None:  # wait for the batch being written (its error is ours)
            while in_flight:
                future, count = in_flight.pop()
                future.result()
                if progress:
                    progress(count)

        with self.itsm.Session() as lookups, _settings_fixed(self.itsm), _quick_handover(), \
                ThreadPoolExecutor(1, thread_name_prefix="itsm-import") as writer:

            def write_oldest() -> None:
                try:
                    batch = validating.popleft().result()
                except _BadLine as bad:
                    landed()
                    raise ImportError_(
                        f"line {bad.line}: invalid {self.rt.title.lower()}: {bad.reason} "
                        f"(nothing of this batch was written; {stats.records} record(s) "
                        "imported before it)") from None
                except BrokenProcessPool:
                    landed()
                    raise ImportError_(
                        f"a validating process stopped; {stats.records} record(s) "
                        "imported, nothing of the batches after them") from None
                landed()
                if server:
                    in_flight.append((writer.submit(self._write, batch, stats), batch.count))
                else:
                    self._write(batch, stats)
                    if progress:
                        progress(batch.count)

            self._preload(lookups)
            self.policy = sla.PolicyMemo(self.itsm, lookups)
            with self._preparer(lookups) as prepare:
                chunk: list[tuple[int, Any]] = []
                unreadable: ImportError_ | None = None
                reader = iter(lines)
                while True:
                    try:
                        item = next(reader)
                    except StopIteration:
                        break
                    except ImportError_ as exc:  # a line that is not JSON: the lines
                        unreadable = exc          # before it are judged (and written) first
                        break
                    chunk.append(item)
                    if len(chunk) == self.batch:
                        validating.append(prepare(chunk))
                        chunk = []
                        while len(validating) > ahead:
                            write_oldest()
                if chunk:
                    validating.append(prepare(chunk))
                while validating:
                    if unreadable is not None and len(validating) == 1 and chunk:
                        try:  # the lines read of the batch it interrupted: checked, not written
                            validating[0].result()
                        except _BadLine:
                            write_oldest()  # raises the line's own message
                        break
                    write_oldest()
                landed()
                if unreadable is not None:
                    raise unreadable
        stats.seconds = time.perf_counter() - started
        return stats


class _BadLine(Exception):
    """A line of a batch being prepared is invalid (crosses from a worker process)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(line, reason)
        self.line, self.reason = line, reason


# In a worker process (see BulkImporter._preparer): the import it prepares batches for,
# and its own reading session.
_forked: BulkImporter | None = None
_worker_session: Any = None


def _start_worker(importer: BulkImporter) -> None:
    global _forked, _worker_session
    importer.itsm.engine.dispose(close=False)  # the parent's connections stay the parent's
    _forked, _worker_session = importer, importer.itsm.Session()
    importer.policy = sla.PolicyMemo(importer.itsm, _worker_session)


def _prepare_in_worker(chunk: list[tuple[int, Any]]) -> _Batch:
    assert _forked is not None
    return _forked._prepare(_worker_session, chunk)
