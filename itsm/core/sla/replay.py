"""The journal -> the clocks: a record's clocks replayed from its journal, written over
its clock rows, and ``itsm sla recompute`` doing it for every record."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from itsm.core.calendars import (
    DEFAULT,
    Calendar,
    builtin_calendars,
    calendar_named,
)
from itsm.core.models import SLA_NONE, JournalEntry, Record, utcnow, write_now
from itsm.core.sla.policy import (
    CLOCK_KINDS,
    METRICS,
    TICK,
    ZERO,
    SlaTarget,
    met_once_of,
    metrics_of,
    targets_for,
)
from itsm.core.sla.stored import calendars_for
from itsm.core.sla_models import FIGURES, SlaClock

if TYPE_CHECKING:
    from itsm.core.state import Itsm
    from itsm.core.workflow import State, Workflow


# -- replay: the journal -> the clocks ---------------------------------------------------------


@dataclass(frozen=True)
class ClockFigures:
    """What :func:`replay` says of one clock; the columns of :class:`SlaClock` it owns."""

    metric: str
    target_minutes: int | None
    calendar: str
    warn_at: float | None
    source: str
    state: str  # running, paused or met
    started_at: datetime
    elapsed_seconds: float  # working seconds used up to ``as_of``
    as_of: datetime
    met_at: datetime | None
    warned: bool
    breached: bool
    warn_due_at: datetime | None
    breach_due_at: datetime | None

    def values(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every timestamp, and replay runs per record.
        return {name: getattr(self, name) for name in FIGURES}


@functools.lru_cache(maxsize=1024)
def _limits_of(target: SlaTarget | None) -> Mapping[str, timedelta]:
    """How much working time a target allows before its warning and its breach (one
    shared, read-only mapping per target)."""
    if target is None:
        return MappingProxyType({})
    limit = timedelta(minutes=target.minutes)
    out = {"breach": limit}
    if target.warn_at is not None and target.warn_at > 0:
        out["warn"] = limit * float(target.warn_at)
    return MappingProxyType(out)


@dataclass
class _Run:
    """One clock while the journal is walked."""

    metric: str
    started_at: datetime
    calendar: Calendar
    since: datetime
    priority: int | None = None  # the priority ``target`` was taken for
    target: SlaTarget | None = None
    targeted: bool = False
    elapsed: timedelta = ZERO
    paused: bool = False
    met_at: datetime | None = None
    crossed: dict[str, datetime] = field(default_factory=dict)  # "warn"/"breach" -> when
    _limits: Mapping[str, timedelta] = field(default_factory=dict)  # of ``target``

    @property
    def active(self) -> bool:
        return self.met_at is None and not self.paused

    def limits(self) -> Mapping[str, timedelta]:
        return self._limits

    def due(self, kind: str, limit: timedelta) -> datetime:
        """The first instant the clock is past ``limit`` (or was, if it already is)."""
        if kind in self.crossed:
            return self.crossed[kind]
        return self.calendar.add(self.since, limit - self.elapsed + TICK)

    def advance(self, t: datetime) -> None:
        """Run the clock from ``since`` to ``t`` under the current conditions."""
        if t <= self.since:
            return
        if self.active:
            gained = self.calendar.between(self.since, t)
            for kind, limit in self.limits().items():
                if kind not in self.crossed and self.elapsed + gained > limit:
                    self.crossed[kind] = self.due(kind, limit)
            self.elapsed += gained
        self.since = t

    def retarget(self, target: SlaTarget | None, calendars: Mapping[str, Calendar],
                 t: datetime) -> None:
        self.target = target
        self._limits = _limits_of(target)
        if target is not None:
            self.targeted = True
            self.calendar = calendar_named(calendars, target.calendar,
                                           f"{self.metric} target of {target.source}")
        limits = self.limits()
        for kind in ("warn", "breach"):
            if kind in limits and self.elapsed > limits[kind]:
                self.crossed.setdefault(kind, t)
            else:
                self.crossed.pop(kind, None)

    def figures(self, now: datetime) -> ClockFigures:
        now = max(now, self.since)
        due: dict[str, datetime | None] = {"warn": None, "breach": None}
        hit = {kind: kind in self.crossed for kind in due}
        if self.active:
            for kind, limit in self.limits().items():
                due[kind] = self.due(kind, limit)
                hit[kind] = hit[kind] or due[kind] <= now
        target = self.target
        return ClockFigures(
            metric=self.metric, target_minutes=target.minutes if target else None,
            calendar=self.calendar.name, warn_at=target.warn_at if target else None,
            source=(target.source if target else "no target at this priority")[:200],
            state="met" if self.met_at else "paused" if self.paused else "running",
            started_at=self.started_at, elapsed_seconds=self.elapsed.total_seconds(),
            as_of=self.since, met_at=self.met_at, warned=hit["warn"],
            breached=hit["breach"], warn_due_at=due["warn"], breach_due_at=due["breach"])


class _Stops:
    """When each metric is met and resumed, from the workflow's states."""

    def __init__(self, workflow: Workflow, met_once: Iterable[str]) -> None:
        self.workflow = workflow
        self.named = {m for s in workflow.states.values() for m in s.stops}
        self.met_once = set(met_once)

    def meets(self, metric: str, old: str | None, new: State) -> bool:
        if metric in self.named:
            return metric in new.stops
        if metric == "response":
            return old == self.workflow.initial and new.name != old
        return new.final

    def resumes(self, metric: str, new: State) -> bool:
        if metric in self.met_once or new.final:
            return False
        if metric in self.named:
            return metric not in new.stops
        if metric == "response":
            return new.name == self.workflow.initial
        return True


