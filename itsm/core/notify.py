"""Events to notifications through the transactional outbox.

The record service writes an ``outbox_event`` row in the same transaction as the change.
After commit, the dispatcher asks plugins who should hear of each event
(``itsm_notification_recipients``), records one delivery per recipient and channel, and
hands them to the channels (``itsm_notification_channels``). A channel that fails is
retried with exponential backoff until ``outbox.max_attempts``; then the delivery is
dead and shown by ``itsm doctor``. Nothing is delivered inside the user's request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import event as orm_event
from sqlalchemy import func, inspect, or_, select, update

from itsm.core.models import Delivery, Event, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from itsm.core.state import Itsm

log = logging.getLogger("itsm.notify")


def reply_token(secret_key: str, number: str, address: str) -> str:
    """The token that mails about record ``number`` to ``address`` carry, so that a reply
    can prove it answers such a mail (the e-mail channel puts it in Reply-To and
    Message-ID; the inbound mail gateway checks it).

    An HMAC of the record and the recipient under the install's secret key: unguessable
    without the key, valid for that record and that address only, and never stored.
    24 lower-case base32 characters (120 bits), so it survives mail systems that fold the
    case of an address's local part.
    """
    message = f"itsm-reply\x00{number.strip().upper()}\x00{address.strip().lower()}"
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:15]).decode("ascii").lower()



@dataclass(frozen=True)
class Recipient:
    """Someone (or something) to notify over one channel: an e-mail, a URL, a user id."""

    channel: str
    address: str


@dataclass(frozen=True)
class EventMessage:
    """An event as channels and hooks see it; ``id`` is stable across retries."""

    id: int
    name: str
    record: dict[str, Any] | None
    actor: str | None
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, event: Event) -> EventMessage:
        return cls(id=event.id, name=event.name, record=event.payload.get("record"),
                   actor=event.payload.get("actor"), payload=dict(event.payload),
                   created_at=event.created_at)


class CommittedEvents:
    """The outbox events a session's transactions committed, taken as messages at each
    commit.

    What runs after a commit (the post-commit hook, waking delivery) must not read the ORM
    instances: a later rollback in the same session (a create commits, then its
    suggestions fail on a dropped connection) expires them, and closing the session
    detaches them, so reading one raised ``DetachedInstanceError`` and answered 500 for a
    record that was stored. Events of a transaction that was rolled back are not taken.
    """

    def __init__(self, session: Session, events: list[Event]) -> None:
        self.messages: list[EventMessage] = []
        self._unread: list[int] = []  # ids of committed events whose values were expired
        self._session = session
        self._events = events
        self._taken = len(events)
        orm_event.listen(session, "after_commit", self._after_commit)
        orm_event.listen(session, "after_rollback", self._after_rollback)

    def _after_commit(self, session: Session) -> None:
        for event in self._events[self._taken:]:
            state = inspect(event)
            if state.expired_attributes or state.identity is None:
                # No SQL may run here; read it after the unit of work (see take).
                if state.identity is not None:
                    self._unread.append(state.identity[0])
                continue
            self.messages.append(EventMessage.of(event))
        self._taken = len(self._events)

    def _after_rollback(self, session: Session) -> None:
        self._taken = len(self._events)

    def take(self, itsm: Itsm) -> list[EventMessage]:
        """Stop listening; the messages of every committed event, in commit order."""
        orm_event.remove(self._session, "after_commit", self._after_commit)
        orm_event.remove(self._session, "after_rollback", self._after_rollback)
        if self._unread:
            try:
                with itsm.Session() as session:
                    rows = session.scalars(select(Event).where(Event.id.in_(self._unread)))
                    self.messages.extend(EventMessage.of(row) for row in rows)
            except Exception:  # the outbox still delivers them; only the hook misses them
                log.exception("committed events %s could not be read back", self._unread)
            self.messages.sort(key=lambda message: message.id)
        return self.messages


class Channel(Protocol):
    """A way to deliver notifications; ``deliver`` raises when it could not."""

    name: str

    def deliver(self, message: EventMessage, recipient: Recipient) -> None: ...


@dataclass
class DispatchStats:
    events: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)
    more: bool = False  # the cycle's budget ran out with work left for the next one


class Outbox:
    """Turns committed events into deliveries and runs them, safely from many workers."""

    def __init__(self, itsm: Itsm, cycle: Callable[[], object] | None = None) -> None:
        """:param cycle: the background work the thread runs when woken (the whole cycle
            of :func:`itsm.core.jobs.run_cycle`, given by the application state; delivery
            alone by default)."""
        self.itsm = itsm
        self.cycle = cycle or self.drain
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- after commit ------------------------------------------------------------------

    def committed(self, events: Iterable[Event | EventMessage]) -> None:
        """Called after a unit of work committed: run the post-commit hook, wake delivery.

        Give messages (see :class:`CommittedEvents`) where a rollback may have followed
        the commit in the same session; ORM events only when it cannot have."""
        events = [e if isinstance(e, EventMessage) else EventMessage.of(e) for e in events]
        for event in events:
            try:
                self.itsm.hook.itsm_event_committed(event=event)
            except Exception:  # the user's change is committed; a hook must not undo that
                log.exception("itsm_event_committed failed for event %s", event.id)
        if events and self._thread is not None:
            self._wake.set()

    # -- dispatch ----------------------------------------------------------------------

    def fan_out(self, limit: int = 200) -> int:
        """Create the deliveries of events not yet fanned out; return how many events."""
        channels = self.itsm.channels
        done = 0
        with self.itsm.Session() as session:
            events = session.scalars(select(Event).where(Event.dispatched_at.is_(None))
                                     .order_by(Event.id).limit(limit)).all()
            for event in events:
                message = EventMessage.of(event)
                try:
                    groups = self.itsm.hook.itsm_notification_recipients(event=message,
                                                                         session=session)
                except Exception:  # a broken plugin must not hold up the events after it
                    log.exception("event %s: finding its recipients failed; it is fanned "
                                  "out again next cycle", event.id)
                    continue
                claimed = session.execute(
                    update(Event).where(Event.id == event.id, Event.dispatched_at.is_(None))
                    .values(dispatched_at=utcnow())).rowcount
                if not claimed:
                    continue
                done += 1
                seen = set()
                for group in groups:
                    for recipient in group or ():
                        key = (recipient.channel, recipient.address)
                        if key in seen:
                            continue
                        seen.add(key)
                        if recipient.channel not in channels:
                            log.warning("event %s: no channel %r; delivery waits for it",
                                        event.id, recipient.channel)
                        session.add(Delivery(event_id=event.id, channel=recipient.channel,
                                             recipient=recipient.address[:254]))
            session.commit()
            return done

    def deliver_due(self, limit: int = 200, *, only: Iterable[str] | None = None,
                    deadline: float | None = None) -> DispatchStats:
        """Run up to ``limit`` deliveries that are due (of the channels named in ``only``,
        or all), until ``deadline`` (a ``time.monotonic()`` value); each is claimed first
        so no two workers send it."""
        stats = DispatchStats()
        settings = self.itsm.settings
        channels = self.itsm.channels
        # A delivery claimed by a worker that died (killed, machine lost) is taken up by
        # another once its lease has run out; receivers recognise the repeat by its key.
        lease = timedelta(seconds=float(settings["outbox.lease_seconds"]))
        with self.itsm.Session() as session:
            now = utcnow()
            query = select(Delivery).where(Delivery.state == "pending",
                                           Delivery.next_attempt_at <= now)
            if only is not None:
                query = query.where(Delivery.channel.in_(list(only)))
            due = session.scalars(query.order_by(Delivery.next_attempt_at, Delivery.id)
                                  .limit(limit)).all()
            stats.more = len(due) == limit
            for delivery in due:
                if deadline is not None and time.monotonic() >= deadline:
                    stats.more = True
                    break
                claimed = session.execute(
                    update(Delivery).where(Delivery.id == delivery.id,
                                           Delivery.state == "pending",
                                           Delivery.next_attempt_at == delivery.next_attempt_at)
                    .values(next_attempt_at=now + lease)).rowcount
                session.commit()
                if not claimed:
                    continue
                session.refresh(delivery)
                event = session.get(Event, delivery.event_id)
                channel = channels.get(delivery.channel)
                try:
                    if channel is None:
                        raise LookupError(f"channel {delivery.channel!r} is not enabled")
                    channel.deliver(EventMessage.of(event),
                                    Recipient(delivery.channel, delivery.recipient))
                except Exception as exc:
                    delivery.attempts += 1
                    delivery.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                    if delivery.attempts >= settings["outbox.max_attempts"]:
                        delivery.state = "dead"
                        stats.dead += 1
                    else:
                        backoff = settings["outbox.backoff_seconds"] * 2 ** (delivery.attempts - 1)
                        delivery.next_attempt_at = utcnow() + timedelta(seconds=backoff)
                        stats.failed += 1
                    stats.errors.append(f"delivery {delivery.id}: {delivery.last_error}")
                    log.warning("delivery %s over %s failed (attempt %s): %s", delivery.id,
                                delivery.channel, delivery.attempts, delivery.last_error)
                else:
                    delivery.state = "delivered"
                    delivery.delivered_at = utcnow()
                    delivery.attempts += 1
                    stats.delivered += 1
                session.commit()
        return stats

    def drain(self, budget: int | None = None, seconds: float | None = None) -> DispatchStats:
        """Fan out pending events and run due deliveries, at most ``budget`` of each and
        for about ``seconds`` (default: settings ``outbox.batch`` and
        ``outbox.drain_seconds``; 0 is no limit). A backlog is worked off over several
        cycles instead of holding one worker (the web process's own thread) for minutes:
        ``more`` in the result says work was left for the next cycle."""
        settings = self.itsm.settings
        budget = int(settings["outbox.batch"] if budget is None else budget) or None
        seconds = float(settings["outbox.drain_seconds"] if seconds is None else seconds)
        deadline = time.monotonic() + seconds if seconds > 0 else None
        events, more = 0, False
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                more = True
                break
            chunk = 200 if budget is None else min(200, budget - events)
            if chunk <= 0:
                more = True
                break
            count = self.fan_out(chunk)
            events += count
            if count < chunk:
                break
        stats = self.deliver_due(budget or 200, deadline=deadline) if budget or deadline \
            else self._deliver_all()
        stats.events = events
        stats.more = stats.more or more
        return stats

    def _deliver_all(self) -> DispatchStats:
        """Every due delivery, 200 at a time (no budget)."""
        total = DispatchStats()
        while True:
            stats = self.deliver_due()
            for name in ("delivered", "failed", "dead"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            total.errors += stats.errors
            if not stats.more:
                return total

    def backlog(self) -> dict[str, int]:
        with self.itsm.Session() as session:
            rows = session.execute(select(Delivery.state, func.count())
                                   .group_by(Delivery.state)).all()
            undispatched = session.scalar(select(func.count()).select_from(Event)
                                          .where(Event.dispatched_at.is_(None)))
        out = {state: count for state, count in rows}
        out["events not fanned out"] = undispatched or 0
        return out

    # -- in-process worker ---------------------------------------------------------------

    def start_thread(self, interval: float = 5.0) -> None:
        """Drain in a daemon thread: woken by each commit, and every ``interval`` seconds."""
        if self._thread is not None:
            return

        def run() -> None:
            # Hooks may use current_itsm(): the thread needs its own application context.
            with self.itsm.app.app_context():
                while not self._stop.is_set():
                    self._wake.wait(interval)
                    self._wake.clear()
                    try:
                        self.cycle()
                    except Exception:
                        log.exception("outbox worker thread: drain failed; retrying")

        self._thread = threading.Thread(target=run, name="itsm-outbox", daemon=True)
        self._thread.start()

    def stop_thread(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=5)
            self._thread = None
            self._stop.clear()


def retry_deliveries(session: Session, ids: Iterable[int] = (), *, dead: bool = False) -> int:
    """Make deliveries due now with a fresh set of attempts (dead ones come back): those
    of ``ids`` and, with ``dead``, every dead one. Returns how many; raises NotFound for
    an unknown id and ItsmError for one delivered already. Caller commits."""
    from itsm.core.errors import ItsmError, NotFound

    ids = list(ids)
    condition = []
    if ids:
        found = dict(session.execute(select(Delivery.id, Delivery.state)
                                     .where(Delivery.id.in_(ids))).all())
        missing = sorted(set(ids) - set(found))
        if missing:
            raise NotFound(f"no delivery {', '.join(map(str, missing))} (itsm outbox list)")
        done = sorted(i for i, state in found.items() if state == "delivered")
        if done:
            raise ItsmError(f"delivery {', '.join(map(str, done))} was delivered already; "
                            "nothing to retry")
        condition.append(Delivery.id.in_(ids))
    if dead:
        condition.append(Delivery.state == "dead")
    if not condition:
        return 0
    return session.execute(
        update(Delivery).where(or_(*condition), Delivery.state != "delivered")
        .values(state="pending", attempts=0, next_attempt_at=utcnow())).rowcount
