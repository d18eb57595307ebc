"""The transition gate's console pages (server-rendered, no script needed).

- ``/transitions``: the readiness dashboard.
- ``/transitions/<number>``: gate status with exactly what is missing, the checklist with
  each deliverable's actions, meetings, milestones, roles and contacts, exceptions, the
  timeline of late items and the early-life incidents. Its forms post to sub-paths and
  redirect back (POST-redirect-GET); the fields of the record itself are on the core's
  record page.

Every read and write goes through the record service and the plugin's service layer, as
the API's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Response, abort, flash, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    ItsmError,
    RecordService,
    User,
    current_itsm,
    error_text,
    from_local_input,
    page_actor,
    page_blueprint,
    render_page,
    zone_name,
)
from itsm.plugins.transition_gate import plan, views
from itsm.plugins.transition_gate import service as gate
from itsm.plugins.transition_gate.models import (
    DELIVERABLE_STATE_LABELS,
    GATE_LABELS,
    MEETING_KIND_LABELS,
    TRANSITION,
    ServiceTransition,
)

pages = page_blueprint("transition_gate_pages", __name__, url_prefix="/transitions",
                       static_folder="static")


# The template documents the default checklist links to (the deliverables' starting
# points), shipped with the plugin.
DOCUMENTS = Path(__file__).parent / "documents"


@pages.get("/templates/<any('service-desk-knowledge.md', 'contact-list.md'):name>")
def template_document(name: str):
    """A template document of the default checklist, as Markdown to fill in."""
    path = DOCUMENTS / name
    if not path.is_file():
        abort(404)
    return Response(path.read_text(encoding="utf-8"), mimetype="text/markdown",
                    headers={"Content-Disposition": f'inline; filename="{name}"'})


def _form(*names: str) -> dict[str, Any]:
    """The named form fields that were sent and are not empty, without NUL bytes."""
    out = {}
    for name in names:
        value = request.form.get(name, "").replace("\x00", "").strip()
        if value:
            out[name] = value[:50000]
    return out


@pages.get("")
def dashboard_page():
    """Every open transition's readiness."""
    include = request.args.get("all") == "1"
    with current_itsm().unit_of_work(page_actor()) as svc:
        items = views.dashboard(svc, include_closed=include)
        can_create = svc.can(f"{TRANSITION.name}.create")
        for item in items:
            item["state_label"] = _state_label(svc, TRANSITION.name, item["state"])
    return render_page("transition_gate/dashboard.html", items=items, include=include,
                       can_create=can_create, gate_labels=GATE_LABELS)


def _state_label(svc: RecordService, type_name: str, state: str) -> str:
    """A record's state as its workflow names it ("Live, early-life support")."""
    rt = svc.itsm.types.by_name.get(type_name)  # None: a record of a disabled process
    return rt.workflow.state(state).title if rt else state.replace("_", " ")


@pages.get("/<number>")
def transition_page(number: str):
    """One transition: gate, checklist, meetings, milestones, roles, timeline."""
    with current_itsm().unit_of_work(page_actor()) as svc:
        trn = gate.get_transition(svc, number)
        data = views.overview(svc, trn)
        for incident in data["early_life_incidents"]:
            rt = svc.itsm.types.by_name.get(incident["type"])
            incident["url"] = url_for("console.record_detail", collection=rt.collection,
                                      number=incident["number"]) if rt else None
            incident["state_label"] = _state_label(svc, incident["type"], incident["state"])
        data["state_label"] = _state_label(svc, TRANSITION.name, data["state"])
        data["missing_items"] = _with_names(svc, data["missing_items"], data)
        me = svc.actor.email
        can = {"manage": gate.is_manager(svc, trn), "gatekeeper": gate.is_gatekeeper(svc),
               "accept": me == trn.service_manager and (
                   trn.accepted_at is None or bool(gate.acceptance_changes(svc.session, trn))),
               "go_live": trn.state in ("planning", "in_transition"),
               "admin": svc.actor.role == "admin", "me": me}
    return render_page("transition_gate/transition.html", t=data, can=can,
                       meeting_kinds=MEETING_KIND_LABELS, gate_labels=GATE_LABELS,
                       deliverable_states=DELIVERABLE_STATE_LABELS, zone=zone_name())