@functools.lru_cache(maxsize=64)
def _stops(workflow: Workflow, met_once: frozenset[str]) -> _Stops:
    return _Stops(workflow, met_once)


def replay(entries: Iterable[Any], workflow: Workflow,
           targets_for: Callable[[int | None, str], SlaTarget | None],
           calendars: Mapping[str, Calendar], now: datetime, *,
           metrics: Iterable[str] = METRICS,
           met_once: Iterable[str] = ("response",)) -> list[ClockFigures]:
    """The figures of a record's clocks, from its journal.

    :param entries: the record's journal entries in order (objects with ``kind``,
        ``created_at`` and ``data``, e.g. :class:`JournalEntry`); kinds other than
        ``created``, ``transitioned`` and ``updated`` are ignored.
    :param workflow: the record type's workflow (waiting states, stops, initial state).
    :param targets_for: ``(priority, metric) -> SlaTarget | None``.
    :param calendars: calendars by name (:func:`itsm.core.calendars.load_calendars`).
    :param now: when ``warned``/``breached`` are judged for running clocks; every other
        figure depends on the journal only.
    :return: one :class:`ClockFigures` per metric that had a target at some point.
    """
    stops = _stops(workflow, frozenset(met_once))
    # Until a metric gets a target (a priority without one), it counts on "default".
    fallback = calendars.get(DEFAULT) or builtin_calendars()[DEFAULT]
    runs: list[_Run] = []
    state: str | None = None
    priority: int | None = None
    last: datetime | None = None
    for entry in entries:
        data = entry.data or {}
        t = entry.created_at if last is None else max(entry.created_at, last)
        if entry.kind == "created":
            if runs:
                continue  # a second "created" cannot happen; never restart the clocks
            state, priority, last = data.get("state") or workflow.initial, \
                data.get("priority"), t
            runs = [_Run(metric=m, started_at=t, calendar=fallback, since=t,
                         priority=priority) for m in metrics]
            for run in runs:
                run.retarget(targets_for(priority, run.metric), calendars, t)
                _enter(run, stops, None, workflow.state(state), t)
            continue
        if entry.kind not in ("transitioned", "updated") or not runs:
            continue
        changes = data.get("changes") or {}
        new_state = changes["state"][1] if "state" in changes else state
        new_priority = changes["priority"][1] if "priority" in changes else priority
        if (new_state, new_priority) == (state, priority):
            continue
        last = t
        for run in runs:
            run.advance(t)
            if new_state != state:
                _enter(run, stops, state, workflow.state(new_state), t)
            # A met clock keeps the target it was measured against; reopened, it takes
            # the target of the priority the record has by then.
            if run.met_at is None and run.priority != new_priority:
                run.retarget(targets_for(new_priority, run.metric), calendars, t)
                run.priority = new_priority
        state, priority = new_state, new_priority
    return [run.figures(now) for run in runs if run.targeted]


def _enter(run: _Run, stops: _Stops, old: str | None, new: State, t: datetime) -> None:
    run.paused = new.waiting
    if run.met_at is None:
        if stops.meets(run.metric, old, new):
            run.met_at = t
    elif old is not None and stops.resumes(run.metric, new):
        run.met_at = None


def replay_record(itsm: Itsm, session: Session, record: Record, workflow: Workflow,
                  now: datetime, entries: list[JournalEntry] | None = None) \
        -> list[ClockFigures]:
    """:func:`replay` for one stored record, with the install's policy and calendars."""
    if entries is None:
        entries = list(session.scalars(select(JournalEntry).where(
            JournalEntry.record_id == record.id, JournalEntry.kind.in_(CLOCK_KINDS))
            .order_by(JournalEntry.id)))
    settings = itsm.settings
    return replay(entries, workflow, targets_for(itsm, record, session),
                  calendars_for(itsm, session),
                  now, metrics=metrics_of(settings), met_once=met_once_of(settings))


