"""Service levels: which target applies to a record, and the clocks that measure it.

The first plugin that answers ``itsm_sla_policy`` wins; the core's default (a ``trylast``
implementation) reads ``[sla]`` from the configuration.

A record's clocks (one per metric of setting ``sla.metrics``) are a pure function of its
journal: :func:`replay` walks the ``created``, ``transitioned`` and ``updated`` entries
(comments never touch a clock) and gives each clock's figures. The live update at every
change (:func:`on_record_changed`) and ``itsm sla recompute`` both call it, so they
cannot disagree. :func:`sweep` announces warnings and breaches as their due times pass.

Rules, for any record type:

- a clock starts when the record is created and pauses while the record is in a
  ``waiting`` state;
- it stops ("met") on entering a state whose ``stops`` names the metric; when no state of
  the workflow names it, ``response`` is met on leaving the initial state and any other
  metric on entering a final state;
- reopening (from a stop state to a state that does not stop it and is not final)
  resumes it with the time already used, except for metrics of ``sla.met_once``
  (default ``response``: a first response stays given);
- a priority change keeps the time used and re-targets from the policy for the new
  priority, which may then already be breached; a met clock keeps the target it was
  measured against (until it is reopened).

This module is longer than most because the engine reads best in one place.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from itsm.adapters.storage.copy import Copier, new_ids
from itsm.core.calendars import (
    DEFAULT,
    Calendar,
    builtin_calendars,
    calendar_named,
    load_calendars,
)
from itsm.core.errors import ConfigError
from itsm.core.models import Event, JournalEntry, Record, utcnow, write_now
from itsm.core.sla_models import FIGURES, SlaClock

if TYPE_CHECKING:
    from itsm.core.app import Itsm
    from itsm.core.records import RecordChange
    from itsm.core.workflow import State, Workflow

METRICS = ("response", "resolution")
CLOCK_KINDS = ("created", "transitioned", "updated")
ZERO = timedelta(0)
# Clocks count whole microseconds; a clock is breached once it is *past* its target.
TICK = timedelta(microseconds=1)

__all__ = ["SlaClock", "SlaTarget", "ClockFigures", "default_target", "policy_for", "PolicyMemo",
           "replay", "on_record_changed", "sweep", "count_due", "recompute", "clocks_for"]


@dataclass(frozen=True)
class SlaTarget:
    """A target for one metric of one record.

    :param metric: ``response``, ``resolution`` or a plugin's own metric.
    :param minutes: the time allowed, in working minutes of ``calendar``.
    :param calendar: the business calendar the clock runs on.
    :param warn_at: fraction of the target after which the record is "breaching soon".
    :param source: who set it (``default policy``, ``MOU AG-1``), shown to users.
    """

    metric: str
    minutes: int
    calendar: str = "default"
    warn_at: float = 0.75
    source: str = "default policy"


def default_target(settings, record: Record, metric: str) -> SlaTarget | None:
    """The configured default: ``sla.<metric>.p<priority>`` minutes (``p3`` if unset)."""
    priority = record.priority or 3
    minutes = settings.get(f"sla.{metric}.p{priority}")
    if minutes is None:
        return None
    return SlaTarget(metric=metric, minutes=int(minutes),
                     calendar=settings.get("sla.calendar", "default"),
                     warn_at=float(settings.get("sla.warn_at", 0.75)))


def policy_for(itsm: Itsm, record: Record, metric: str,
               session: Session | None = None) -> SlaTarget | None:
    """The target of ``metric`` for ``record``: first answer of the SLA-policy hook."""
    return itsm.hook.itsm_sla_policy(record=record, metric=metric, session=session)


def _names(settings: Mapping[str, Any], name: str, default: str) -> tuple[str, ...]:
    value = settings.get(name, default)
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return tuple(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))


def metrics_of(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The metrics clocked on every record: setting ``sla.metrics``."""
    return _names(settings, "sla.metrics", ",".join(METRICS))


def met_once_of(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """Metrics that never resume once met: setting ``sla.met_once``."""
    return _names(settings, "sla.met_once", "response")


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


# -- the clock rows ----------------------------------------------------------------------------


class _AtPriority:
    """The record as the policy sees it at an earlier priority (for replaying history)."""

    def __init__(self, record: Record, priority: int | None) -> None:
        self._record = record
        self.priority = priority

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)