def _with_names(svc: RecordService, reasons: list[str], data: dict[str, Any]) -> list[str]:
    """The gate's reasons (worded for the API and the CLI with addresses) with the people
    of this transition by display name, as every page shows people."""
    emails = {data["project_manager"], data["service_manager"]}
    for item in data["checklist"]:
        emails |= {item["owner"], item["approver"]}
    emails = {e.lower() for e in emails if e and "@" in e}
    if not reasons or not emails:
        return reasons
    names = {email: name for email, name in svc.session.execute(
        select(User.email, User.name).where(User.email.in_(emails))) if name}
    if not names:
        return reasons
    # Whole addresses only: "pm@it.example" is not the end of "xpm@it.example".
    address = re.compile(r"(?<![\w.+-])(" + "|".join(map(re.escape, names)) + r")(?![\w-]|\.\w)",
                         re.IGNORECASE)
    return [address.sub(lambda m: names[m.group(1).lower()], reason) for reason in reasons]


def _act(number: str, action: Callable[[RecordService, ServiceTransition], Any], done: str,
         anchor: str = ""):
    try:
        with current_itsm().unit_of_work(page_actor()) as svc:
            action(svc, gate.get_transition(svc, number))
    except ItsmError as exc:
        if exc.status in (401, 404):
            raise
        flash(error_text(exc), "error")
    else:
        flash(done, "success")
    return redirect(url_for(".transition_page", number=number.upper()[:32]) + anchor)


@pages.post("/<number>/deliverables")
def add_deliverable(number: str):
    data = _form("title", "owner", "approver", "due_date", "document_url")
    return _act(number, lambda s, t: gate.save_deliverable(s, t, data),
                "The deliverable is on the checklist.", "#checklist")


@pages.post("/<number>/deliverables/<int:item_id>/submit")
def submit(number: str, item_id: int):
    data = _form("evidence_kind", "evidence", "evidence_note")
    return _act(number, lambda s, t: gate.submit(s, t, gate.get_deliverable(s, t, item_id),
                                                 data),
                "Submitted: the approver has been told.", "#checklist")


@pages.post("/<number>/deliverables/<int:item_id>/decision")
def decide(number: str, item_id: int):
    data = _form("decision", "reason")
    return _act(number, lambda s, t: gate.decide(s, t, gate.get_deliverable(s, t, item_id),
                                                 data),
                "Your decision is recorded.", "#checklist")


@pages.post("/<number>/deliverables/<int:item_id>/exception")
def exception(number: str, item_id: int):
    data = _form("reason", "until")
    return _act(number, lambda s, t: gate.grant_exception(
        s, t, gate.get_deliverable(s, t, item_id), data),
        "The exception is recorded.", "#exceptions")


@pages.post("/<number>/acceptance")
def acceptance(number: str):
    return _act(number, gate.accept, "You accepted responsibility for the service.")


@pages.post("/<number>/go-live")
def go_live(number: str):
    return _act(number, lambda s, t: s.transition(t, "go_live"),
                "The gate passed: the service is live.")


@pages.post("/<number>/meetings")
def add_meeting(number: str):
    data = _form("kind", "scheduled_at", "location", "minutes")
    if isinstance(data.get("scheduled_at"), str):
        # The form asks for the time in the reader's zone (its label names it); stored UTC.
        data["scheduled_at"] = from_local_input(data["scheduled_at"])
    attendees = request.form.get("attendees", "").replace("\x00", "")
    data["attendees"] = [a.strip() for a in attendees.replace(";", ",").split(",")
                         if a.strip()][:100]
    return _act(number, lambda s, t: plan.save_meeting(s, t, data),
                "The meeting is scheduled.", "#meetings")


@pages.post("/<number>/meetings/<int:meeting_id>/minutes")
def meeting_minutes(number: str, meeting_id: int):
    data = {"minutes": request.form.get("minutes", "").replace("\x00", "")[:50000]}
    return _act(number, lambda s, t: plan.save_meeting(s, t, data, meeting_id),
                "The minutes are recorded.", "#meetings")


@pages.post("/<number>/milestones")
def add_milestone(number: str):
    data = _form("name", "due_date")
    return _act(number, lambda s, t: plan.save_milestone(s, t, data),
                "The milestone is added.", "#milestones")


@pages.post("/<number>/milestones/<int:milestone_id>/done")
def milestone_done(number: str, milestone_id: int):
    data = {"done_on": gate.today().isoformat()}
    return _act(number, lambda s, t: plan.save_milestone(s, t, data, milestone_id),
                "The milestone is reached.", "#milestones")


@pages.post("/<number>/roles")
def add_role(number: str):
    data = _form("role", "name", "email", "phone", "responsibility")
    return _act(number, lambda s, t: plan.add_role(s, t, data), "The role is added.",
                "#roles")