def _store(session: Session, record_id: int, figures: list[ClockFigures],
           existing: Iterable[SlaClock]) -> tuple[list[SlaClock], int]:
    """Write ``figures`` over the record's clock rows; return the rows and how many rows
    were added, changed or removed. Delivery flags (``warning_sent``, ``breach_sent``)
    are never reset."""
    by_metric = {clock.metric: clock for clock in existing}
    rows, new, changed = [], [], 0
    for fig in figures:
        values = fig.values()
        clock = by_metric.pop(fig.metric, None)
        if clock is None:
            clock = SlaClock(record_id=record_id, metric=fig.metric, warning_sent=False,
                             breach_sent=False, **values)
            new.append(clock)
            changed += 1
        elif any(getattr(clock, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(clock, key, value)
            changed += 1
        rows.append(clock)
    for stale in by_metric.values():  # a metric no longer configured or targeted
        session.delete(stale)
        changed += 1
    write_now(session, new)
    return rows, changed


def keep_due(session: Session, record: Record, clocks: Iterable[Any]) -> None:
    """Store on the record when its next SLA target falls due (``Record.sla_due_at``,
    which queues sort by): the earliest breach time of its running clocks.

    Written with an UPDATE of its own, not through the record's attributes: the record's
    version counts changes a client may have seen, and this is a figure of the clocks,
    not a change to the record.
    """
    due = min((c.breach_due_at for c in clocks
               if c.state == "running" and c.breach_due_at is not None), default=SLA_NONE)
    state = sa_inspect(record)
    if state.persistent and state.dict.get("sla_due_at") == due:
        return
    if not state.persistent:  # its INSERT is still to come and writes the value
        record.sla_due_at = due
        return
    session.execute(update(Record.__table__).where(Record.__table__.c.id == record.id)
                    .values(sla_due_at=due))
    set_committed_value(record, "sla_due_at", due)


def due_of(clocks: Iterable[Mapping[str, Any]]) -> datetime:
    """``Record.sla_due_at`` for clock rows given as dicts (the bulk import's)."""
    return min((c["breach_due_at"] for c in clocks
                if c.get("state") == "running" and c.get("breach_due_at") is not None),
               default=SLA_NONE)


# -- recompute ---------------------------------------------------------------------------------


@dataclass
class RecomputeStats:
    records: int = 0
    clocks: int = 0  # clocks there are now
    changed: int = 0  # clocks added, changed or removed
    skipped: int = 0  # records of types no enabled plugin provides


def count_records(itsm: Itsm, type_name: str | None = None) -> int:
    names = [itsm.types.get(type_name).name] if type_name else [rt.name for rt in itsm.types]
    with itsm.Session() as session:
        return session.scalar(select(func.count()).select_from(Record)
                              .where(Record.type.in_(names))) or 0


def recompute(itsm: Itsm, type_name: str | None = None, *, now: datetime | None = None,
              batch: int = 200, progress: Callable[[int], None] | None = None) \
        -> RecomputeStats:
    """Rebuild every clock (of one record type, or all enabled types) from the journals.

    Records are locked batch by batch, so a concurrent change waits instead of being
    overwritten with older figures. No event is sent for a past warning or breach found
    here; the sweep announces those of clocks still running.
    """
    now = now or utcnow()
    stats = RecomputeStats()
    types = [itsm.types.get(type_name)] if type_name else list(itsm.types)
    for rt in types:
        last_id = 0
        while True:
            with itsm.Session() as session:
                records = session.scalars(select(rt.model).where(rt.model.id > last_id)
                                          .order_by(rt.model.id).limit(batch)
                                          .with_for_update()).all()
                if not records:
                    break
                ids = [r.id for r in records]
                journals: dict[int, list[JournalEntry]] = {i: [] for i in ids}
                for entry in session.scalars(select(JournalEntry).where(
                        JournalEntry.record_id.in_(ids), JournalEntry.kind.in_(CLOCK_KINDS))
                        .order_by(JournalEntry.id)):
                    journals[entry.record_id].append(entry)
                clocks: dict[int, list[SlaClock]] = {i: [] for i in ids}
                for clock in session.scalars(select(SlaClock)
                                             .where(SlaClock.record_id.in_(ids))):
                    clocks[clock.record_id].append(clock)
                for record in records:
                    figures = replay_record(itsm, session, record, rt.workflow, now,
                                            journals[record.id])
                    rows, changed = _store(session, record.id, figures, clocks[record.id])
                    keep_due(session, record, rows)
                    stats.clocks += len(rows)
                    stats.changed += changed
                session.commit()
            stats.records += len(ids)
            last_id = ids[-1]
            if progress:
                progress(len(ids))
    if not type_name:
        enabled = [rt.name for rt in itsm.types]
        with itsm.Session() as session:
            stats.skipped = session.scalar(select(func.count()).select_from(Record)
                                           .where(Record.type.not_in(enabled))) or 0
    return stats
