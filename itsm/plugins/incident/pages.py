"""The incident plugin's pages: the reports route, the dashboard and the requesters' portal.

- ``GET /api/v1/incidents/reports/summary`` (JSON, staff): :func:`reports.summary`.
- ``/incidents/dashboard`` (console, staff): headline figures and server-drawn SVG charts
  (the pages' Content-Security-Policy allows no inline script or style), each with
  its numbers in a table for screen readers and for copying.
- ``/portal/incidents``, ``/portal/incidents/new``, ``/portal/incidents/<number>``
  (any signed-in user, meant for requesters): report an incident, follow one's own,
  talk to the service desk, rate, confirm or reopen the resolution.

Every read and write goes through the record service, as the API's do.
"""

from __future__ import annotations

from typing import Any

import marshmallow
from flask import Blueprint, flash, jsonify, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    Actor,
    Agency,
    Group,
    InputError,
    ItsmError,
    ListQuery,
    NavItem,
    NotFound,
    RecordService,
    ValidationError,
    current_actor,
    current_itsm,
    document,
    error_text,
    expectations,
    field_messages,
    page_actor,
    page_blueprint,
    parse_int,
    reader_zone,
    render_page,
    view_total,
)
from itsm.plugins.incident import reports, rules
from itsm.plugins.incident.models import Incident

TAGS = ["Incident"]

# -- the JSON route ------------------------------------------------------------------------

reports_api = Blueprint("incident_reports", __name__,
                        url_prefix="/api/v1/incidents/reports")


@reports_api.get("/summary")
@document(summary="incident report: counts, mean times to respond and resolve, SLA "
                  "compliance, backlog by group and weekly trends (IT staff)",
          response=reports.IncidentReportSummary, tags=TAGS,
          params=[{"name": "days", "in": "query", "schema": {
              "type": "integer", "minimum": 1, "maximum": reports.MAX_DAYS},
              "description": f"the period: this many days up to now (default "
                             f"{reports.DEFAULT_DAYS})"},
              {"name": "group", "in": "query", "schema": {"type": "string"},
               "description": "only this assignment group"}])
def summary_json():
    actor = current_actor()
    days = reports.parse_days(request.args.get("days"))
    return jsonify(reports.report_for(actor, days, request.args.get("group") or None))


# -- the dashboard -------------------------------------------------------------------------

dashboard = page_blueprint("incident_dashboard", __name__, url_prefix="/incidents",
                           static_folder="static")

BREACHING_WITHIN = 120  # minutes ahead that count as "breaching soon" on the dashboard


@dashboard.get("/<number>/impact")
def impact_page(number: str):
    """The services and agencies an incident's service and item reach: a major
    incident's affected agencies, each with the path it is reached by."""
    from itsm.plugins.incident.spine import impact

    with current_itsm().unit_of_work(page_actor()) as service:
        if not service.is_staff:
            raise NotFound(f"no incident {number}")
        record = service.get(number.upper()[:32], "incident")
        head = {"number": record.number, "title": record.title, "major": record.major}
        reached = impact(service.session, record)
    return render_page("incident/impact.html", incident=head, impact=reached)


