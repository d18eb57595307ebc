"""The change plugin's console pages (server-rendered, no script needed).

- ``/changes/calendar?month=YYYY-MM&service=``: the month's changes day by day, freeze
  windows and conflicts.
- ``/changes/approvals``: the approver's queue, with approve and reject forms.
- ``/changes/<number>``: a change's risk, approvals, conflicts, freeze windows, gate calls
  and caused incidents (the fields themselves are on the core's record page).

Every read and write goes through the record service and ``service.py``, as the API's do.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, request, url_for

from itsm.plugin import (
    ItsmError,
    current_itsm,
    error_text,
    page_actor,
    page_blueprint,
    reader_zone,
    reference_label,
    render_page,
    zone_name,
)
from itsm.plugins.change import schedule
from itsm.plugins.change import service as changes
from itsm.plugins.change.workflow import WORKFLOW

STATE_LABELS = {name: state.title for name, state in WORKFLOW.states.items()}
# What the change pages say for the stored codes of quorums and votes.
LABELS = {
    "quorum": {"any": "any one member", "majority": "a majority",
               "all": "every member"},
    "vote": {"pending": "waiting", "approved": "approved", "rejected": "rejected",
             "not_needed": "not needed (quorum decided)", "superseded": "superseded"},
    "group": {"pending": "waiting", "approved": "quorum reached",
              "rejected": "quorum can no longer be reached"},
}

pages = page_blueprint("change_pages", __name__, url_prefix="/changes",
                       static_folder="static")


def _month(raw: str | None, zone: ZoneInfo) -> tuple[date, str | None]:
    today = datetime.now(zone).date().replace(day=1)
    if not raw:
        return today, None
    try:
        return datetime.strptime(raw.strip()[:7], "%Y-%m").date(), None
    except ValueError:
        return today, f"{raw[:20]!r} is not a month such as 2026-12: showing this month"


def _next_month(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The start of ``day`` in the reader's zone, as a UTC moment."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _days(first: date, data: dict[str, Any], zone: ZoneInfo) -> list[dict[str, Any]]:
    """One entry per day of the month (the reader's days) with the changes and freezes
    touching it."""
    end = _next_month(first)
    out = []
    day = first
    while day < end:
        start = _midnight(day, zone)
        stop = _midnight(day + timedelta(days=1), zone)
        items = [c for c in data["changes"]
                 if datetime.fromisoformat(c["planned_start"]) < stop
                 and datetime.fromisoformat(c["planned_end"]) > start]
        freezes = [w for w in data["freeze_windows"]
                   if datetime.fromisoformat(w["starts_at"]) < stop
                   and datetime.fromisoformat(w["ends_at"]) > start]
        out.append({"date": day, "weekend": day.weekday() >= 5, "changes": items,
                    "freezes": freezes})
        day += timedelta(days=1)
    return out


def _clock(value: str, zone: ZoneInfo) -> str:
    """A stored moment's time of day in the reader's zone (``21:40``)."""
    return f"{datetime.fromisoformat(value).astimezone(zone):%H:%M}"


@pages.get("/calendar")
def calendar_page():
    """The change calendar of one month, in the reader's days and time zone."""
    zone = reader_zone()
    first, error = _month(request.args.get("month"), zone)
    service_name = request.args.get("service", "").strip()[:200] or None
    following = _next_month(first)
    start, end = _midnight(first, zone), _midnight(following, zone)
    with current_itsm().unit_of_work(page_actor()) as service:
        data = schedule.calendar(service, start, end, service_name)
        known = changes.services_of(service.session)
    for item in data["changes"]:
        item["start_clock"] = _clock(item["planned_start"], zone)
        item["end_clock"] = _clock(item["planned_end"], zone)
    previous = (first - timedelta(days=1)).replace(day=1)
    return render_page("change/calendar.html", 400 if error else 200, error=error,
                       month=first, days=_days(first, data, zone), data=data,
                       service=service_name, services=known, zone=zone_name(zone),
                       previous=previous.strftime("%Y-%m"), following=following
                       .strftime("%Y-%m"), state_labels=STATE_LABELS)


@pages.get("/approvals")
def approvals_page():
    """What awaits the signed-in approver."""
    with current_itsm().unit_of_work(page_actor()) as service:
        items = [changes.approval_dict(service.session, a) for a in changes.queue(service)]
    return render_page("change/approvals.html", items=items, labels=LABELS)


@pages.post("/approvals/<int:approval_id>")
def decide(approval_id: int):
    """Approve or reject from the queue."""
    decision = request.form.get("decision", "")
    comment = request.form.get("comment", "").replace("\x00", "")[:5000]
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            approval = changes.decide(service, approval_id, decision, comment)
            number, state = changes.approval_dict(service.session, approval)["change"], \
                approval.state
    except ItsmError as exc:
        if exc.status in (401, 403):
            raise
        flash(error_text(exc), "error")
        return redirect(url_for(".approvals_page"))
    flash(f"{number}: you {state} the change.", "success")
    return redirect(url_for(".approvals_page"))


@pages.get("/<number>")
def change_page(number: str):
    """Risk, approvals, conflicts, freeze windows, gate calls, incidents caused."""
    with current_itsm().unit_of_work(page_actor()) as service:
        change = changes.get_change(service, number)
        data = schedule.overview(service, change)
        can_update = service.can("change.update", change)
        for row in (*data["incidents_caused"], *data["conflicts"]):
            row_type = service.itsm.types.by_name.get(row.get("type", "change"))
            row["state_label"] = (row_type.workflow.state(row["state"]).title if row_type
                                  else row["state"].replace("_", " "))
        head = {"number": change.number, "title": change.title, "state": change.state,
                "state_label": WORKFLOW.state(change.state).title,
                "can_schedule": change.state == "cab_review"
                and service.can("change.update", change),
                "services": [reference_label(service.session, "service", s)
                             for s in change.services or []],
                "config_items": [reference_label(service.session, "configuration_item", i)
                                 for i in change.config_items or []],
                "environment": change.environment,
                "planned_start": change.planned_start, "planned_end": change.planned_end}
    return render_page("change/change.html", change=head, data=data, can_update=can_update,
                       labels=LABELS)


def _act(number: str, action, done: str):
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            action(service, changes.get_change(service, number))
    except ItsmError as exc:
        if exc.status in (401, 403):
            raise
        flash(error_text(exc), "error")
    else:
        flash(done, "success")
    return redirect(url_for(".change_page", number=number.upper()[:32]))


@pages.post("/<number>/incidents")
def add_incident(number: str):
    """Link an incident the change caused."""
    incident = request.form.get("incident", "")
    return _act(number, lambda s, c: changes.link_incident(s, c, incident),
                f"{incident.strip().upper()[:32]} is recorded as caused by this change.")


@pages.post("/<number>/schedule")
def schedule_change(number: str):
    """Schedule an approved change for its planned window: the workflow's next step after
    the CAB, run through the record service so its guards (approval scope, freeze
    windows) still decide."""
    return _act(number, lambda s, c: s.transition(c, "schedule"),
                "The change is scheduled for its planned window.")


@pages.post("/<number>/freeze-exception")
def freeze_exception(number: str):
    """Ask the emergency approvers for a freeze exception."""
    return _act(number, changes.request_freeze_exception,
                "The emergency approvers have been asked.")