def _checked(target: SlaTarget | None, metric: str) -> SlaTarget | None:
    if target is not None and (not isinstance(target.minutes, int) or target.minutes < 0):
        raise ConfigError(f"SLA target of {metric} ({target.source}) is "
                          f"{target.minutes!r} minutes: use a whole number >= 0")
    return target


def targets_for(itsm: Itsm, record: Record, session: Session | None = None, *,
                memo: PolicyMemo | None = None) \
        -> Callable[[int | None, str], SlaTarget | None]:
    """``(priority, metric) -> target`` for ``record``, asking the policy hook once each
    (or ``memo``, which shares answers between records)."""
    cache: dict[tuple[int | None, str], SlaTarget | None] = {}

    def lookup(priority: int | None, metric: str) -> SlaTarget | None:
        key = (priority, metric)
        if key not in cache:
            seen = record if priority == record.priority else _AtPriority(record, priority)
            cache[key] = memo.target(seen, metric) if memo is not None \
                else _checked(policy_for(itsm, seen, metric, session), metric)
        return cache[key]

    return lookup


_MISSING = object()  # an attribute the record does not have


class _Reading:
    """A record as the policy sees it, noting each attribute the policy reads first."""

    __slots__ = ("_itsm_record", "_itsm_reads")

    def __init__(self, record: Any) -> None:
        self._itsm_record = record
        self._itsm_reads: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._itsm_record, name, _MISSING)
        self._itsm_reads.setdefault(name, value)
        if value is _MISSING:
            raise AttributeError(name)
        return value


@dataclass(slots=True)
class _Ask:
    """A step of the memo: the answer depends on this attribute's value next."""

    name: str
    then: dict[Any, _Ask | _Answer] = field(default_factory=dict)


@dataclass(slots=True)
class _Answer:
    target: SlaTarget | None


class PolicyMemo:
    """The SLA policy's answers for many records (a bulk import), asking the hook once
    for each different set of values it read.

    An answer is kept with the attributes the policy implementations read to give it,
    in the order they read them, and their values: a later record with the same values
    for those attributes gets the same answer without a call. This holds because a
    policy answers from the record it is shown, the settings and stored rows (agreements,
    groups) that do not change while the memo lives; a policy that reads a record's id
    (its journal, say) is asked again for every record, the id being new each time.
    """

    def __init__(self, itsm: Itsm, session: Session | None = None) -> None:
        self.itsm = itsm
        self.session = session
        self._start: dict[str, _Ask | _Answer] = {}  # by metric
        self.asked = 0  # how many times the hook was called (for tests and profiles)

    def target(self, record: Any, metric: str) -> SlaTarget | None:
        """The policy's target of ``metric`` for ``record``."""
        step = self._start.get(metric)
        try:
            while isinstance(step, _Ask):
                step = step.then.get(getattr(record, step.name, _MISSING))
        except TypeError:  # a value that cannot be a key: ask, keep nothing
            return _checked(self._ask(_Reading(record), metric), metric)
        if step is not None:
            return step.target
        reading = _Reading(record)
        target = _checked(self._ask(reading, metric), metric)
        self._keep(metric, reading._itsm_reads, target)
        return target

    def _ask(self, reading: _Reading, metric: str) -> SlaTarget | None:
        self.asked += 1
        return policy_for(self.itsm, reading, metric, self.session)  # type: ignore[arg-type]

    def _keep(self, metric: str, reads: dict[str, Any], target: SlaTarget | None) -> None:
        into, key = self._start, metric
        try:
            for name, value in reads.items():
                step = into.get(key)
                if step is None:
                    step = into[key] = _Ask(name)
                elif not isinstance(step, _Ask) or step.name != name:
                    return  # read in another order than before: not a pure answer, keep none
                into, key = step.then, value
            if key not in into:
                into[key] = _Answer(target)
        except TypeError:  # a value that cannot be a key
            return


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
                  load_calendars(settings),
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


# What an event says of its record.
_SUMMARY = ("number", "type", "title", "state", "priority")


def _summary(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _SUMMARY}


