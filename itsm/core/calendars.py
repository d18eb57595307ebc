"""Business calendars: the working hours an SLA clock runs on, and the arithmetic on them.

A calendar is configured in itsm.toml as ``[calendars.<name>]``::

    [calendars.office]
    timezone = "Europe/Berlin"
    mon = "08:00-12:00,13:00-17:00"      # ... tue, wed, thu, fri, sat, sun
    sat = ""                             # closed (a weekday left out is closed too)
    holidays = ["2026-12-25", "2026-12-26"]

Two calendars always exist: ``24x7`` (every second counts) and ``default`` (Monday to
Friday 08:00-18:00 UTC, no holidays), which ``[calendars.default]`` may redefine.

Working hours are local wall-clock times of the calendar's time zone, so a clock measures
real elapsed seconds: the spring-forward night is an hour short, the fall-back night an
hour long. A boundary that falls into a skipped hour is read as the moment the clocks
jump; one in a repeated hour as its first occurrence. All arithmetic is on ``timedelta``
(whole microseconds), so it is exact: business time is additive and :meth:`Calendar.add`
is the inverse of :meth:`Calendar.between`. Both loop per day at most and skip whole
weeks that hold no holiday and no change of UTC offset.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itsm.core.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZERO = timedelta(0)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
ALWAYS = "24x7"
DEFAULT = "default"
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_KEYS = {"timezone", "holidays", *WEEKDAYS}

# (start, end) minutes after local midnight; end may be 1440 ("24:00").
Hours = tuple[tuple[int, int], ...]


@dataclass(frozen=True, eq=False)
class Calendar:
    """Weekly working hours in one time zone, minus holidays.

    :param weekly: for Monday (0) to Sunday (6), the sorted, non-overlapping working
        ranges in minutes after local midnight.
    :param holidays: sorted dates (local) on which nothing counts.
    """

    name: str
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    weekly: tuple[Hours, ...] = ((),) * 7
    holidays: tuple[date, ...] = ()
    always: bool = False

    def __post_init__(self) -> None:
        if len(self.weekly) != 7:
            raise ValueError("weekly needs seven days, Monday first")
        week = sum((end - start for day in self.weekly for start, end in day), 0)
        if not self.always and week == 0:
            raise ConfigError(f"calendar {self.name!r} has no working hours: give at least "
                              f"one weekday hours in [calendars.{self.name}], e.g. "
                              'mon = "08:00-17:00"')
        # Naive (offset-free) length of a plain week; real whenever the offset holds still.
        object.__setattr__(self, "_week", timedelta(minutes=week))

    # -- the two operations --------------------------------------------------------------

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time in ``[start, end)``; zero when ``end <= start``."""
        _aware(start)
        _aware(end)
        if end <= start:
            return ZERO
        if self.always:
            return end - start
        first, last = self._local_date(start), self._local_date(end)
        if first == last:
            return self._overlap(first, start, end)
        return (self._overlap(first, start, end) + _days_between(self, first + DAY, last)
                + self._overlap(last, start, end))

    def add(self, start: datetime, amount: timedelta | float) -> datetime:
        """The first instant at which ``amount`` of working time has passed since ``start``.

        ``amount`` is a timedelta or seconds. ``between(start, add(start, x)) == x``.
        """
        _aware(start)
        if not isinstance(amount, timedelta):
            amount = timedelta(seconds=amount)
        if amount <= ZERO:
            return start
        if self.always:
            return start + amount
        remaining = amount
        day = self._local_date(start)
        for span_start, span_end in _spans(self, day):
            span_start = max(span_start, start)
            if span_end <= span_start:
                continue
            if span_end - span_start >= remaining:
                return span_start + remaining
            remaining -= span_end - span_start
        day += DAY
        while True:
            if _whole_week(self, day) and self._week < remaining:
                remaining -= self._week
                day += WEEK
                continue
            for span_start, span_end in _spans(self, day):
                if span_end - span_start >= remaining:
                    return span_start + remaining
                remaining -= span_end - span_start
            day += DAY

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """:meth:`between` in seconds."""
        return self.between(start, end).total_seconds()

    # -- helpers ---------------------------------------------------------------------------

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.timezone).date()

    def _overlap(self, day: date, start: datetime, end: datetime) -> timedelta:
        total = ZERO
        for span_start, span_end in _spans(self, day):
            lo, hi = max(span_start, start), min(span_end, end)
            if hi > lo:
                total += hi - lo
        return total

    def describe(self) -> dict[str, Any]:
        """The calendar as plain data (for ``itsm sla calendars``)."""
        if self.always:
            return {"name": self.name, "timezone": "UTC", "hours": "24x7", "holidays": []}
        hours = {WEEKDAYS[i]: ",".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in day)
                 for i, day in enumerate(self.weekly)}
        return {"name": self.name, "timezone": self.timezone.key, "hours": hours,
                "holidays": [d.isoformat() for d in self.holidays]}


