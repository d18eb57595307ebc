"""The service levels admin pages: the SLA targets per metric and priority, and business
calendars with their working hours and holidays, typed in or computed for a country or
state and reviewed before they are saved. They call the same functions as ``itsm sla``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.exceptions import NotFound

from itsm.core import service_levels as levels
from itsm.core.admin.kit import admin_view
from itsm.core.calendars import WEEKDAYS
from itsm.core.context import current_itsm
from itsm.core.errors import ItsmError
from itsm.core.pagekit import field_messages, page_actor, render_page

# Longest text kept from each input (what was typed comes back on an error, not a novel).
_LIMITS = {"name": 60, "timezone": 80, "holidays": 40_000, "country": 80, "subdivision": 80,
           "years": 40, "calendar": 60, "warn_at": 20, **{day: 200 for day in WEEKDAYS}}


def _text(form: Any, name: str) -> str:
    return str(form.get(name, ""))[:_LIMITS.get(name, 40)].strip()


# -- targets ---------------------------------------------------------------------------------


@admin_view()
def service_levels():
    itsm = current_itsm()
    errors: dict[str, list[str]] = {}
    with itsm.Session() as session:
        current = levels.current_targets(itsm, session)
        calendars = levels.describe_calendars(itsm, session)
    values = {"calendar": current["calendar"],
              "warn_at": f"{round(current['warn_at'] * 100, 2):g}",
              **{f"t-{m}-{p}": "" if v is None else str(v)
                 for m, row in current["targets"].items() for p, v in row.items()}}
    if request.method == "POST":
        form = request.form
        values = {"calendar": _text(form, "calendar"), "warn_at": _text(form, "warn_at"),
                  **{key: str(form.get(key, ""))[:12].strip() for key in values
                     if key.startswith("t-")}}
        targets = {m: {str(p): values[f"t-{m}-{p}"] for p in levels.PRIORITIES}
                   for m in current["metrics"]}
        try:
            with itsm.unit_of_work(page_actor()) as service:
                levels.save_targets(service, calendar=values["calendar"],
                                    warn_at=values["warn_at"], targets=targets)
        except ItsmError as exc:
            errors = {_target_input(k): v for k, v in field_messages(exc.fields).items()}
            if not errors:
                errors = {"_": [exc.message]}
        else:
            flash("Service level targets saved. " + levels.APPLIES_TO_NEW, "success")
            return redirect(url_for("admin.service_levels"))
    status = 422 if errors else 200
    return render_page("admin/service_levels.html", status, current=current, values=values,
                       errors=errors, calendars=calendars, priorities=levels.PRIORITIES,
                       metric_label=levels.metric_label, applies=levels.APPLIES_TO_NEW)


def _target_input(field: str) -> str:
    """``resolution.p3`` (the service's field) -> ``t-resolution-3`` (the input's name)."""
    metric, dot, priority = field.partition(".p")
    return f"t-{metric}-{priority}" if dot else field


# -- calendars ---------------------------------------------------------------------------------


@admin_view()
def calendars():
    itsm = current_itsm()
    with itsm.Session() as session:
        found = levels.describe_calendars(itsm, session)
    return render_page("admin/calendars.html", calendars=found, labels=levels.WEEKDAY_LABELS,
                       applies=levels.APPLIES_TO_NEW)


@admin_view()
def calendar_new():
    values = {"name": "", "timezone": "UTC", "holidays": "", "country": "",
              "subdivision": "", "years": "", **{d: "08:00-17:00" for d in WEEKDAYS[:5]},
              "sat": "", "sun": ""}
    return _calendar_form(values, creating=True)


@admin_view()
def calendar_edit(name: str):
    itsm = current_itsm()
    with itsm.Session() as session:
        row = levels.stored_calendar(session, name[:60])
        if row is None:
            raise NotFound(f"no saved calendar {name[:60]!r}: calendars of itsm.toml are "
                           "changed there")
        values = {"name": row.name, "timezone": row.timezone,
                  "holidays": levels.holiday_lines(row.holidays), "country": "",
                  "subdivision": "", "years": "",
                  **{d: (row.hours or {}).get(d, "") for d in WEEKDAYS}}
        version = row.version
    return _calendar_form(values, creating=False, version=version)


def _calendar_form(values: dict[str, str], *, creating: bool, version: int | None = None):
    errors: dict[str, list[str]] = {}
    review: list[dict[str, Any]] | None = None
    notice = ""
    if request.method == "POST":
        form = request.form
        fixed_name = None if creating else values["name"]
        values = {key: _text(form, key) for key in values}
        if fixed_name is not None:
            values["name"] = fixed_name  # a calendar keeps its name; clocks refer to it
        review, errors = _reviewed(form, values)
        action = form.get("action", "save")
        if not errors and review is not None and (action == "preview"
                                                  or not form.get("reviewed")):
            # Computed dates apply only after they were shown: show them first.
            notice = (f"{len(review)} public holiday(s) of {_source(values)}. Untick any "
                      "your office works on, then save the calendar.")
        elif not errors:
            saved = _save_calendar(values, review or [], errors)
            if saved is not None:
                flash(f"Calendar {saved[0]} saved as version {saved[1]} with {saved[2]} "
                      f"holiday(s). {levels.APPLIES_TO_NEW}", "success")
                return redirect(url_for("admin.calendars"))
    status = 422 if errors else 200
    return render_page("admin/calendar_form.html", status, values=values, errors=errors,
                       creating=creating, version=version, review=review, notice=notice,
                       weekdays=WEEKDAYS, labels=levels.WEEKDAY_LABELS,
                       countries=levels.holiday_countries(), applies=levels.APPLIES_TO_NEW)


def _source(values: dict[str, str]) -> str:
    try:
        return levels.holiday_source(values["country"], values["subdivision"],
                                     levels.parse_years(values["years"]))
    except ItsmError:
        return values["country"]


def _reviewed(form: Any, values: dict[str, str]) \
        -> tuple[list[dict[str, Any]] | None, dict[str, list[str]]]:
    """The public holidays of the country asked for, each marked as ticked or not (all
    are, the first time they are shown); None when no country is given."""
    if not values["country"]:
        return None, {}
    try:
        found = levels.public_holidays(values["country"], values["subdivision"],
                                       levels.parse_years(values["years"]))
    except ItsmError as exc:
        return None, field_messages(exc.fields)
    shown = bool(form.get("reviewed"))
    ticked = set(form.getlist("public"))
    return [{"date": d, "name": n, "key": d.isoformat(),
             "checked": not shown or d.isoformat() in ticked} for d, n in found], {}


def _save_calendar(values: dict[str, str], review: list[dict[str, Any]],
                   errors: dict[str, list[str]]) -> tuple[str, int, int] | None:
    itsm = current_itsm()
    try:
        typed = dict(levels.parse_holiday_lines(values["holidays"]))
        chosen = {r["date"]: r["name"] for r in review if r["checked"]}
        with itsm.unit_of_work(page_actor()) as service:
            row = levels.save_calendar(
                service, values["name"], timezone=values["timezone"],
                hours={d: values[d] for d in WEEKDAYS},
                holidays=sorted({**chosen, **typed}.items()),
                source=_source(values) if chosen else "")
            return row.name, row.version, len(row.holidays)
    except ItsmError as exc:
        errors.update(field_messages(exc.fields) or {"_": [exc.message]})
        return None


def register(bp: Blueprint) -> None:
    """Add these pages to the admin area's blueprint (it imports this module, so this
    module cannot import it)."""
    both = ["GET", "POST"]
    bp.add_url_rule("/service-levels", "service_levels", service_levels, methods=both)
    bp.add_url_rule("/service-levels/calendars", "calendars", calendars)
    bp.add_url_rule("/service-levels/calendars/new", "calendar_new", calendar_new,
                    methods=both)
    bp.add_url_rule("/service-levels/calendars/<name>", "calendar_edit", calendar_edit,
                    methods=both)