def on_record_changed(itsm: Itsm, session: Session, record: Record, change: RecordChange,
                      *, now: datetime | None = None,
                      entry: JournalEntry | None = None) -> list[Event]:
    """Bring the record's clocks up to date inside the change's transaction.

    Call it from the record service after the journal entry is added. It recomputes the
    clocks from the journal (so the live figures are what ``itsm sla recompute`` gives)
    and writes the ``sla.warning``/``sla.breached`` events the change made due (a priority
    raised past the time used, a record resolved after its breach time and before the
    sweep saw it). Returns those outbox events, for :meth:`Outbox.committed`.

    ``entry`` is the change's journal entry: a record just created, whose clocks no
    earlier change of this session has touched, has that entry for its whole history and
    no clocks yet, so neither is read back.
    """
    if change.kind not in CLOCK_KINDS:
        return []  # comments, links and attachments never move a clock
    rt = itsm.types.by_name.get(record.type)
    if rt is None:
        return []
    now = now or utcnow()
    clocked = session.info.setdefault("itsm_sla_clocked", set())
    if change.kind == "created" and entry is not None and record.id not in clocked:
        if entry.created_at is None:  # what the flush would give it: the change's one
            entry.created_at = now  # flush then writes the entry, the clocks and the event
        existing, history = [], [entry]
    else:
        session.flush()  # the new journal entry gets its time (and id) here
        existing = list(session.scalars(select(SlaClock)
                                        .where(SlaClock.record_id == record.id)))
        history = None
    clocked.add(record.id)
    figures = replay_record(itsm, session, record, rt.workflow, now, history)
    rows, _ = _store(session, record.id, figures, existing)
    due = [(clock, kind) for clock in rows for kind in ("warning", "breach")
           if getattr(clock, _FLAG[kind]) and not getattr(clock, _SENT[kind])]
    if not due:  # the usual case: nothing to announce, the commit writes the clocks
        return []
    session.flush()  # the claims below update the rows by id
    calendars = load_calendars(itsm.settings)
    events = []
    for clock, kind in sorted(due, key=lambda item: item[0].id):
        event = _announce(session, clock, kind, _summary(record), calendars, now)
        if event is not None:
            events.append(event)
    return events


# -- warnings and breaches ------------------------------------------------------------------

_FLAG = {"warning": "warned", "breach": "breached"}
_SENT = {"warning": "warning_sent", "breach": "breach_sent"}
_DUE = {"warning": "warn_due_at", "breach": "breach_due_at"}
_EVENT = {"warning": "sla.warning", "breach": "sla.breached"}


def elapsed_at(clock: Any, calendars: Mapping[str, Calendar], now: datetime) -> float:
    """Working seconds used by ``now`` (a running clock keeps counting after ``as_of``).

    ``clock`` is a :class:`SlaClock` or any row with its ``state``, ``as_of``,
    ``elapsed_seconds`` and ``calendar``.
    """
    if clock.state != "running" or now <= clock.as_of:
        return clock.elapsed_seconds
    calendar = calendars.get(clock.calendar)
    if calendar is None:  # a calendar removed from the settings: show what is known
        return clock.elapsed_seconds
    return clock.elapsed_seconds + calendar.seconds_between(clock.as_of, now)


def _announce(session: Session, clock: SlaClock, kind: str, record: dict[str, Any],
              calendars: Mapping[str, Calendar], now: datetime,
              due_by: datetime | None = None) -> Event | None:
    """Mark the clock warned/breached and write its event, unless someone already did.

    The conditional UPDATE is the claim: of two workers (or a sweep and a live change)
    only one sees its row count, so each event goes out exactly once per clock.
    """
    sent = getattr(SlaClock, _SENT[kind])
    claim = update(SlaClock).where(SlaClock.id == clock.id, sent.is_(False))
    if due_by is not None:  # the sweep: only while the clock is still due
        claim = claim.where(getattr(SlaClock, _DUE[kind]) <= due_by)
    claim = claim.values({_SENT[kind]: True, _FLAG[kind]: True})
    if not session.execute(claim.execution_options(synchronize_session=False)).rowcount:
        return None
    return _claimed(session, clock, kind, record, calendars, now)


def _claimed(session: Session, clock: SlaClock, kind: str, record: dict[str, Any],
             calendars: Mapping[str, Calendar], now: datetime) -> Event:
    """The event of a clock whose warning or breach this transaction has just claimed."""
    set_committed_value(clock, _SENT[kind], True)
    set_committed_value(clock, _FLAG[kind], True)
    event = Event(name=_EVENT[kind], record_id=clock.record_id, actor_id=None,
                  payload=_event_payload(clock, kind, record, calendars, now))
    session.add(event)
    return event


