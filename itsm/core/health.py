"""The install's health: readiness, the outbox backlog, dead deliveries, a lagging sweep.

One place for the checks that ``itsm doctor``, ``/readyz``, ``/metrics`` and an admin's
health page show, so that they never disagree. Every figure is read from the database:
any process (a web worker, ``itsm worker``, a Celery worker) sees the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text

from itsm.core.models import Delivery, Event, WorkerRun, utcnow
from itsm.core.sla_models import SlaClock

if TYPE_CHECKING:
    from itsm.core.app import Itsm

__all__ = ["Check", "Figures", "figures", "checks", "ready", "doctor"]


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``ok`` false is a problem an admin should act on."""

    name: str
    ok: bool
    message: str
    note: bool = False  # worth knowing, not a problem (an upgrade noted, a migration due)


@dataclass(frozen=True)
class Figures:
    """What the background work has before it, measured at ``now``."""

    now: datetime
    events_waiting: int  # events not fanned out into deliveries yet
    deliveries_waiting: int  # deliveries due now and not sent
    oldest_waiting_seconds: float  # how long the longest-waiting of those has waited
    deliveries_retrying: int  # failed at least once, waiting for their next attempt
    dead: int  # deliveries that used up their attempts
    sweep_due: int  # SLA warnings and breaches due and not announced
    sweep_lag_seconds: float  # how late the oldest of those is
    worker_finished_at: datetime | None  # the last background cycle that finished

    @property
    def waiting(self) -> int:
        return self.events_waiting + self.deliveries_waiting


def _age(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def figures(itsm: Itsm, now: datetime | None = None) -> Figures:
    """Read the figures (a few indexed queries, cheap at millions of rows)."""
    now = now or utcnow()
    with itsm.Session() as session:
        events, oldest_event = session.execute(
            select(func.count(), func.min(Event.created_at))
            .where(Event.dispatched_at.is_(None))).one()
        due, oldest_due = session.execute(
            select(func.count(), func.min(Delivery.next_attempt_at))
            .where(Delivery.state == "pending", Delivery.next_attempt_at <= now)).one()
        retrying = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.state == "pending", Delivery.next_attempt_at > now,
            Delivery.attempts > 0))
        dead = session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.state == "dead"))
        sweep_due, oldest_clock = 0, None
        for sent, at in ((SlaClock.warning_sent, SlaClock.warn_due_at),
                         (SlaClock.breach_sent, SlaClock.breach_due_at)):
            count, first = session.execute(select(func.count(), func.min(at))
                                           .where(sent.is_(False), at <= now)).one()
            sweep_due += count
            if first is not None and (oldest_clock is None or first < oldest_clock):
                oldest_clock = first
        finished = session.scalar(select(WorkerRun.finished_at)
                                  .where(WorkerRun.name == "cycle"))
    return Figures(now=now, events_waiting=events, deliveries_waiting=due,
                   oldest_waiting_seconds=max(_age(now, oldest_event), _age(now, oldest_due)),
                   deliveries_retrying=retrying or 0, dead=dead or 0, sweep_due=sweep_due,
                   sweep_lag_seconds=_age(now, oldest_clock), worker_finished_at=finished)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} minute(s)" if seconds >= 60 else f"{seconds:.0f} s"


def checks(itsm: Itsm, now: datetime | None = None) -> list[Check]:
    """The outbox, delivery and sweep checks, thresholds from the settings
    (``health.outbox_minutes``, ``health.outbox_waiting``, ``health.sweep_lag_minutes``)."""
    settings = itsm.settings
    found = figures(itsm, now)
    out = []
    limit_age = float(settings["health.outbox_minutes"]) * 60
    limit_count = int(settings["health.outbox_waiting"])
    backlog = found.waiting > limit_count or (found.waiting and
                                              found.oldest_waiting_seconds > limit_age)
    out.append(Check("outbox", not backlog, (
        f"outbox backlog: {found.waiting} notification(s) waiting ({found.events_waiting} "
        f"event(s), {found.deliveries_waiting} delivery(ies) due), the oldest for "
        f"{_minutes(found.oldest_waiting_seconds)} (limits {limit_count} and "
        f"{_minutes(limit_age)}): is a worker running (itsm worker, or itsm serve's own)?")
        if backlog else
        f"outbox: {found.waiting} waiting, {found.deliveries_retrying} retrying"))
    out.append(Check("deliveries", not found.dead, (
        f"{found.dead} notification delivery(ies) dead after every attempt: see "
        "itsm outbox list --state dead, fix the channel, then itsm outbox retry --dead")
        if found.dead else "deliveries: none dead"))
    limit_lag = float(settings["health.sweep_lag_minutes"]) * 60
    lagging = found.sweep_due and found.sweep_lag_seconds > limit_lag
    out.append(Check("sla sweep", not lagging, (
        f"SLA sweep lagging: {found.sweep_due} warning(s) and breach(es) due and not "
        f"announced, the oldest {_minutes(found.sweep_lag_seconds)} late (limit "
        f"{_minutes(limit_lag)}): is a worker running?")
        if lagging else f"SLA sweep: {found.sweep_due} due"))
    last = found.worker_finished_at
    out.append(Check("worker", True, "worker: last cycle finished "
                     + (f"{_minutes(_age(found.now, last))} ago" if last else "never")))
    return out


def ready(itsm: Itsm) -> Check:
    """Whether this process can serve: the database answers and its schema is at the
    head of the core's and every enabled plugin's migrations."""
    from itsm.core import migrate

    try:
        with itsm.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        todo = migrate.pending(itsm)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[:1]
        return Check("database", False, f"database unavailable: {' '.join(first)}")
    if todo:
        names = ", ".join(f"{branch} ({len(revs)})" for branch, revs in sorted(todo.items()))
        return Check("migrations", False, f"migrations pending: {names}: run itsm db upgrade")
    return Check("database", True, "database reachable, migrations at head")


def doctor(itsm: Itsm) -> list[Check]:
    """Every check of ``itsm doctor`` (and the admin home page), in its order: the
    database, the calendars, the plugins' preflight (``itsm plugins check``: load errors,
    versions, dependencies, pending migrations), the enabled plugins, then :func:`checks`.
    A database that does not answer is the only check then."""
    from itsm.core import plugin_admin
    from itsm.core.calendars import load_calendars

    try:
        with itsm.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure: the database is the problem
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[:1]
        return [Check("database", False, f"database unavailable: {' '.join(first)}")]
    out = [Check("database", True,
                 f"database {itsm.engine.url.render_as_string(hide_password=True)}"),
           Check("calendars", True,
                 f"calendars {', '.join(sorted(load_calendars(itsm.settings)))}")]
    report = plugin_admin.check(itsm)
    out += [Check("plugins", True, note, note=True) for note in report.notes]
    out += [Check("plugins", False, problem) for problem in report.problems]
    enabled = sorted(itsm.host.enabled)
    out.append(Check("plugins", True,
                     f"{len(enabled)} plugin(s) enabled: {', '.join(enabled) or 'none'}"))
    return out + checks(itsm)
