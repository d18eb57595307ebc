"""Service levels saved in the database, as the clocks read them: the saved calendar
versions beside the configured calendars, and the target version in force when a record
was created (the core's default SLA policy).

Saved rows are never changed (see :mod:`itsm.core.sla_models`); they are read once per
transaction, as clocks are brought up to date on every change. Writing them is
:mod:`itsm.core.service_levels`'s job.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.core.calendars import WEEKDAYS, Calendar, load_calendars, parse_hours
from itsm.core.sla.policy import SlaTarget, default_target
from itsm.core.sla_models import StoredCalendar, StoredPolicy

if TYPE_CHECKING:
    from itsm.core.state import Itsm

_CACHE = "itsm_service_levels"


# -- what is stored, per transaction -----------------------------------------------------------


class _Stored:
    """The saved versions, each kind read on its first use in a transaction (clocks ask
    on every change; a record's page needs the calendars only)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._policies: list[StoredPolicy] | None = None
        self._calendars: dict[str, list[StoredCalendar]] | None = None

    @property
    def policies(self) -> list[StoredPolicy]:
        """Oldest first."""
        if self._policies is None:
            self._policies = list(self._session.scalars(select(StoredPolicy)
                                                        .order_by(StoredPolicy.id)))
        return self._policies

    @property
    def calendars(self) -> dict[str, list[StoredCalendar]]:
        """By name, each name's versions oldest first."""
        if self._calendars is None:
            self._calendars = {}
            for row in self._session.scalars(select(StoredCalendar).order_by(
                    StoredCalendar.name, StoredCalendar.version)):
                self._calendars.setdefault(row.name, []).append(row)
        return self._calendars


def stored(session: Session) -> _Stored:
    """The saved versions, read once per transaction."""
    cached = session.info.get(_CACHE)
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1]
    found = _Stored(session)
    session.info[_CACHE] = (session.get_transaction(), found)
    return found


def forget(session: Session) -> None:
    """Read the saved versions again (after saving one in this transaction)."""
    session.info.pop(_CACHE, None)


@lru_cache(maxsize=256)
def _calendar(key: str, timezone: str, hours: tuple[tuple[str, str], ...],
              holidays: tuple[date, ...]) -> Calendar:
    # One object per distinct version: the calendar arithmetic caches per object.
    weekly = tuple(parse_hours(dict(hours).get(day, ""), f"calendars.{key}.{day}")
                   for day in WEEKDAYS)
    return Calendar(name=key, timezone=ZoneInfo(timezone), weekly=weekly, holidays=holidays)


def as_calendar(row: StoredCalendar) -> Calendar:
    """A saved calendar version as the clocks use it."""
    hours = tuple(sorted((str(k), str(v)) for k, v in (row.hours or {}).items()))
    days = tuple(sorted({date.fromisoformat(h["date"]) for h in row.holidays or ()}))
    return _calendar(row.key, row.timezone, hours, days)


def calendars_for(itsm: Itsm, session: Session | None) -> dict[str, Calendar]:
    """Every calendar a clock may run on: the built-in and configured ones, and each saved
    version (``<name>@<version>``) with ``<name>`` meaning the latest version."""
    calendars = dict(load_calendars(itsm.settings))
    if session is None:
        with itsm.Session() as own:
            return calendars_for(itsm, own)
    for name, rows in stored(session).calendars.items():
        for row in rows:
            calendars[row.key] = as_calendar(row)
        calendars.setdefault(name, calendars[rows[-1].key])
    return calendars


def _version_at(rows: list[Any], when: datetime | None) -> Any | None:
    """The last of ``rows`` (oldest first) created at or before ``when`` (None: now)."""
    if when is None:
        return rows[-1] if rows else None
    found = None
    for row in rows:
        if row.created_at <= when:
            found = row
    return found


def calendar_key(session: Session, name: str, when: datetime | None) -> str:
    """The name a clock stores for calendar ``name`` on a record created at ``when``: the
    saved version in force then (the first saved one for an older record), or ``name``
    itself for a configured calendar."""
    rows = stored(session).calendars.get(name)
    if not rows:
        return name
    return (_version_at(rows, when) or rows[0]).key


def policy_target(itsm: Itsm, session: Session | None, record: Any,
                  metric: str) -> SlaTarget | None:
    """The core's target of ``metric`` for ``record``: the saved target version in force
    when the record was created, or ``[sla]`` of itsm.toml for records older than every
    saved version (or when none was saved)."""
    if session is None:
        with itsm.Session() as own:
            return policy_target(itsm, own, record, metric)
    saved = stored(session)
    if not saved.policies:
        return default_target(itsm.settings, record, metric)
    when = getattr(record, "created_at", None)
    policy = _version_at(saved.policies, when)
    if policy is None:
        return default_target(itsm.settings, record, metric)
    minutes = (policy.targets or {}).get(metric, {}).get(str(record.priority or 3))
    if minutes is None:
        return None
    return SlaTarget(metric=metric, minutes=int(minutes),
                     calendar=calendar_key(session, policy.calendar, when),
                     warn_at=float(policy.warn_at),
                     source=f"service levels version {policy.id}")