def _claim_batch(session: Session, clocks: list[SlaClock], kind: str,
                 records: Mapping[int, dict[str, Any]], calendars: Mapping[str, Calendar],
                 now: datetime) -> list[Event]:
    """Claim a sweep batch in two statements instead of one UPDATE per clock.

    The rows are locked in id order first (as a change's flush takes them: no deadlock);
    one conditional UPDATE .. RETURNING then says which clocks are still due and unsent,
    the others having been claimed meanwhile by another worker or a live change.
    """
    if not session.get_bind().dialect.update_returning:  # MariaDB/MySQL: clock by clock
        return [e for c in sorted(clocks, key=lambda c: c.id)
                if (e := _announce(session, c, kind, records[c.record_id], calendars, now,
                                   due_by=now)) is not None]
    ids = sorted(c.id for c in clocks)
    session.execute(select(SlaClock.id).where(SlaClock.id.in_(ids)).order_by(SlaClock.id)
                    .with_for_update())
    claim = (update(SlaClock).where(SlaClock.id.in_(ids), *_unannounced(kind, now))
             .values({_SENT[kind]: True, _FLAG[kind]: True}).returning(SlaClock.id)
             .execution_options(synchronize_session=False))
    won = set(session.scalars(claim))
    return [_claimed(session, c, kind, records[c.record_id], calendars, now)
            for c in sorted(clocks, key=lambda c: c.id) if c.id in won]


def _unannounced(kind: str, now: datetime) -> tuple[Any, Any]:
    """A clock's warning (``kind``) or breach is due by ``now`` and not announced yet."""
    return getattr(SlaClock, _SENT[kind]).is_(False), getattr(SlaClock, _DUE[kind]) <= now


# What the sweep reads back from the clocks it claims, to write their events.
_CLAIM_COLUMNS = ("id", "record_id", "metric", "target_minutes", "source", "state",
                  "elapsed_seconds", "as_of", "calendar", "warn_due_at", "breach_due_at")


def _event_payload(clock: Any, kind: str, record: dict[str, Any],
                   calendars: Mapping[str, Calendar], now: datetime) -> dict[str, Any]:
    return {"record": record, "metric": clock.metric, "target_minutes": clock.target_minutes,
            "elapsed_minutes": round(elapsed_at(clock, calendars, now) / 60, 2),
            "due_at": _iso(getattr(clock, _DUE[kind])), "source": clock.source}


