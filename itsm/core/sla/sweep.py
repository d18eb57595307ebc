"""Warnings and breaches: the clocks brought up to date at each change, and the sweep that
announces warnings and breaches as their due times pass."""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from itsm.core.bulkwrite import Copier, new_ids
from itsm.core.calendars import Calendar
from itsm.core.models import Event, JournalEntry, Record, utcnow
from itsm.core.sla.policy import CLOCK_KINDS
from itsm.core.sla.replay import _store, keep_due, replay_record
from itsm.core.sla.stored import calendars_for
from itsm.core.sla_models import SlaClock

if TYPE_CHECKING:
    from itsm.core.records import RecordChange
    from itsm.core.state import Itsm


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
    keep_due(session, record, rows)
    due = [(clock, kind) for clock in rows for kind in ("warning", "breach")
           if getattr(clock, _FLAG[kind]) and not getattr(clock, _SENT[kind])]
    if not due:  # the usual case: nothing to announce, the commit writes the clocks
        return []
    session.flush()  # the claims below update the rows by id
    calendars = calendars_for(itsm, session)
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
    calendars = calendars_for(itsm, None)
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