@dashboard.get("/dashboard")
def dashboard_page():
    """Headline figures and charts of the period, for the service manager."""
    actor = page_actor()
    itsm = current_itsm()
    errors = []
    try:
        days = reports.parse_days(request.args.get("days"))
    except ValidationError as exc:
        errors.append(error_text(exc))
        days = reports.DEFAULT_DAYS
    group = request.args.get("group", "").strip()[:100] or None
    with itsm.Session() as session:
        groups = list(session.scalars(select(Group.name).order_by(Group.name)))
        since, until = reports.period(days)
        try:
            report = reports.summary(session, actor, since=since, until=until, group=group)
        except ValidationError as exc:  # an unknown group: show every group, say why
            errors.append(error_text(exc))
            group = None
            report = reports.summary(session, actor, since=since, until=until)
    # The tile counts the queue's "Breaching soon" view and links to it: one number.
    extra = {"breaching_within": str(BREACHING_WITHIN), **({"group": group} if group else {})}
    with itsm.unit_of_work(actor) as service:
        soon = view_total(service, itsm.types.get("incident"), "breaching_soon", extra)
        # The count tables name states and agencies as people read them, not by code.
        workflow = itsm.types.get("incident").workflow
        names = {"state": {s: workflow.state(s).title for s in report["counts"]["by_state"]},
                 # as the record page's category choices word them
                 "category": {c: c.replace("_", " ").capitalize()
                              for c in report["counts"]["by_category"] if c != "(none)"},
                 "agency": dict(service.session.execute(select(Agency.code, Agency.name).where(
                     Agency.code.in_(list(report["counts"]["by_agency"])))).all())}
    return render_page(
        "incident/dashboard.html", 400 if errors else 200, report=report, days=days,
        group=group, groups=groups, errors=errors, breaching=soon.count,
        breaching_exact=soon.exact, breaching_within=BREACHING_WITHIN, labels=names,
        breaching_url=url_for("console.record_list", collection="incidents",
                              view="breaching_soon", **extra), volume=volume_chart(report["weeks"]),
        compliance=compliance_chart(report["weeks"]),
        backlog=backlog_chart(report["backlog_by_group"]))


# -- chart geometry: the templates draw it as inline SVG -----------------------------------
# Charts are 640 wide in SVG units and scale to the page; the plot area leaves room for
# the axis labels. Only numbers are computed here; words and colours are the template's.