def _summaries(session: Session, record_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    table = Record.__table__
    return {row.id: _summary(row) for row in session.execute(
        select(table.c.id, *(table.c[name] for name in _SUMMARY))
        .where(table.c.id.in_(set(record_ids))))}


@dataclass(slots=True)
class _Written:
    """An outbox event the sweep wrote with a multi-row INSERT, as the post-commit hooks
    read it (:meth:`itsm.core.notify.Outbox.committed`): building an ORM object for each
    would cost more than writing the row."""

    id: int
    name: str
    record_id: int | None
    actor_id: int | None
    payload: dict[str, Any]
    created_at: datetime
    dispatched_at: datetime | None = None


def _sweep_batch(session: Session, kind: str, now: datetime, batch: int,
                 calendars: Mapping[str, Calendar]) -> tuple[int, list[Any]]:
    """Claim up to ``batch`` due clocks and write their events, in a few statements.

    One ``UPDATE .. RETURNING`` is the claim: it marks the clocks still unsent and due
    and gives back what their events say, so of two workers (or a sweep and a live
    change) only one ever announces a clock. On PostgreSQL the rows are picked ``FOR
    UPDATE SKIP LOCKED``: concurrent sweeps take disjoint batches and never wait on a
    row another transaction holds (no deadlock with a change's flush); the claim also
    returns what the events say of each record (``UPDATE .. FROM``), and the events are
    written with COPY. Elsewhere (SQLite) one query reads the records and one multi-row
    INSERT writes the events. Returns how many clocks were claimed and the events, in
    clock id order.
    """
    postgresql = session.get_bind().dialect.name == "postgresql"
    pick = (select(SlaClock.id).where(*_unannounced(kind, now))
            .order_by(getattr(SlaClock, _DUE[kind]), SlaClock.id).limit(batch))
    if postgresql:
        pick = pick.with_for_update(skip_locked=True)
    claim = (update(SlaClock)
             .where(SlaClock.id.in_(pick.scalar_subquery()), *_unannounced(kind, now))
             .values({_SENT[kind]: True, _FLAG[kind]: True})
             .returning(*(getattr(SlaClock, name) for name in _CLAIM_COLUMNS))
             .execution_options(synchronize_session=False))
    if postgresql:
        record = Record.__table__
        claim = claim.where(record.c.id == SlaClock.record_id).returning(
            *(record.c[name].label(f"record_{name}") for name in _SUMMARY))
    clocks = sorted(session.execute(claim).all(), key=lambda row: row.id)
    if not clocks:
        return 0, []
    if postgresql:  # what the claim returned after the clock's columns
        lead = len(_CLAIM_COLUMNS)
        records = {c.record_id: dict(zip(_SUMMARY, c[lead:], strict=True)) for c in clocks}
    else:
        records = _summaries(session, (c.record_id for c in clocks))
    created = utcnow()
    rows = [{"name": _EVENT[kind], "record_id": c.record_id, "actor_id": None,
             "payload": _event_payload(c, kind, records[c.record_id], calendars, now),
             "created_at": created} for c in clocks]
    ids = _event_ids(session, len(rows))
    if postgresql:
        copier = _event_copier(session.get_bind().dialect)
        copier.copy(session, ((id_, *copier.row(row)) for id_, row in zip(ids, rows,
                                                                        strict=True)))
    else:
        session.execute(insert(Event.__table__), [{"id": id_, **row}
                                                  for id_, row in zip(ids, rows, strict=True)])
    return len(clocks), [_Written(id_, **row) for id_, row in zip(ids, rows, strict=True)]


@functools.cache
def _event_copier(dialect: Any) -> Copier:
    return Copier(Event.__table__, ("id",), dialect)


def _event_ids(session: Session, count: int) -> list[int]:
    """Ids for ``count`` new outbox events, in order, so that one multi-row INSERT (or
    ``executemany``) writes them all: an INSERT .. RETURNING whose rows must come back
    in order is sent row by row on SQLite.

    PostgreSQL: taken from the table's sequence. SQLite: the ids after the largest, as
    SQLite itself gives them; the claim's UPDATE holds the database's write lock, so no
    one else inserts meanwhile.
    """
    table = Event.__table__
    if session.get_bind().dialect.name == "postgresql":
        return new_ids(session, table, count)
    last = session.scalar(select(func.max(table.c.id))) or 0
    return list(range(last + 1, last + 1 + count))


@dataclass
class SweepStats:
    warned: int = 0
    breached: int = 0
    more: bool = False  # the budget ran out: the rest waits for the next sweep


class _Budget:
    """What one sweep may still announce (``limit`` clocks, until ``deadline``, a
    ``time.monotonic()`` value), shared by its claimers."""

    def __init__(self, limit: int | None, deadline: float | None) -> None:
        self.left, self.deadline = limit, deadline
        self.spent = False
        self._lock = threading.Lock()

    def take(self, batch: int) -> int:
        with self._lock:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.spent = True
                return 0
            size = batch if self.left is None else min(batch, self.left)
            if size <= 0:
                self.spent = True
                return 0
            if self.left is not None:
                self.left -= size
            return size

    def give_back(self, unused: int) -> None:
        with self._lock:
            if self.left is not None:
                self.left += unused


def count_due(itsm: Itsm, now: datetime) -> int:
    """How many warnings and breaches are due by ``now`` and not announced yet: what
    :func:`sweep` has before it."""
    with itsm.Session() as session:
        return sum(session.scalar(select(func.count()).select_from(SlaClock)
                                  .where(*_unannounced(kind, now)))
                   for kind in ("warning", "breach"))


def sweep(itsm: Itsm, now: datetime | None = None, *, batch: int = 1000,
          claimers: int = 2, progress: Callable[[int], None] | None = None,
          limit: int | None = None, seconds: float | None = None) -> SweepStats:
    """Announce every warning and breach whose due time has passed, once per clock.

    Each batch is one transaction: the clocks marked and their outbox events together,
    written with a few statements whatever the batch size (see :func:`_sweep_batch`).
    Safe to run from several workers at once. On PostgreSQL, once a first batch comes
    back full (a backlog: after an import, or the worker was down), ``claimers``
    threads claim batches side by side, each while the others wait for the server;
    ``FOR UPDATE SKIP LOCKED`` gives them disjoint clocks. The post-commit hooks of
    their events run on the calling thread, one batch after another. ``progress(n)``
    after each batch of ``n`` announcements. ``limit`` and ``seconds`` bound one call
    (the worker's per-cycle budget): ``more`` in the result says clocks were left due.
    """
    now = now or utcnow()
    stats = SweepStats()
    budget = _Budget(limit or None, time.monotonic() + seconds if seconds else None)
    calendars = load_calendars(itsm.settings)
    dialect = itsm.engine.dialect.name

    def announced(kind: str, events: list[Any]) -> None:
        itsm.outbox.committed(events)
        if progress and events:
            progress(len(events))
        if kind == "warning":
            stats.warned += len(events)
        else:
            stats.breached += len(events)

    for kind in ("warning", "breach"):

        def claim(kind: str = kind) -> tuple[int, list[Any]]:
            """One batch in a transaction of its own: how many clocks, and their events."""
            size = budget.take(batch)
            if not size:
                return 0, []
            with itsm.Session() as session:
                if dialect in ("postgresql", "sqlite"):
                    claimed, events = _sweep_batch(session, kind, now, size, calendars)
                else:  # MariaDB/MySQL: no UPDATE .. RETURNING, claimed clock by clock
                    clocks = session.scalars(
                        select(SlaClock).where(*_unannounced(kind, now))
                        .order_by(getattr(SlaClock, _DUE[kind]), SlaClock.id).limit(size)).all()
                    claimed = len(clocks)
                    records = _summaries(session, (c.record_id for c in clocks))
                    events = _claim_batch(session, clocks, kind, records, calendars, now)
                if claimed:
                    session.commit()
            budget.give_back(size - claimed)
            if claimed == size < batch:  # cut short by the budget: more may be due
                budget.spent = True
            return claimed, events

        claimed, events = claim()
        announced(kind, events)
        if claimed < batch:
            continue
        if dialect == "postgresql" and claimers > 1:
            for events in _side_by_side(claim, batch, claimers):
                announced(kind, events)
            continue
        while claimed == batch:
            claimed, events = claim()
            announced(kind, events)
    stats.more = budget.spent
    return stats


def _side_by_side(claim: Callable[[], tuple[int, list[Any]]], batch: int,
                  claimers: int) -> Iterator[list[Any]]:
    """Run ``claim`` in ``claimers`` threads until each gets a short batch; yield each
    batch's events here, as they commit."""
    done: queue.SimpleQueue[list[Any] | None] = queue.SimpleQueue()

    def claim_until_short() -> None:
        try:
            while True:
                claimed, events = claim()
                done.put(events)
                if claimed < batch:
                    return
        finally:
            done.put(None)

    with ThreadPoolExecutor(claimers, thread_name_prefix="itsm-sweep") as pool:
        futures = [pool.submit(claim_until_short) for _ in range(claimers)]
        running = claimers
        while running:
            events = done.get()
            if events is None:
                running -= 1
            elif events:
                yield events
        for future in futures:
            future.result()  # a claimer's error is the sweep's


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


# -- reading -----------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def clocks_for(session: Session, record: Record, *, now: datetime | None = None,
               calendars: Mapping[str, Calendar] | None = None) -> list[dict[str, Any]]:
    """The record's clocks as the API and the pages show them, measured at ``now``.

    ``remaining_minutes`` goes negative once the target is passed; ``percent`` is the
    share of the target used. Timestamps are ISO 8601 strings.
    """
    now = now or utcnow()
    if calendars is None:
        from itsm.core.app import current_itsm

        calendars = load_calendars(current_itsm().settings)
    out = []
    for clock in session.scalars(select(SlaClock).where(SlaClock.record_id == record.id)
                                 .order_by(SlaClock.id)):
        elapsed = elapsed_at(clock, calendars, now)
        target = clock.target_minutes
        running = clock.running

        def due(at: datetime | None, running: bool = running) -> bool:
            return running and at is not None and at <= now

        out.append({
            "metric": clock.metric, "target_minutes": target,
            "elapsed_minutes": round(elapsed / 60, 2),
            "remaining_minutes": round(target - elapsed / 60, 2) if target is not None
            else None,
            "percent": round(100 * elapsed / (target * 60), 1) if target else None,
            "state": clock.state, "paused": clock.paused,
            "breached": clock.breached or due(clock.breach_due_at),
            "warned": clock.warned or due(clock.warn_due_at),
            "breach_due_at": _iso(clock.breach_due_at), "met_at": _iso(clock.met_at),
            "started_at": _iso(clock.started_at), "calendar": clock.calendar,
            "source": clock.source,
        })
    return out
