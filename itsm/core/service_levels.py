"""Service levels kept in the database: business calendars and SLA targets that admins
save from the browser or the CLI, the holidays of a country or state, and the calendars
and targets the clocks run on.

itsm.toml still defines the built-in and configured calendars and the ``[sla]`` targets;
what an admin saves here comes on top, in versions that are never changed afterwards.
A record's clocks take the target version in force when the record was created, and
the version of its calendar in force then, so a change applies to new clocks only (``itsm
sla recompute`` does not move a running clock onto a newer version either: the choice is
made from the record's creation time, which a recompute does not change).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from itsm.core.admin.kit import record_admin_audit
from itsm.core.calendars import ALWAYS, WEEKDAYS, load_calendars, parse_hours
from itsm.core.errors import ConfigError, ValidationError
from itsm.core.models import User, utcnow
from itsm.core.sla.policy import METRICS, metrics_of
from itsm.core.sla.stored import as_calendar, calendars_for, forget, stored
from itsm.core.sla_models import StoredCalendar, StoredPolicy

if TYPE_CHECKING:
    from itsm.core.records import RecordService
    from itsm.core.state import Itsm

PRIORITIES = (1, 2, 3, 4, 5)
PERMISSION = "admin"
WEEKDAY_LABELS = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
                  "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}
METRIC_LABELS = {"response": "First response", "resolution": "Resolution"}
APPLIES_TO_NEW = ("Changes apply to new clocks: records created from now on. Clocks already "
                  "running keep the targets and calendar they started with.")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_HOLIDAY_LINE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*(.*?)\s*$")
MAX_HOLIDAYS = 1000
MAX_YEARS = 10


# -- reading, for the pages and the CLI ----------------------------------------------------


def _who(session: Session, user_id: int | None) -> str:
    if user_id is None:
        return "itsm"
    user = session.get(User, user_id)
    return (user.name or user.email) if user is not None else "a removed user"


def describe_calendars(itsm: Itsm, session: Session) -> list[dict[str, Any]]:
    """Every calendar as plain data, saved ones with their version and who saved it."""
    configured = load_calendars(itsm.settings)
    saved = stored(session).calendars
    out = []
    for name in sorted(set(configured) | set(saved)):
        if name in saved:
            row = saved[name][-1]
            data = as_calendar(row).describe()
            data.update(name=name, origin="saved", version=row.version,
                        saved_at=row.created_at, saved_by=_who(session, row.created_by_id),
                        holidays=[dict(h) for h in sorted(row.holidays or (),
                                                          key=lambda h: h["date"])],
                        holiday_source=row.holiday_source)
        else:
            data = configured[name].describe()
            data.update(origin="built in" if name in (ALWAYS, "default") and
                        f"calendars.{name}.timezone" not in itsm.settings else "itsm.toml",
                        version=None,
                        holidays=[{"date": d, "name": ""} for d in data["holidays"]])
        out.append(data)
    return out


def stored_calendar(session: Session, name: str) -> StoredCalendar | None:
    """The latest saved version of calendar ``name``, or None."""
    rows = stored(session).calendars.get(name)
    return rows[-1] if rows else None


def current_targets(itsm: Itsm, session: Session) -> dict[str, Any]:
    """The targets new records get: the latest saved version, else ``[sla]``."""
    metrics = metrics_of(itsm.settings)
    saved = stored(session).policies
    if saved:
        policy = saved[-1]
        return {"version": policy.id, "saved_at": policy.created_at,
                "saved_by": _who(session, policy.created_by_id),
                "calendar": policy.calendar, "warn_at": policy.warn_at, "metrics": metrics,
                "targets": {m: {p: (policy.targets or {}).get(m, {}).get(str(p))
                                for p in PRIORITIES} for m in metrics}}
    settings = itsm.settings
    return {"version": None, "saved_at": None, "saved_by": None,
            "calendar": settings.get("sla.calendar", "default"),
            "warn_at": float(settings.get("sla.warn_at", 0.75)), "metrics": metrics,
            "targets": {m: {p: _int_or_none(settings.get(f"sla.{m}.p{p}"))
                            for p in PRIORITIES} for m in metrics}}


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " ").capitalize())


# -- holidays of a country or state ----------------------------------------------------------


def _words(class_name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", class_name)


@lru_cache(maxsize=1)
def holiday_countries() -> list[tuple[str, str]]:
    """``(code, name)`` of every country the ``holidays`` package knows, by name."""
    from holidays import registry

    out = {}
    for class_name, code, *_ in registry.COUNTRIES.values():
        out[code] = _words(class_name)
    return sorted(out.items(), key=lambda item: item[1])


def _country_code(text: str) -> str | None:
    wanted = text.strip().lower()
    for code, name in holiday_countries():
        if wanted in (code.lower(), name.lower(), name.replace(" ", "").lower()):
            return code
    return None


def holiday_subdivisions(country: str) -> list[tuple[str, str]]:
    """``(code, name)`` of the states or regions of ``country`` (a code or a name)."""
    import holidays

    code = _country_code(country)
    if code is None:
        return []
    cls = type(holidays.country_holidays(code))
    names = {v: k for k, v in (getattr(cls, "subdivisions_aliases", None) or {}).items()}
    return [(s, names.get(s, s)) for s in getattr(cls, "subdivisions", ())]


def public_holidays(country: str, subdivision: str, years: Iterable[int]) \
        -> list[tuple[date, str]]:
    """The public holidays of ``country`` (and ``subdivision``, a state or region; empty:
    the whole country) in ``years``, by date. Raises a ValidationError with field
    messages for ``country``, ``subdivision`` and ``years``."""
    import holidays

    years = sorted(set(years))
    problems: dict[str, list[str]] = {}
    code = _country_code(country or "")
    if code is None:
        problems["country"] = [f"{country!r} is not a country the holiday rules know: use a "
                               "name like \"United States\" or a code like \"US\""]
    if not years:
        problems["years"] = ["give at least one year, e.g. 2027"]
    elif len(years) > MAX_YEARS or years[0] < 1950 or years[-1] > 2100:
        problems["years"] = [f"give up to {MAX_YEARS} years between 1950 and 2100"]
    subdiv = None
    if code is not None and (subdivision or "").strip():
        wanted = subdivision.strip().lower()
        subdiv = next((s for s, name in holiday_subdivisions(code)
                       if wanted in (s.lower(), name.lower())), None)
        if subdiv is None:
            known = ", ".join(name for _, name in holiday_subdivisions(code)[:8])
            problems["subdivision"] = [f"{subdivision!r} is not a state or region of "
                                       f"{dict(holiday_countries())[code]}"
                                       + (f" (e.g. {known})" if known else
                                          ": leave it empty")]
    if problems:
        raise ValidationError("the holidays cannot be computed", fields=problems)
    found = holidays.country_holidays(code, subdiv=subdiv, years=years)
    return sorted(found.items())


def holiday_source(country: str, subdivision: str, years: Iterable[int]) -> str:
    """How imported holidays are described on the calendar, e.g. ``United States, Maine
    2026-2027``."""
    code = _country_code(country) or country
    name = dict(holiday_countries()).get(code, country)
    sub = dict(holiday_subdivisions(code)).get(
        next((s for s, n in holiday_subdivisions(code)
              if subdivision.strip().lower() in (s.lower(), n.lower())), ""), "") \
        if subdivision.strip() else ""
    years = sorted(set(years))
    span = str(years[0]) if len(years) == 1 else f"{years[0]}-{years[-1]}"
    return f"{name}{', ' + sub if sub else ''} {span}"


def parse_years(text: str) -> list[int]:
    """``"2026, 2027"`` or ``"2026-2028"`` -> years; a ValidationError on ``years``."""
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        match = re.fullmatch(r"(\d{4})(?:\s*-\s*(\d{4}))?", part)
        if not match:
            raise ValidationError("years", fields={"years": [
                f"{part!r} is not a year: use e.g. 2027, or 2026-2028"]})
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first or last - first >= MAX_YEARS:
            raise ValidationError("years", fields={"years": [
                f"{part!r}: give up to {MAX_YEARS} years, first to last"]})
        out.update(range(first, last + 1))
    return sorted(out)


def parse_holiday_lines(text: str) -> list[tuple[date, str]]:
    """One holiday a line, ``2026-12-25 Christmas Day`` (the name may be left out).
    A ValidationError on ``holidays`` names the line that is not one."""
    out: dict[date, str] = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        match = _HOLIDAY_LINE.match(line)
        try:
            day = date.fromisoformat(match.group(1)) if match else None
        except ValueError:
            day = None
        if day is None:
            raise ValidationError("holidays", fields={"holidays": [
                f"line {number}: {line.strip()[:60]!r} does not start with a date: write "
                "one holiday a line, e.g. 2026-12-25 Christmas Day"]})
        out[day] = match.group(2)[:100]
    return sorted(out.items())


def holiday_lines(holidays: Iterable[Mapping[str, str] | tuple[date, str]]) -> str:
    """The text form of holidays, as :func:`parse_holiday_lines` reads it."""
    lines = []
    for item in holidays:
        day, name = (item["date"], item.get("name", "")) if isinstance(item, Mapping) \
            else (item[0].isoformat(), item[1])
        lines.append(f"{day} {name}".rstrip())
    return "\n".join(lines)


# -- writing ---------------------------------------------------------------------------------


def _audit(service: RecordService, action: str, target: str, before: dict | None,
           after: dict | None) -> None:
    record_admin_audit(service.session, service.actor, action, target, before, after)


def _snapshot(row: StoredCalendar | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"version": row.version, "timezone": row.timezone, "hours": dict(row.hours),
            "holidays": [h["date"] for h in row.holidays], "source": row.holiday_source}


def save_calendar(service: RecordService, name: str, *, timezone: str,
                  hours: Mapping[str, str], holidays: Iterable[tuple[date, str]],
                  source: str = "") -> StoredCalendar:
    """Save a new version of business calendar ``name`` (a new calendar: version 1).

    ``hours`` maps ``mon`` .. ``sun`` to ranges like ``"08:00-12:00,13:00-17:00"`` (empty
    or missing: closed). Clocks already running keep the version they started on.
    Raises a ValidationError with messages for ``name``, ``timezone``, each weekday and
    ``holidays``.
    """
    service.require(PERMISSION)
    session, itsm = service.session, service.itsm
    name = (name or "").strip().lower()
    problems: dict[str, list[str]] = {}
    if not _NAME.match(name):
        problems["name"] = ["use 1 to 40 lower-case letters, digits, - or _, starting with a "
                            "letter or digit, e.g. maine-office"]
    elif name in load_calendars(itsm.settings):
        problems["name"] = [f"calendar {name!r} is defined in itsm.toml (or built in): "
                            "change it there, or give this calendar another name"]
    zone = (timezone or "").strip()
    try:
        ZoneInfo(zone)
        if not zone:
            raise ValueError(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems["timezone"] = [f"{zone!r} is not a time zone: use a name like "
                                "America/New_York or UTC"]
    clean: dict[str, str] = {}
    for day in WEEKDAYS:
        text = str(hours.get(day, "") or "").strip()
        try:
            parse_hours(text, day)
            clean[day] = text
        except ConfigError:
            problems[day] = [f"{text!r} is not working hours: use HH:MM-HH:MM ranges "
                             "separated by commas, e.g. 08:00-12:00,13:00-17:00; empty "
                             "for a closed day (24:00 ends a day)"]
    days = [(d, (n or "").strip()[:100]) for d, n in holidays]
    if len(days) > MAX_HOLIDAYS:
        problems["holidays"] = [f"at most {MAX_HOLIDAYS} holidays"]
    if not problems and not any(parse_hours(clean[d], d) for d in WEEKDAYS):
        problems["mon"] = ["give working hours on at least one day"]
    if problems:
        raise ValidationError("the calendar was not saved", fields=problems)
    before = stored_calendar(session, name)
    version = (session.scalar(select(func.max(StoredCalendar.version))
                              .where(StoredCalendar.name == name)) or 0) + 1
    row = StoredCalendar(name=name, version=version, timezone=zone, hours=clean,
                         holidays=[{"date": d.isoformat(), "name": n}
                                   for d, n in sorted(dict(days).items())],
                         holiday_source=(source or "")[:200], created_at=utcnow(),
                         created_by_id=service.actor.id)
    session.add(row)
    session.flush()
    forget(session)
    _audit(service, "calendar.save", f"calendar {name}", _snapshot(before), _snapshot(row))
    return row


def save_targets(service: RecordService, *, calendar: str, warn_at: float | str,
                 targets: Mapping[str, Mapping[int | str, Any]]) -> StoredPolicy:
    """Save a new version of the service level targets: minutes per metric and priority
    (None or empty: no target), the calendar the clocks run on and the warning threshold
    (a fraction of the target, 0.75, or a percentage, 75). Applies to records created
    from now on. Raises a ValidationError with messages for ``calendar``, ``warn_at`` and
    ``<metric>.p<priority>``."""
    service.require(PERMISSION)
    session, itsm = service.session, service.itsm
    problems: dict[str, list[str]] = {}
    names = calendars_for(itsm, session)
    calendar = (calendar or "").strip()
    if calendar not in names or "@" in calendar:
        problems["calendar"] = [f"{calendar!r} is not a calendar: choose one of "
                                + ", ".join(sorted(n for n in names if "@" not in n))]
    warn = _warn_fraction(warn_at)
    if warn is None:
        problems["warn_at"] = [f"{warn_at!r} is not a threshold: give a percentage of the "
                               "target between 1 and 99, e.g. 75"]
    clean: dict[str, dict[str, int]] = {}
    for metric in metrics_of(itsm.settings) or METRICS:
        given = targets.get(metric, {})
        clean[metric] = {}
        for p in PRIORITIES:
            value = given.get(p, given.get(str(p)))
            text = str(value).strip() if value is not None else ""
            if not text:
                continue
            if not text.isdigit() or not 0 < int(text) <= 10_000_000:
                problems[f"{metric}.p{p}"] = [f"{text!r} is not minutes: give a whole "
                                              "number above 0, or leave it empty"]
                continue
            clean[metric][str(p)] = int(text)
    if problems:
        raise ValidationError("the service levels were not saved", fields=problems)
    before = current_targets(itsm, session)
    row = StoredPolicy(calendar=calendar, warn_at=warn, targets=clean, created_at=utcnow(),
                       created_by_id=service.actor.id)
    session.add(row)
    session.flush()
    forget(session)
    _audit(service, "sla.targets.save", "service levels",
           {k: before[k] for k in ("calendar", "warn_at", "targets")},
           {"calendar": calendar, "warn_at": warn, "targets": clean})
    return row


def _warn_fraction(value: Any) -> float | None:
    try:
        number = float(str(value).strip().rstrip("%"))
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    if 1 <= number < 100:
        number /= 100
    return round(number, 4) if 0 < number < 1 else None


def timezone_names() -> list[str]:
    """IANA time zone names, for the calendar form's suggestions."""
    return sorted(available_timezones())