CHART_WIDTH = 640
PLOT = {"left": 44, "right": 12, "top": 16, "bottom": 44}
PLOT_HEIGHT = 200
MAX_X_LABELS = 13


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... at least ``value`` (an axis maximum)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _frame(n: int) -> dict[str, Any]:
    plot_width = CHART_WIDTH - PLOT["left"] - PLOT["right"]
    band = plot_width / max(n, 1)
    every = -(-n // MAX_X_LABELS) if n else 1  # ceil: at most 13 labels under the axis
    return {"width": CHART_WIDTH, "height": PLOT["top"] + PLOT_HEIGHT + PLOT["bottom"],
            "left": PLOT["left"], "top": PLOT["top"], "bottom": PLOT["top"] + PLOT_HEIGHT,
            "right": CHART_WIDTH - PLOT["right"], "band": band, "every": every}


def _y(frame: dict[str, Any], value: float, maximum: float) -> float:
    return round(frame["bottom"] - PLOT_HEIGHT * value / maximum, 1)


def _x_labels(frame: dict[str, Any], weeks: list[dict]) -> list[dict[str, Any]]:
    return [{"x": round(frame["left"] + frame["band"] * (i + 0.5), 1),
             "text": w["week"].split("-")[-1]}
            for i, w in enumerate(weeks) if i % frame["every"] == 0]


def volume_chart(weeks: list[dict[str, Any]]) -> dict[str, Any]:
    """Opened and resolved per week as pairs of bars."""
    frame = _frame(len(weeks))
    top = nice_ceiling(max([1, *(max(w["opened"], w["resolved"]) for w in weeks)]))
    bar = round(frame["band"] * 0.38, 2)
    bars = []
    for i, w in enumerate(weeks):
        start = frame["left"] + frame["band"] * i + frame["band"] * 0.1
        for j, series in enumerate(("opened", "resolved")):
            y = _y(frame, w[series], top)
            bars.append({"series": series, "week": w["week"], "value": w[series],
                         "x": round(start + j * bar, 2), "y": y, "width": bar,
                         "height": round(frame["bottom"] - y, 1)})
    return {**frame, "bars": bars, "labels": _x_labels(frame, weeks),
            "ticks": [{"y": _y(frame, v, top), "text": str(v)} for v in (0, top // 2, top)]}


def compliance_chart(weeks: list[dict[str, Any]]) -> dict[str, Any]:
    """SLA compliance per week and metric as lines (broken where a week has no figure)."""
    frame = _frame(len(weeks))
    lines = {}
    for metric in reports.METRICS:
        points, segments, current = [], [], []
        for i, w in enumerate(weeks):
            value = w["compliance"][metric]
            if value is None:
                if current:
                    segments.append(current)
                current = []
                continue
            point = {"x": round(frame["left"] + frame["band"] * (i + 0.5), 1),
                     "y": _y(frame, value, 100), "value": value, "week": w["week"]}
            points.append(point)
            current.append(point)
        if current:
            segments.append(current)
        lines[metric] = {"points": points, "segments": [
            " ".join(f"{p['x']},{p['y']}" for p in segment) for segment in segments]}
    return {**frame, "lines": lines, "labels": _x_labels(frame, weeks),
            "ticks": [{"y": _y(frame, v, 100), "text": f"{v}%"} for v in (0, 50, 100)]}


BACKLOG_ROW = 30
BACKLOG_LABEL = 170  # room for the group's name on the left


def backlog_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Open incidents per group as horizontal bars, largest first."""
    top = nice_ceiling(max([1, *(r["open"] for r in rows)]))
    room = CHART_WIDTH - BACKLOG_LABEL - 48
    bars = [{"group": r["group"], "value": r["open"], "x": BACKLOG_LABEL,
             "y": PLOT["top"] + i * BACKLOG_ROW, "height": BACKLOG_ROW - 10,
             "width": round(room * r["open"] / top, 1),
             "text_y": PLOT["top"] + i * BACKLOG_ROW + (BACKLOG_ROW - 10) / 2 + 5}
            for i, r in enumerate(rows)]
    return {"width": CHART_WIDTH, "height": PLOT["top"] * 2 + max(len(rows), 1) * BACKLOG_ROW,
            "bars": bars, "label_x": BACKLOG_LABEL - 8}


# -- the portal ----------------------------------------------------------------------------

portal = page_blueprint("incident_portal", __name__, url_prefix="/portal/incidents")

# How a requester reads a state (the workflow's titles are the desk's words).
PLAIN_STATES = {
    "new": "Received: waiting for the service desk",
    "in_progress": "Being worked on",
    "on_hold": "Waiting for an answer (from you or a supplier)",
    "resolved": "Solved: please confirm",
    "closed": "Closed",
    "cancelled": "Cancelled",
}
IMPACT_WORDS = {
    3: ["Many people or the whole organisation", "My team or department", "Only me"],
    4: ["Many people or the whole organisation", "My team or department",
        "A few colleagues", "Only me"],
}
URGENCY_WORDS = {
    3: ["I cannot work at all", "I can work, but with difficulty", "It can wait"],
    4: ["I cannot work at all", "I can work, but with great difficulty",
        "I can work, with some difficulty", "It can wait"],
}
REPORT_FIELDS = ("title", "description", "category", "subcategory", "impact", "urgency",
                 "affected_service")


def plain_state(state: str) -> str:
    return PLAIN_STATES.get(state, state.replace("_", " ").capitalize())


def _choices(words: dict[int, list[str]], levels: int) -> list[tuple[int, str]]:
    labels = words.get(levels) or [f"Level {n}" for n in range(1, levels + 1)]
    return [(n, labels[n - 1] if n <= len(labels) else f"Level {n}")
            for n in range(1, levels + 1)]


def _report_form_context(values: dict[str, Any], errors: dict[str, list[str]]) \
        -> dict[str, Any]:
    settings = rules.settings()
    impacts, urgencies = rules.levels(settings["priority_matrix"])
    categories = {name: list(subs or []) for name, subs in settings["categories"].items()}
    return {"values": values, "errors": errors, "categories": categories,
            "impacts": _choices(IMPACT_WORDS, impacts),
            "urgencies": _choices(URGENCY_WORDS, urgencies),
            "default_impact": impacts, "default_urgency": urgencies}


def _submitted_report() -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The form's values for the service, and the errors the page can tell at once."""
    form = request.form
    data: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in REPORT_FIELDS:
        raw = form.get(name, "").replace("\r\n", "\n").replace("\x00", "")
        raw = raw.rstrip() if name == "description" else raw.strip()
        if raw == "":
            continue
        if name in ("impact", "urgency"):
            try:
                data[name] = parse_int(raw, name)
            except InputError:
                errors[name] = ["choose one of the answers"]
        else:
            data[name] = raw
    if not data.get("title"):
        errors["title"] = ["say in a few words what is wrong"]
    errors.update(rules.check_category(rules.settings()["categories"],
                                       data.get("category"), data.get("subcategory")))
    return data, errors


def _field_errors(exc: ItsmError) -> dict[str, list[str]]:
    """The service's messages by form field; those of other fields go on top ("_")."""
    out: dict[str, list[str]] = {}
    for name, messages in field_messages(exc.fields).items():
        out.setdefault(name if name in REPORT_FIELDS else "_", []).extend(messages)
    if "_" in out or not out:
        out["_"] = [error_text(exc)]
    return out


@portal.route("/new", methods=["GET", "POST"])
def report_incident():
    """The report form; on success the new incident's page, with answers that may help."""
    actor = page_actor()
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = dict(request.form) if request.method == "POST" else {}
    if request.method == "POST":
        data, errors = _submitted_report()
        if not errors:
            try:
                with current_itsm().unit_of_work(actor) as service:
                    number = service.create("incident", {**data, "channel": "portal"}).number
            except ItsmError as exc:
                if exc.status in (401, 403):
                    raise
                errors = _field_errors(exc)
            else:
                flash(f"Thank you: your incident {number} has been reported.", "success")
                return redirect(url_for(".incident_page", number=number, new=1))
    else:
        with current_itsm().unit_of_work(actor) as service:
            service.require("incident.create")
    return render_page("incident/portal_new.html", 422 if errors else 200,
                       **_report_form_context(values, errors))


@portal.get("")
def my_incidents():
    """The signed-in user's own incidents, newest first."""
    itsm = current_itsm()
    cursor = request.args.get("cursor", "")[:300] or None
    with itsm.unit_of_work(page_actor()) as service:
        query = ListQuery(requester="me", sort="-created_at", cursor=cursor,
                          limit=itsm.settings["api.page_size"])
        try:
            records, next_cursor = service.list("incident", query)
        except ValidationError:  # a cursor from elsewhere: start again at the top
            return redirect(url_for(".my_incidents"))
        rows = [{"number": r.number, "title": r.title, "state": r.state,
                 "plain_state": plain_state(r.state), "created_at": r.created_at,
                 "updated_at": r.updated_at} for r in records]
    return render_page("incident/portal_list.html", incidents=rows,
                       next_url=url_for(".my_incidents", cursor=next_cursor)
                       if next_cursor else None, paged=cursor is not None)


def _incident(service: RecordService, number: str) -> Incident:
    record = service.get(number.upper()[:32], "incident")
    if not isinstance(record, Incident):
        raise NotFound(f"no incident {number[:32]}")
    return record


def _conversation(service: RecordService, record: Incident) -> list[dict[str, Any]]:
    """Public entries only, in the requester's words, oldest first."""
    out = []
    for entry in service.journal(record):
        if not entry.public:
            continue
        data = entry.data or {}
        if entry.kind == "created":
            headline = "reported the incident"
        elif entry.kind == "commented":
            headline = "wrote"
        elif entry.kind == "transitioned":
            new = (data.get("changes") or {}).get("state", [None, record.state])[1]
            headline = f"changed the status to “{plain_state(str(new))}”"
        else:
            continue
        out.append({"kind": entry.kind, "headline": headline, "body": entry.body,
                    "author": "you" if entry.actor_id == service.actor.id and entry.actor_id
                    else service.ref("user", entry.actor_id) or "the service desk",
                    "created_at": entry.created_at})
    return out


@portal.get("/<number>")
def incident_page(number: str):
    """One incident as its requester sees it: status, conversation, what to do next."""
    with current_itsm().unit_of_work(page_actor()) as service:
        record = _incident(service, number)
        mine = record.requester_id is not None and record.requester_id == service.actor.id
        context = {
            "incident": service.to_dict(record), "plain_state": plain_state(record.state),
            "expect": expectations(service.session, record, reader_zone()),
            "conversation": _conversation(service, record),
            "can_comment": service.can("incident.comment", record),
            "mine": mine,
            "suggestions": [s.to_dict() for s in service.suggestions(record)]
            if record.state in ("new", "in_progress", "on_hold") else [],
            "just_reported": request.args.get("new") == "1",
            "ratings": [(5, "Very good"), (4, "Good"), (3, "All right"), (2, "Poor"),
                        (1, "Very poor")],
        }
        allowed = {t.name for t, reasons in service.available_transitions(record)
                   if not reasons}
        context["can_close"] = mine and "close" in allowed
        context["can_reopen"] = "reopen" in allowed
        context["can_rate"] = mine and record.state in ("resolved", "closed")
    return render_page("incident/portal_detail.html", **context)


def _act(number: str, action, message: str, anchor: str = ""):
    """Run ``action(service, incident)`` for the signed-in user; flash the outcome."""
    loaded = False
    try:
        with current_itsm().unit_of_work(page_actor()) as service:
            record = _incident(service, number)
            loaded = True
            action(service, record)
    except ItsmError as exc:
        if not loaded:  # an incident this user may not see: the 404 page
            raise
        flash(error_text(exc), "error")
    else:
        flash(message, "success")
    return redirect(url_for(".incident_page", number=number.upper()[:32]) + anchor)


@portal.post("/<number>/comment")
def add_comment(number: str):
    body = request.form.get("body", "").replace("\r\n", "\n").replace("\x00", "")
    return _act(number, lambda service, record: service.comment(record, body, public=True),
                "Your message has been added.", "#conversation")


@portal.post("/<number>/confirm")
def confirm(number: str):
    return _act(number, lambda service, record: service.transition(record, "close"),
                "Thank you for confirming: the incident is closed.")


@portal.post("/<number>/reopen")
def reopen(number: str):
    why = request.form.get("reason", "").replace("\r\n", "\n").replace("\x00", "").strip()

    def run(service: RecordService, record: Incident) -> None:
        service.transition(record, "reopen", comment=why[:2000] or "It is not fixed.")

    return _act(number, run, "The incident is open again; the service desk will look at it.")


@portal.post("/<number>/rate")
def rate(number: str):
    from itsm.plugins.incident.api import SatisfactionIn, rate_resolution

    try:
        data = SatisfactionIn().load({"rating": request.form.get("rating", ""),
                                      "comment": request.form.get("comment", "")
                                      .replace("\r\n", "\n").replace("\x00", "").strip()})
    except marshmallow.ValidationError:
        flash("Choose a rating from 1 to 5 (a comment may have up to 2000 characters).",
              "error")
        return redirect(url_for(".incident_page", number=number.upper()[:32]) + "#rate")
    return _act(number, lambda service, record: rate_resolution(
        service, record, data["rating"], data["comment"]),
                "Thank you for your rating.", "#rate")


# -- hooks' helpers ------------------------------------------------------------------------


def blueprints() -> list[Blueprint]:
    """The reports route and the page blueprints of the plugin."""
    return [reports_api, dashboard, portal]


def navigation(actor: Actor) -> list[NavItem]:
    """Navigation entries for ``actor``: the portal for everyone, the dashboard for staff."""
    items = [NavItem("Report an incident", "/portal/incidents/new", order=20, group="portal"),
             NavItem("My incidents", "/portal/incidents", order=21, group="portal")]
    if actor.role != "requester":
        items.append(NavItem("Incident dashboard", "/incidents/dashboard", order=60,
                             group="reports"))
    return items