@lru_cache(maxsize=8192)
def _spans(calendar: Calendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The working spans of one local date as UTC instants (empty on a holiday)."""
    hours = calendar.weekly[day.weekday()]
    if not hours:
        return ()
    i = bisect.bisect_left(calendar.holidays, day)
    if i < len(calendar.holidays) and calendar.holidays[i] == day:
        return ()
    out = []
    midnight = datetime.combine(day, time())
    for start, end in hours:
        lo = _instant(calendar.timezone, midnight + timedelta(minutes=start))
        hi = _instant(calendar.timezone, midnight + timedelta(minutes=end))
        if hi > lo:  # a range inside a skipped hour is empty
            out.append((lo, hi))
    return tuple(out)


@lru_cache(maxsize=8192)
def _day_length(calendar: Calendar, day: date) -> timedelta:
    """The working time of one local date (a sweep or a replay asks for the same days
    over and over)."""
    return sum((e - s for s, e in _spans(calendar, day)), ZERO)


@lru_cache(maxsize=4096)
def _days_between(calendar: Calendar, day: date, last: date) -> timedelta:
    """The working time of the local dates from ``day`` up to ``last``, excluded. A sweep
    asks it of every clock with the same ``last`` (today) and a few hundred ``day``s,
    the dates its clocks last started or stopped on."""
    total = ZERO
    while day < last:
        if _whole_week(calendar, day) and day + WEEK <= last:
            total += calendar._week
            day += WEEK
        else:
            total += _day_length(calendar, day)
            day += DAY
    return total


@lru_cache(maxsize=8192)
def _whole_week(calendar: Calendar, monday: date) -> bool:
    """A Monday-to-Sunday week whose real working time is the weekly naive total:
    no holiday in it and the same UTC offset at both ends (zones change offset at
    most once within a week)."""
    if monday.weekday() != 0:
        return False
    i = bisect.bisect_left(calendar.holidays, monday)
    if i < len(calendar.holidays) and calendar.holidays[i] < monday + WEEK:
        return False
    return _midnight_offset(calendar.timezone, monday) == \
        _midnight_offset(calendar.timezone, monday + WEEK)


def _instant(tz: ZoneInfo, local: datetime) -> datetime:
    """The UTC instant of a naive local wall time; monotonic in ``local``.

    A repeated (fall-back) wall time gives its first occurrence; a skipped one
    (spring-forward) gives the instant the clocks jump.
    """
    first = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first <= second:
        return first
    # In a gap: the jump is a whole second in (second, first]; bisect to find it.
    after = first.astimezone(tz).utcoffset()
    lo = int(second.timestamp() // 1)
    hi = -int(-first.timestamp() // 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _midnight_offset(tz: ZoneInfo, day: date) -> timedelta | None:
    return datetime.combine(day, time(), tzinfo=tz).utcoffset()


def _aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("calendar arithmetic needs aware datetimes (UTC in itsm)")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# -- configuration ---------------------------------------------------------------------------


def parse_hours(value: Any, setting: str) -> Hours:
    """``"08:00-12:00,13:00-17:00"`` -> ``((480, 720), (780, 1020))``; ``""`` is closed."""
    fix = ('use HH:MM-HH:MM ranges separated by commas, e.g. "08:00-12:00,13:00-17:00", '
           'or "" for a closed day')
    if isinstance(value, list | tuple):
        value = ",".join(map(str, value))
    if not isinstance(value, str):
        raise ConfigError(f"setting {setting} = {value!r} is not text: {fix}")
    out: list[tuple[int, int]] = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        match = _RANGE.match(part)
        if not match:
            raise ConfigError(f"setting {setting}: {part!r} is not a time range: {fix}")
        h1, m1, h2, m2 = map(int, match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start >= 1440 or end > 1440 or start >= end:
            raise ConfigError(f"setting {setting}: {part!r} must run forward within one day "
                              "(00:00 to 24:00; split a night shift over two days): " + fix)
        out.append((start, end))
    out.sort()
    for (_, end), (start, _) in zip(out, out[1:], strict=False):
        if start < end:
            raise ConfigError(f"setting {setting}: ranges {value!r} overlap: " + fix)
    return tuple(out)


def parse_holidays(value: Any, setting: str) -> tuple[date, ...]:
    fix = 'use a list of ISO dates, e.g. holidays = ["2026-12-25", "2027-01-01"]'
    if isinstance(value, str):
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"setting {setting} = {value!r} is not a list: {fix}")
    out = set()
    for item in value:
        if isinstance(item, datetime):
            item = item.date()
        if isinstance(item, date):
            out.add(item)
            continue
        try:
            out.add(date.fromisoformat(str(item).strip()))
        except ValueError:
            raise ConfigError(f"setting {setting}: {item!r} is not a date: {fix}") from None
    return tuple(sorted(out))


def parse_calendar(name: str, table: Mapping[str, Any]) -> Calendar:
    """Build one calendar from its ``[calendars.<name>]`` settings (keys without prefix)."""
    prefix = f"calendars.{name}"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"setting {prefix}.{unknown[0]} is not known: a calendar has "
                          "timezone, holidays and " + ", ".join(WEEKDAYS))
    zone_name = table.get("timezone", "UTC")
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"setting {prefix}.timezone = {zone_name!r} is not an IANA time "
                          "zone: use a name like \"Europe/Berlin\" or \"UTC\" (on Windows, "
                          "pip install tzdata)") from None
    weekly = tuple(parse_hours(table.get(day, ""), f"{prefix}.{day}") for day in WEEKDAYS)
    holidays = parse_holidays(table.get("holidays", []), f"{prefix}.holidays")
    return Calendar(name=name, timezone=zone, weekly=weekly, holidays=holidays)


DEFAULT_HOURS = ((8 * 60, 18 * 60),)


def builtin_calendars() -> dict[str, Calendar]:
    return {
        ALWAYS: Calendar(name=ALWAYS, weekly=(((0, 1440),),) * 7, always=True),
        DEFAULT: Calendar(name=DEFAULT, weekly=(DEFAULT_HOURS,) * 5 + ((), ())),
    }


def load_calendars(settings: Mapping[str, Any]) -> dict[str, Calendar]:
    """Every calendar: the built-ins, then each ``[calendars.<name>]`` of the settings.

    Parsed once per distinct configuration (the result is cached), so callers may ask
    for it on every change.
    """
    items = []
    for key, value in settings.items():
        if key.startswith("calendars."):
            items.append((key, tuple(value) if isinstance(value, list) else value))
    return dict(_load(tuple(sorted(items, key=lambda kv: kv[0]))))


@lru_cache(maxsize=16)
def _load(items: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Calendar], ...]:
    tables: dict[str, dict[str, Any]] = {}
    for key, value in items:
        parts = key.split(".")
        if len(parts) != 3 or not parts[1]:
            raise ConfigError(f"setting {key} is not a calendar setting: use "
                              "[calendars.<name>] tables with timezone, holidays and "
                              + ", ".join(WEEKDAYS))
        tables.setdefault(parts[1], {})[parts[2]] = list(value) \
            if isinstance(value, tuple) else value
    calendars = builtin_calendars()
    if ALWAYS in tables:
        raise ConfigError(f"[calendars.{ALWAYS}] cannot be redefined: it is built in; give "
                          "your calendar another name")
    for name, table in sorted(tables.items()):
        calendars[name] = parse_calendar(name, table)
    return tuple(calendars.items())


def calendar_named(calendars: Mapping[str, Calendar], name: str, why: str = "") -> Calendar:
    """``calendars[name]`` or a ConfigError that names the fix."""
    found = calendars.get(name)
    if found is None:
        known = ", ".join(sorted(calendars))
        raise ConfigError(f"calendar {name!r}{' (' + why + ')' if why else ''} is not "
                          f"configured: add [calendars.{name}] to itsm.toml or use one of: "
                          f"{known}")
    return found
