"""The operations gate before a service goes live: a transition's checklist, the service
manager's acceptance, exceptions, the catalog held back and published through hooks,
early-life support, reminders and notices. The catalog and incident plugins are enabled
where a story needs them; the gate imports neither."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.transition_gate as gate_plugin
from itsm.core.auth import Actor
from itsm.core.demo import ensure_group
from itsm.core.errors import Conflict
from itsm.core.inputs import InputError
from itsm.core.models import Event, GroupMember, JournalEntry, User, utcnow
from itsm.core.notify import EventMessage
from itsm.core.references import (
    check_reference_status,
    reference_get,
    request_reference_status,
    resolve_reference,
)
from itsm.testing import schema_drift

API = "/api/v1/transitions"
PM, SM, OPS, KEEPER = ("pm@it.example", "sm@it.example", "ops@it.example",
                       "keeper@it.example")
DEFAULT_ITEMS = 9
ACCEPTANCE = f"the service manager {SM} has not accepted responsibility for the service"


@pytest.fixture
def itsm_plugins():
    return [catalog_plugin, gate_plugin]


@pytest.fixture
def people(app, make_token):
    headers = {email: make_token(email) for email in (PM, SM, OPS)}
    headers["admin"] = make_token("admin@it.example", role="admin")
    state = app.extensions["itsm"]
    keeper = make_token(KEEPER)
    with app.app_context(), state.Session() as session:
        office = ensure_group(session, "Service Management Office")
        user = session.scalar(select(User).where(User.email == KEEPER))
        session.add(GroupMember(group_id=office.id, user_id=user.id))
        session.commit()
    headers[KEEPER] = keeper
    return headers


def open_transition(client, headers, service="db-hosting", **fields):
    body = {"title": "Database hosting goes operational", "project": "Hosting 2027",
            "service": service, "project_manager": PM, "service_manager": SM,
            "go_live_date": (utcnow().date() + timedelta(days=30)).isoformat(), **fields}
    response = client.post(API, json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def overview(client, headers, number):
    response = client.get(f"{API}/{number}/overview", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def deliver(client, people, number, items):
    """The owner submits each item with a link, the approver approves it."""
    for item in items:
        sent = client.post(f"{API}/{number}/deliverables/{item['id']}/submit",
                           headers=people[PM], json={"evidence_kind": "link",
                                                     "evidence": "https://wiki.example/x"})
        assert sent.status_code == 200, sent.json
        decided = client.post(f"{API}/{number}/deliverables/{item['id']}/decision",
                              headers=people[SM], json={"decision": "approve"})
        assert decided.status_code == 200, decided.json


def go_live(client, headers, number):
    return client.post(f"/api/v1/transitions/{number}/transitions", headers=headers,
                       json={"name": "go_live"})


def missing_text(item):
    return (f"deliverable “{item['title']}” is {item['state']}, not approved (owner {PM}, "
            f"approver {SM})")


def test_go_live_is_refused_with_exactly_what_is_missing_until_the_service_manager_accepts(
        app, client, people):
    admin = people["admin"]
    assert client.post("/api/v1/catalog/services", headers=admin, json={
        "slug": "db-hosting", "name": "Database hosting"}).status_code == 201
    trn = open_transition(client, people[PM])
    number = trn["number"]
    assert number.startswith("TRN") and trn["catalog_key"] == "db-hosting"
    assert trn["service_name"] == "Database hosting"
    data = overview(client, people[PM], number)
    items = data["checklist"]
    assert len(items) == DEFAULT_ITEMS and {i["owner"] for i in items} == {PM}
    assert items[0]["title"] == "Service desk knowledge documents"
    assert items[0]["document_url"] and data["gate"] == "blocked"
    assert {r["role"] for r in data["roles"]} == {"Project manager", "Service manager"}

    refused = go_live(client, people[PM], number)
    assert refused.status_code == 409
    assert refused.json["error"]["reasons"] == [missing_text(i) for i in items] + [ACCEPTANCE]

    # The catalog's own go-live is vetoed while the transition is open.
    vetoed = client.patch("/api/v1/catalog/services/db-hosting", headers=admin,
                          json={"status": "live"})
    assert vetoed.status_code == 409
    assert number in vetoed.json["error"]["reasons"][0]

    # Approving the last deliverable is not enough: the service manager must accept.
    assert client.post(f"/api/v1/transitions/{number}/transitions", headers=people[PM],
                       json={"name": "start"}).status_code == 200
    deliver(client, people, number, items)
    refused = go_live(client, people[PM], number)
    assert refused.status_code == 409 and refused.json["error"]["reasons"] == [ACCEPTANCE]
    assert client.get("/api/v1/catalog/services/db-hosting", headers=admin) \
        .json["status"] == "in_transition"

    assert client.post(f"{API}/{number}/acceptance", headers=people[PM]).status_code == 403
    accepted = client.post(f"{API}/{number}/acceptance", headers=people[SM])
    assert accepted.status_code == 200 and accepted.json["accepted_by"] == SM
    assert overview(client, people[PM], number)["gate"] == "ready"

    live = go_live(client, people[PM], number)
    assert live.status_code == 200, live.json
    assert live.json["state"] == "early_life" and live.json["support_until"]
    assert client.get("/api/v1/catalog/services/db-hosting", headers=admin) \
        .json["status"] == "live"
    journal = client.get(f"/api/v1/transitions/{number}/journal", headers=people[PM]).json
    notes = " ".join(e.get("body") or "" for e in journal["items"])
    assert "accepts responsibility" in notes and "catalog service Database hosting is live" in notes


def test_only_the_owner_submits_and_only_the_approver_decides_with_field_messages(
        client, people):
    number = open_transition(client, people[PM], service="Video conferencing")["number"]
    item = overview(client, people[PM], number)["checklist"][0]
    base = f"{API}/{number}/deliverables/{item['id']}"
    assert client.post(f"{base}/submit", headers=people[OPS], json={
        "evidence_kind": "link", "evidence": "https://x.example"}).status_code == 403
    bad = client.post(f"{base}/submit", headers=people[PM], json={
        "evidence_kind": "record", "evidence": "KB0000999"})
    assert bad.status_code == 422 and "evidence" in bad.json["error"]["fields"]
    bad = client.post(f"{base}/submit", headers=people[PM], json={"evidence_kind": "fax"})
    assert bad.status_code == 422 and {"evidence_kind", "evidence"} <= set(
        bad.json["error"]["fields"])
    assert client.post(f"{base}/submit", headers=people[PM], json={
        "evidence_kind": "record", "evidence": number}).status_code == 200
    assert client.post(f"{base}/decision", headers=people[PM],
                       json={"decision": "approve"}).status_code == 403
    no_reason = client.post(f"{base}/decision", headers=people[SM], json={"decision": "reject"})
    assert no_reason.status_code == 422 and "reason" in no_reason.json["error"]["fields"]
    rejected = client.post(f"{base}/decision", headers=people[SM],
                           json={"decision": "reject", "reason": "Only two articles."})
    assert rejected.json["state"] == "rejected"
    reasons = go_live(client, people[PM], number).json["error"]["reasons"]
    assert reasons[0].endswith("is rejected, not approved (owner pm@it.example, approver "
                               "sm@it.example): Only two articles.")
    # Unknown people and templates are field errors, never a 500.
    bad = client.post(API, headers=people[PM], json={
        "title": "x", "project": "p", "service": "s", "project_manager": "nobody@x.example",
        "service_manager": SM, "go_live_date": "2030-01-01", "template": "nope"})
    assert bad.status_code == 422 and "project_manager" in bad.json["error"]["fields"]
    bad = client.post(API, headers=people[PM], json={
        "title": "x", "project": "p", "service": "s", "project_manager": PM,
        "service_manager": SM, "go_live_date": "2030-01-01", "template": "nope"})
    assert bad.status_code == 422 and "template" in bad.json["error"]["fields"]


def test_gatekeeper_exception_is_recorded_with_who_why_and_until(client, people):
    number = open_transition(client, people[PM])["number"]
    items = overview(client, people[PM], number)["checklist"]
    backup = items[-1]
    url = f"{API}/{number}/deliverables/{backup['id']}/exception"
    until = (utcnow().date() + timedelta(days=14)).isoformat()
    why = "Recovery test booked for the first weekend after go-live."
    assert client.post(url, headers=people[PM], json={"reason": why, "until": until}) \
        .status_code == 403
    past = client.post(url, headers=people[KEEPER], json={"reason": why,
                                                           "until": "2020-01-01"})
    assert past.status_code == 422 and "until" in past.json["error"]["fields"]
    granted = client.post(url, headers=people[KEEPER], json={"reason": why, "until": until})
    assert granted.status_code == 201, granted.json
    deliver(client, people, number, items[:-1])
    client.post(f"{API}/{number}/acceptance", headers=people[SM])
    assert go_live(client, people[PM], number).status_code == 200
    data = overview(client, people[PM], number)
    assert data["exceptions"] == [{**data["exceptions"][0], "deliverable": backup["title"],
                                   "reason": why, "until": until, "granted_by": KEEPER,
                                   "active": True}]
    assert data["checklist"][-1]["excepted"] is True
    # Without the catalog entry (no service "db-hosting" here) the service went live alone.
    assert data["catalog"] is None and data["gate"] == "passed"


def test_gatekeepers_edit_templates_that_new_transitions_start_from(client, people):
    small = {"name": "small", "description": "A minor service change.", "items": [
        {"title": "Knowledge article updated", "due_days_before": 3},
        {"title": "Release notes", "mandatory": False, "document_url": "/t/notes.md"}]}
    assert client.post(f"{API}/templates", headers=people[PM], json=small).status_code == 403
    bad = client.post(f"{API}/templates", headers=people[KEEPER], json={
        "name": "Bad Name", "items": [{"due_days_before": -1}]})
    assert bad.status_code == 422 and {"name", "items"} <= set(bad.json["error"]["fields"])
    assert client.post(f"{API}/templates", headers=people[KEEPER], json=small) \
        .status_code == 201
    names = {t["name"] for t in client.get(f"{API}/templates", headers=people[PM])
             .json["items"]}
    assert names == {"default", "small"}
    number = open_transition(client, people[PM], template="small",
                             go_live_date="2030-01-10")["number"]
    items = overview(client, people[PM], number)["checklist"]
    assert [(i["title"], i["mandatory"], i["due_date"]) for i in items] == [
        ("Knowledge article updated", True, "2030-01-07"), ("Release notes", False, None)]
    # The project manager appoints another approver; only a mandatory item holds the gate.
    moved = client.patch(f"{API}/{number}/deliverables/{items[0]['id']}", headers=people[PM],
                         json={"approver": OPS, "due_date": "2030-01-08"})
    assert moved.status_code == 200 and moved.json["approver"] == OPS
    assert client.patch(f"{API}/{number}/deliverables/{items[0]['id']}", headers=people[OPS],
                        json={"approver": OPS}).status_code == 403
    assert client.patch(f"{API}/{number}/deliverables/{items[0]['id']}", headers=people[PM],
                        json={"approver": "ghost@x.example"}).status_code == 422
    attached = client.post(f"/api/v1/transitions/{number}/attachments", headers=people[PM],
                           data={"file": (io.BytesIO(b"article text"), "kb.txt")})
    assert attached.status_code == 201, attached.json
    sent = client.post(f"{API}/{number}/deliverables/{items[0]['id']}/submit",
                       headers=people[PM], json={"evidence_kind": "attachment",
                                                 "evidence": str(attached.json["id"])})
    assert sent.status_code == 200 and sent.json["state"] == "submitted"
    assert client.post(f"{API}/{number}/deliverables/{items[0]['id']}/decision",
                       headers=people[OPS], json={"decision": "approve"}).status_code == 200
    assert go_live(client, people[PM], number).json["error"]["reasons"] == [ACCEPTANCE]


def test_a_deliverable_changed_after_approval_and_acceptance_is_approved_again(
        client, people):
    number = open_transition(client, people[PM])["number"]
    items = overview(client, people[PM], number)["checklist"]
    deliver(client, people, number, items)
    assert client.post(f"{API}/{number}/acceptance", headers=people[SM]).status_code == 200
    assert overview(client, people[PM], number)["gate"] == "ready"

    # The runbook approved is not the runbook now: approval and acceptance no longer hold.
    first = items[0]
    changed = client.patch(f"{API}/{number}/deliverables/{first['id']}", headers=people[PM],
                           json={"document_url": "https://wiki.example/other",
                                 "mandatory": True})
    assert changed.status_code == 200, changed.json
    assert changed.json["state"] == "submitted"
    reasons = go_live(client, people[PM], number).json["error"]["reasons"]
    assert reasons[0].startswith(f"deliverable “{first['title']}” is submitted")
    assert reasons[1] == (f"the service manager {SM} accepted another checklist: "
                          f"“{first['title']}” changed since; they accept again")
    journal = client.get(f"{API}/{number}/journal", headers=people[PM]).json
    notes = " ".join(e.get("body") or "" for e in journal["items"])
    assert f"Approval of “{first['title']}” by {SM} superseded: document_url changed" in notes
    assert f"Acceptance by {SM} superseded: “{first['title']}” changed" in notes

    assert client.post(f"{API}/{number}/deliverables/{first['id']}/decision",
                       headers=people[SM], json={"decision": "approve"}).status_code == 200
    assert go_live(client, people[PM], number).status_code == 409
    assert client.post(f"{API}/{number}/acceptance", headers=people[SM]).status_code == 200
    assert client.post(f"{API}/{number}/acceptance", headers=people[SM]).status_code == 409
    assert go_live(client, people[PM], number).status_code == 200


def test_renaming_the_service_keeps_the_gates_veto_on_go_live(app, client, people):
    admin = people["admin"]
    assert client.post("/api/v1/catalog/services", headers=admin, json={
        "slug": "expenses", "name": "Expense claims"}).status_code == 201
    number = open_transition(client, people[PM], service="expenses")["number"]
    renamed = client.patch("/api/v1/catalog/services/expenses", headers=admin,
                           json={"slug": "expense-claims"})
    assert renamed.status_code == 200, renamed.json
    vetoed = client.patch("/api/v1/catalog/services/expense-claims", headers=admin,
                          json={"status": "live"})
    assert vetoed.status_code == 409, vetoed.json
    assert number in vetoed.json["error"]["reasons"][0]
    # The transition follows the service under its new key.
    data = client.get(f"{API}/{number}", headers=people[PM]).json
    assert data["catalog_id"] is not None
    catalog = overview(client, people[PM], number)["catalog"]
    assert catalog["url"].endswith("/expense-claims") and catalog["id"] == str(
        data["catalog_id"])
    # A rename of the name too, then a merge into another service: the veto holds.
    assert client.patch("/api/v1/catalog/services/expense-claims", headers=admin,
                        json={"name": "Claims for expenses"}).status_code == 200
    vetoed = client.patch("/api/v1/catalog/services/expense-claims", headers=admin,
                          json={"status": "live"})
    assert vetoed.status_code == 409 and number in vetoed.json["error"]["reasons"][0]
    state = app.extensions["itsm"]
    with app.app_context(), state.unit_of_work(Actor.system()) as svc:
        ref = reference_get(svc.session, "service", str(data["catalog_id"]))
        assert ref.label == "Claims for expenses" and ref.lifecycle == "planned"


def test_catalog_service_kind_guard_and_status_change(app, client, people):
    state = app.extensions["itsm"]
    client.post("/api/v1/catalog/services", headers=people["admin"], json={
        "slug": "vpn", "name": "Remote access", "status": "planned"})
    number = open_transition(client, people[PM], service="Remote access")["number"]
    with app.app_context(), state.Session() as session:
        ref = resolve_reference(session, "service", "vpn")
        assert (ref.kind, ref.label, ref.lifecycle) == ("service", "Remote access", "planned")
        assert ref.id.isdigit() and resolve_reference(session, "service", f"#{ref.id}") == ref
        assert resolve_reference(session, "service", "remote ACCESS") == ref
        with pytest.raises(InputError):
            resolve_reference(session, "service", "nothing")
        reasons = state.hook.itsm_reference_status_guard(session=session, ref=ref,
                                                        status="live", actor=None)
        assert number in reasons[0][0]
        assert state.hook.itsm_reference_status_guard(session=session, ref=ref,
                                                     status="retired", actor=None) == []
        with pytest.raises(Conflict):
            check_reference_status(session, ref, "live", Actor.system())
    with app.app_context(), state.unit_of_work(Actor.system()) as svc:
        moved = request_reference_status(svc, "service", "vpn", "in_transition")
        assert moved.lifecycle == "in_transition" and moved.id == ref.id
        assert request_reference_status(svc, "service", "none", "live") is None


def test_reminders_go_once_before_due_dates_and_approvers_hear_of_submissions(app, client,
                                                                               people):
    number = open_transition(client, people[PM], go_live_date=(
        utcnow().date() + timedelta(days=17)).isoformat())["number"]
    state = app.extensions["itsm"]
    with app.app_context():
        gate_plugin.itsm_periodic(utcnow())
        gate_plugin.itsm_periodic(utcnow())  # a second cycle sends nothing again
    item = overview(client, people[PM], number)["checklist"][0]
    client.post(f"{API}/{number}/deliverables/{item['id']}/submit", headers=people[PM],
                json={"evidence_kind": "link", "evidence": "https://wiki.example/kb"})
    with app.app_context(), state.Session() as session:
        events = session.scalars(select(Event).where(Event.name.like("transition.%"))
                                 .order_by(Event.id)).all()
        due = [e for e in events if e.name == "transition.deliverable_due"]
        # Due 20, 15, 15, 10, 10, 7, 10, 15, 5 days before go-live, 12 days away, 3 days'
        # notice: the three items due within three days (or already late) are reminded.
        assert sorted(e.payload["deliverable"] for e in due) == sorted(
            ["Service desk knowledge documents", "Support and escalation model",
             "SLA/MOU targets agreed", "Process description with roles and responsibilities"])
        assert {e.payload["owner"] for e in due} == {PM}
        submitted = [e for e in events if e.name == "transition.deliverable_submitted"]
        recipients = gate_plugin.itsm_notification_recipients(
            EventMessage.of(submitted[0]), session)
        assert [(r.channel, r.address) for r in recipients] == [("log", SM)]
        reminded = gate_plugin.itsm_notification_recipients(EventMessage.of(due[0]), session)
        assert [r.address for r in reminded] == [PM]


def test_dashboard_shows_percent_late_items_and_next_milestone(client, people):
    number = open_transition(client, people[PM], go_live_date=(
        utcnow().date() + timedelta(days=8)).isoformat())["number"]
    items = overview(client, people[PM], number)["checklist"]
    deliver(client, people, number, items[:3])
    today = utcnow().date()
    assert client.post(f"{API}/{number}/milestones", headers=people[PM], json={
        "name": "Pilot", "due_date": (today + timedelta(days=2)).isoformat()}) \
        .status_code == 201
    assert client.post(f"{API}/{number}/milestones", headers=people[OPS], json={
        "name": "x", "due_date": today.isoformat()}).status_code == 403
    meeting = client.post(f"{API}/{number}/meetings", headers=people[PM], json={
        "kind": "start_up", "scheduled_at": "2030-01-05T09:00:00Z",
        "attendees": [PM, SM]})
    assert meeting.status_code == 201 and meeting.json["attendees"] == [PM, SM]
    assert client.patch(f"{API}/{number}/meetings/{meeting.json['id']}", headers=people[PM],
                        json={"minutes": "Agreed."}).json["minutes"] == "Agreed."
    assert client.post(f"{API}/{number}/meetings", headers=people[PM], json={
        "kind": "party", "scheduled_at": "soon"}).status_code == 422
    assert client.post(f"{API}/{number}/roles", headers=people[PM], json={
        "role": "DBA", "name": "Ops team", "phone": "+1 555"}).status_code == 201
    row = next(t for t in client.get(f"{API}/dashboard", headers=people[OPS]).json["items"]
               if t["number"] == number)
    assert row["percent_complete"] == round(100 * 3 / DEFAULT_ITEMS)
    assert row["next_milestone"]["name"] == "Pilot" and row["gate"] == "blocked"
    # due 8 days away: items due 10+ days before go-live are late
    assert "Monitoring and event management in place" in row["late_deliverables"]
    assert "Service desk knowledge documents" not in row["late_deliverables"]  # approved
    data = overview(client, people[OPS], number)
    assert any(r["late"] and r["kind"] == "deliverable" for r in data["timeline"])
    assert {"DBA", "Project manager"} <= {r["role"] for r in data["roles"]}


def test_migration_creates_exactly_what_the_models_describe(app):
    tables = ["service_transition", "transition_template", "transition_deliverable",
              "transition_meeting", "transition_milestone", "transition_role",
              "transition_exception"]
    assert schema_drift(app.extensions["itsm"].engine, tables) == []


TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "long enough secret"


def test_pages_show_the_gate_and_run_an_action_with_csrf(app, client, make_token, people):
    make_token("page.pm@it.example", password=PASSWORD)
    number = open_transition(client, people[PM], project_manager="page.pm@it.example")[
        "number"]
    token = TOKEN.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"email": "page.pm@it.example", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    board = client.get("/transitions")
    assert board.status_code == 200 and number in board.text
    page = client.get(f"/transitions/{number}")
    assert page.status_code == 200
    assert "has not accepted responsibility" in page.text
    assert "Service desk knowledge documents" in page.text
    with client.session_transaction() as session:
        csrf = session["csrf"]
    assert client.post(f"/transitions/{number}/go-live").status_code == 400  # no CSRF
    refused = client.post(f"/transitions/{number}/go-live", data={"csrf_token": csrf},
                          follow_redirects=True)
    assert "not approved" in refused.text
    added = client.post(f"/transitions/{number}/milestones", data={
        "csrf_token": csrf, "name": "Pilot with DOT", "due_date": "2030-02-01"},
        follow_redirects=True)
    assert "The milestone is added." in added.text and "Pilot with DOT" in added.text


def test_meeting_form_takes_the_time_in_the_readers_zone_and_stores_utc(app, client,
                                                                        make_token, people):
    make_token("zone.pm@it.example", password=PASSWORD)
    with app.app_context(), app.extensions["itsm"].Session() as session:
        session.scalar(select(User).where(User.email == "zone.pm@it.example")).time_zone = \
            "Europe/Berlin"
        session.commit()
    number = open_transition(client, people[PM], project_manager="zone.pm@it.example")[
        "number"]
    token = TOKEN.search(client.get("/login").text).group(1)
    client.post("/login", data={"email": "zone.pm@it.example", "password": PASSWORD,
                                "csrf_token": token})
    page = client.get(f"/transitions/{number}").text
    assert "When (Europe/Berlin time)" in page and "When (UTC)" not in page
    with client.session_transaction() as session:
        csrf = session["csrf"]
    done = client.post(f"/transitions/{number}/meetings", data={
        "csrf_token": csrf, "kind": "start_up", "scheduled_at": "2030-01-15T10:00"},
        follow_redirects=True)
    assert "The meeting is scheduled." in done.text
    assert "2030-01-15 10:00 CET" in done.text  # shown as typed, in the reader's zone
    meetings = overview(client, people[PM], number)["meetings"]
    assert meetings[0]["scheduled_at"].startswith("2030-01-15T09:00")  # stored UTC
    bad = client.post(f"/transitions/{number}/meetings", data={
        "csrf_token": csrf, "kind": "start_up", "scheduled_at": "next Tuesday"},
        follow_redirects=True)
    assert bad.status_code == 200, bad.text


def test_transition_page_shows_people_by_name_and_states_in_words(app, client, make_token,
                                                                   people):
    with app.app_context(), app.extensions["itsm"].Session() as session:
        for email, name in ((PM, "Pat Morgan"), (SM, "Sam Reyes")):
            session.scalar(select(User).where(User.email == email)).name = name
        session.commit()
    make_token("viewer@it.example", password=PASSWORD)
    number = open_transition(client, people[PM])["number"]
    item = overview(client, people[PM], number)["checklist"][0]
    assert client.post(f"{API}/{number}/deliverables/{item['id']}/submit", headers=people[PM],
                       json={"evidence_kind": "link", "evidence": "https://wiki.example/x"}
                       ).status_code == 200
    token = TOKEN.search(client.get("/login").text).group(1)
    client.post("/login", data={"email": "viewer@it.example", "password": PASSWORD,
                                "csrf_token": token})
    page = client.get(f"/transitions/{number}").text
    text = " ".join(page.split())
    assert "<dt>Project manager</dt><dd>Pat Morgan</dd>" in text
    assert "<dt>Service manager</dt><dd>Sam Reyes" in text
    assert "the service manager Sam Reyes has not accepted responsibility" in page
    assert "(owner Pat Morgan, approver Sam Reyes)" in page
    # No address where a name belongs; the roles table keeps addresses as contacts.
    assert page.count(PM) == 1 and page.count(SM) == 1
    assert '<span class="state state-submitted">Waiting for approval</span>' in page
    assert '<span class="state state-open">Not submitted</span>' in page
    assert '<span class="gate gate-blocked">Blocked</span>' in page
    assert "<dt>State</dt><dd>Planning</dd>" in text
    for code in (">open<", ">submitted<", ">blocked<", ">planning<"):
        assert code not in page
    board = client.get("/transitions").text
    assert "Hosting 2027 · Planning" in board and ">Blocked<" in board
    # Every cell is labelled for the stacked phone layout.
    cells = board.split("<td")[1:]
    assert cells and all('data-label="' in cell.split(">")[0] for cell in cells)


def test_cli_lists_shows_what_is_missing_and_fails_in_one_line(client, runner, people):
    number = open_transition(client, people[PM])["number"]
    listed = runner.invoke(["transitions", "list"])
    assert listed.exit_code == 0 and number in listed.output and "blocked" in listed.output
    shown = runner.invoke(["transitions", "show", number])
    assert shown.exit_code == 0 and ACCEPTANCE in shown.output
    missing = runner.invoke(["transitions", "show", "TRN9999999"])
    assert missing.exit_code != 0 and len(missing.output.strip().splitlines()) == 1
    assert "default: 9 deliverables" in runner.invoke(["transitions", "templates"]).output
    assert runner.invoke(["transitions", "remind"]).exit_code == 0


class TestWithoutCatalog:
    @pytest.fixture
    def itsm_plugins(self):
        return [gate_plugin]

    def test_the_gate_works_and_the_service_goes_live_on_its_own(self, app, client, people):
        number = open_transition(client, people[PM], service="Video conferencing")["number"]
        data = overview(client, people[PM], number)
        assert data["catalog_enabled"] is False and data["catalog"] is None
        assert go_live(client, people[PM], number).status_code == 409
        deliver(client, people, number, data["checklist"])
        client.post(f"{API}/{number}/acceptance", headers=people[SM])
        live = go_live(client, people[PM], number)
        assert live.status_code == 200 and live.json["state"] == "early_life"
        state = app.extensions["itsm"]
        with app.app_context(), state.Session() as session:
            notes = session.scalars(select(JournalEntry.body).where(
                JournalEntry.kind == "work_noted")).all()
        assert any("No service catalog knows it" in n for n in notes)


class TestEarlyLifeSupport:
    @pytest.fixture
    def itsm_plugins(self):
        import itsm.plugins.incident as incident_plugin

        return [incident_plugin, gate_plugin]

    def test_incidents_of_the_new_service_are_flagged_and_reported_to_the_project(
            self, app, client, people):
        number = open_transition(client, people[PM], service="Video conferencing")["number"]
        deliver(client, people, number, overview(client, people[PM], number)["checklist"])
        client.post(f"{API}/{number}/acceptance", headers=people[SM])
        assert go_live(client, people[PM], number).status_code == 200
        incident = client.post("/api/v1/incidents", headers=people[OPS], json={
            "title": "Calls drop after ten minutes", "impact": 2, "urgency": 2,
            "affected_service": "video conferencing"})
        assert incident.status_code == 201, incident.json
        other = client.post("/api/v1/incidents", headers=people[OPS], json={
            "title": "Printer jam", "impact": 3, "urgency": 3, "affected_service": "Printing"})
        report = client.get(f"{API}/{number}/report", headers=people[PM]).json
        assert [i["number"] for i in report["early_life_incidents"]] == [
            incident.json["number"]]
        assert report["in_early_life"] is True
        assert other.json["number"] not in str(report)
        journal = client.get(f"/api/v1/incidents/{incident.json['number']}/journal",
                             headers=people[OPS]).json["items"]
        assert any("Early-life support" in (e.get("body") or "") for e in journal)
        state = app.extensions["itsm"]
        with app.app_context(), state.Session() as session:
            event = session.scalar(select(Event).where(
                Event.name == "transition.early_life_incident"))
            recipients = gate_plugin.itsm_notification_recipients(EventMessage.of(event),
                                                                  session)
        assert [r.address for r in recipients] == [PM]


class TestDemo:
    @pytest.fixture
    def itsm_plugins(self):
        import itsm.plugins.incident as incident_plugin

        return [catalog_plugin, incident_plugin, gate_plugin]

    def test_demo_data_shows_a_blocked_a_live_and_a_planned_transition(self, runner):
        for _ in range(2):  # idempotent
            result = runner.invoke(["demo"])
            assert result.exit_code == 0, result.output
        listed = runner.invoke(["transitions", "list", "--json"])
        gates = {t["service"]: t["gate"] for t in json.loads(listed.output)["items"]}
        # The video transition takes the catalog's "Video meetings" live (one service).
        assert gates == {"Database hosting": "blocked", "Video meetings": "passed",
                         "Digital signatures": "blocked"}
        held = runner.invoke(["catalog", "set-status", "database-hosting", "live"])
        assert held.exit_code != 0 and "operations gate" in held.output
        shown = runner.invoke(["transitions", "show", "TRN0000002"])
        assert "early-life incident" in shown.output


def test_openapi_document_describes_the_transition_routes(client):
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    paths = document.json["paths"]
    assert "/api/v1/transitions" in paths and "/api/v1/transitions/dashboard" in paths
    assert "ServiceTransitionIn" in document.json["components"]["schemas"]


def test_the_default_checklists_template_documents_open_and_a_role_approves(
        app, client, make_token, people):
    number = open_transition(client, people[PM])["number"]
    checklist = overview(client, people[PM], number)["checklist"]
    knowledge = next(i for i in checklist if i["title"] == "Service desk knowledge documents")
    contacts = next(i for i in checklist if i["title"] == "Contact details")
    # Nobody holds the role yet: the service manager approves meanwhile.
    assert (knowledge["approver_role"], knowledge["approver"]) == ("Service desk lead", SM)
    added = client.post(f"{API}/{number}/roles", headers=people[PM], json={
        "role": "Service desk lead", "name": "Olu Ops", "email": OPS})
    assert added.status_code == 201, added.json
    checklist = overview(client, people[PM], number)["checklist"]
    by_title = {i["title"]: i for i in checklist}
    assert by_title["Service desk knowledge documents"]["approver"] == OPS
    assert by_title["Contact details"]["approver"] == SM  # no role named: as before
    client.post(f"{API}/{number}/deliverables/{knowledge['id']}/submit", headers=people[PM],
                json={"evidence_kind": "link", "evidence": "https://wiki.example/kb"})
    assert client.post(f"{API}/{number}/deliverables/{knowledge['id']}/decision",
                       headers=people[SM], json={"decision": "approve"}).status_code == 403
    assert client.post(f"{API}/{number}/deliverables/{knowledge['id']}/decision",
                       headers=people[OPS], json={"decision": "approve"}).status_code == 200

    make_token("reader@it.example", password=PASSWORD)
    token = TOKEN.search(client.get("/login").text).group(1)
    client.post("/login", data={"email": "reader@it.example", "password": PASSWORD,
                                "csrf_token": token})
    for item in (knowledge, contacts):
        document = client.get(item["document_url"])
        assert document.status_code == 200, item["document_url"]
        assert document.mimetype == "text/markdown"
        assert document.text.startswith("# ")
    assert client.get("/transitions/templates/other.md").status_code == 404
