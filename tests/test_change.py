"""Change management: risk, CAB quorum, calendar, freeze windows, standard and emergency
changes, failed changes and the incidents they caused, and the deployment gate.

The sample "tickets" plugin plays incident management here (``incident_type =
"ticket"``); tests/test_change_incident.py runs with the real incident plugin and without
any."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
import sample_plugin
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import itsm.plugins.change
from itsm.core.models import Delivery, utcnow
from itsm.testing import schema_drift

CAB = "Change advisory board"
MANAGERS = "Change managers"
EMERGENCY = "Emergency CAB"
LOW = {"users_affected": "few", "complexity": "routine", "tested": "yes",
       "backout": "minutes"}
MEDIUM = {"users_affected": "department", "complexity": "moderate", "tested": "partly",
          "backout": "minutes"}
HIGH = {"users_affected": "agency", "complexity": "complex", "tested": "no",
        "backout": "hours"}


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, itsm.plugins.change]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.change.incident_type": "ticket",
            "plugins.change.service_owners": {"E-mail": ["mail.owner@example.org"]}}


@pytest.fixture
def people(make_token, runner):
    """An owner, three CAB members, a change manager, an emergency approver, an admin."""
    made = {name: make_token(f"{name}@example.org", role="agent")
            for name in ("olivia", "carl", "cara", "cody", "mona", "erin")}
    made["admin"] = make_token("admin@example.org", role="admin")
    for group, names in ((CAB, ("carl", "cara", "cody")), (MANAGERS, ("mona",)),
                         (EMERGENCY, ("erin",))):
        for name in names:
            result = runner.invoke(["groups", "add-member", group,
                                    f"{name}@example.org"])
            assert result.exit_code == 0, result.output
    return made


def at(days: float, hours: float = 0):
    moment = utcnow().replace(microsecond=0) + timedelta(days=days, hours=hours)
    return moment.isoformat()


def new_change(client, headers, **fields):
    body = {"title": "Upgrade the mail gateway", "services": ["E-mail"],
            "config_items": ["mailgw01"], "reason": "Vendor support ends.",
            "implementation_plan": "Upgrade node 2, fail over, upgrade node 1.",
            "backout_plan": "Fail back to the old node.", "test_plan": "Send test mail.",
            "planned_start": at(10), "planned_end": at(10, 2), **fields}
    response = client.post("/api/v1/changes", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def run(client, headers, number, name, **fields):
    return client.post(f"/api/v1/changes/{number}/transitions", headers=headers,
                       json={"name": name, "fields": fields})


def to_cab(client, headers, answers, **fields):
    change = new_change(client, headers, **fields)
    assert run(client, headers, change["number"], "submit").status_code == 200
    assessed = run(client, headers, change["number"], "assess", risk_answers=answers)
    assert assessed.status_code == 200, assessed.json
    return assessed.json


def pending_for(client, headers, number):
    items = client.get("/api/v1/changes/approvals", headers=headers).json["items"]
    return [a for a in items if a["change"] == number]


def decide(client, headers, number, decision="approve", comment="", purpose="cab"):
    [approval] = [a for a in pending_for(client, headers, number) if a["purpose"] == purpose]
    return client.post(f"/api/v1/changes/approvals/{approval['id']}", headers=headers,
                       json={"decision": decision, "comment": comment})


def overview(client, headers, number):
    response = client.get(f"/api/v1/changes/{number}/overview", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


# -- normal changes: risk, CAB, quorum, calendar ----------------------------------------------


def test_normal_change_goes_through_risk_assessment_cab_quorum_and_calendar(client, people):
    owner = people["olivia"]
    change = new_change(client, owner)
    number = change["number"]
    assert number.startswith("CHG") and change["state"] == "draft"
    assert change["change_type"] == "normal"

    refused = run(client, owner, number, "schedule")
    assert refused.status_code == 409
    assert any("a normal change needs CAB approval first" in r
               for r in refused.json["error"]["reasons"])

    assert run(client, owner, number, "submit").json["state"] == "assessment"
    partial = run(client, owner, number, "assess", risk_answers={"users_affected": "few"})
    assert partial.status_code == 409
    assert any("'tested' is not answered" in r for r in partial.json["error"]["reasons"])
    wrong = run(client, owner, number, "assess", risk_answers={**MEDIUM, "tested": "maybe"})
    assert any("'maybe' is not one of" in r for r in wrong.json["error"]["reasons"])

    assessed = run(client, owner, number, "assess", risk_answers=MEDIUM)
    assert assessed.status_code == 200, assessed.json
    assert assessed.json["state"] == "cab_review"
    assert (assessed.json["risk_score"], assessed.json["risk_level"]) == (4, "medium")
    info = overview(client, owner, number)
    assert [(g["group"], g["quorum"], g["members"], g["needed"])
            for g in info["approval"]["groups"]] == [(CAB, "majority", 3, 2)]
    assert not info["approved"]

    refused = run(client, owner, number, "schedule")
    assert refused.status_code == 409
    assert f"{number} awaits CAB approval: {CAB} has 0 of 2 approvals needed (majority)" \
        in refused.json["error"]["reasons"]
    # The owner cannot vote; the transitions list shows the same reason.
    assert pending_for(client, owner, number) == []
    listed = client.get(f"/api/v1/changes/{number}/transitions", headers=owner).json
    assert "schedule" in str(listed) and "awaits CAB approval" in str(listed)

    assert decide(client, people["carl"], number, comment="Fine by me").json["state"] \
        == "approved"
    assert "1 of 2" in run(client, owner, number, "schedule").json["error"]["reasons"][0]
    assert decide(client, people["cara"], number).status_code == 200
    # The quorum is reached: the third member's vote is no longer asked for.
    assert pending_for(client, people["cody"], number) == []
    scheduled = run(client, owner, number, "schedule")
    assert scheduled.status_code == 200, scheduled.json
    assert scheduled.json["state"] == "scheduled"

    journal = client.get(f"/api/v1/changes/{number}/journal", headers=owner).json
    assert "carl@example.org" in str(journal) and "quorum reached" in str(journal)

    # The calendar shows it, and a second change on the same CI conflicts with it.
    other = new_change(client, owner, title="Patch mailgw01", services=["Backups"],
                       planned_start=at(10, 1), planned_end=at(10, 3))
    run(client, owner, other["number"], "submit")
    start = (utcnow() + timedelta(days=9)).date().isoformat()
    end = (utcnow() + timedelta(days=12)).date().isoformat()
    calendar = client.get(f"/api/v1/changes/calendar?from={start}&to={end}",
                          headers=owner).json
    by_number = {c["number"]: c for c in calendar["changes"]}
    assert set(by_number) == {number, other["number"]}
    assert by_number[number]["conflicts"] == [other["number"]]
    assert overview(client, owner, other["number"])["conflicts"][0]["config_items"] \
        == ["mailgw01"]
    far = client.get("/api/v1/changes/calendar?from=2001-01-01&to=2001-02-01",
                     headers=owner).json
    assert far["changes"] == []


def test_high_risk_needs_the_whole_cab_and_one_rejection_rejects(client, people):
    owner = people["olivia"]
    change = to_cab(client, owner, HIGH)
    number = change["number"]
    assert change["risk_level"] == "high"
    assert overview(client, owner, number)["approval"]["groups"][0]["needed"] == 3

    no_reason = decide(client, people["carl"], number, "reject")
    assert no_reason.status_code == 422
    assert no_reason.json["error"]["fields"] == {"comment": ["required to reject"]}
    assert decide(client, people["carl"], number).status_code == 200
    rejected = decide(client, people["cara"], number, "reject", "No tested backout.")
    assert rejected.status_code == 200
    record = client.get(f"/api/v1/changes/{number}", headers=owner).json
    assert record["state"] == "rejected"
    assert pending_for(client, people["cody"], number) == []
    again = decide_any(client, people["cara"], number)
    assert again.status_code == 404

    # Revised and resubmitted, the change asks the CAB again from scratch.
    assert run(client, owner, number, "revise").json["state"] == "draft"
    assert run(client, owner, number, "submit").status_code == 200
    assert run(client, owner, number, "assess", risk_answers=LOW).status_code == 200
    info = overview(client, owner, number)
    assert [g["group"] for g in info["approval"]["groups"]] == [MANAGERS]
    assert info["approval"]["state"] == "pending"


def decide_any(client, headers, number):
    return client.post("/api/v1/changes/approvals/999999", headers=headers,
                       json={"decision": "approve"})


def test_only_the_approver_decides_and_bad_decisions_are_refused(client, people):
    number = to_cab(client, people["olivia"], LOW)["number"]
    [approval] = pending_for(client, people["mona"], number)
    url = f"/api/v1/changes/approvals/{approval['id']}"
    assert client.post(url, headers=people["carl"],
                       json={"decision": "approve"}).status_code == 404
    bad = client.post(url, headers=people["mona"], json={"decision": "maybe"})
    assert bad.status_code == 422 and "decision" in bad.json["error"]["fields"]
    assert client.post(url, headers=people["mona"], data="x").status_code in (415, 422)
    assert client.post(url, headers=people["mona"],
                       json={"decision": "approve"}).status_code == 200
    assert client.post(url, headers=people["mona"],
                       json={"decision": "approve"}).status_code == 409


def test_assessment_is_refused_without_approvers(client, people, runner):
    result = runner.invoke(["groups", "remove-member", MANAGERS, "mona@example.org"])
    assert result.exit_code == 0, result.output
    change = new_change(client, people["olivia"])
    run(client, people["olivia"], change["number"], "submit")
    refused = run(client, people["olivia"], change["number"], "assess", risk_answers=LOW)
    assert refused.status_code == 409
    assert any(f"CAB group '{MANAGERS}'" in r and "has no approvers" in r
               for r in refused.json["error"]["reasons"])


# -- freeze windows -------------------------------------------------------------------------------


def test_scheduling_into_a_freeze_window_needs_an_emergency_approval(client, people):
    owner, admin = people["olivia"], people["admin"]
    made = client.post("/api/v1/changes/freeze-windows", headers=admin, json={
        "name": "Budget close", "starts_at": at(9), "ends_at": at(12),
        "services": ["E-mail"], "reason": "Finance closes the books."})
    assert made.status_code == 201, made.json
    change = to_cab(client, owner, LOW)
    number = change["number"]
    info = overview(client, owner, number)
    assert info["freeze_windows"] == ["Budget close"]
    assert info["freeze_approval"]["state"] == "pending"  # asked for automatically
    assert decide(client, people["mona"], number).status_code == 200

    refused = run(client, owner, number, "schedule")
    assert refused.status_code == 409
    [reason] = refused.json["error"]["reasons"]
    assert "freeze window 'Budget close'" in reason and "awaiting the emergency approval" \
        in reason
    assert decide(client, people["erin"], number, purpose="freeze").status_code == 200
    assert run(client, owner, number, "schedule").json["state"] == "scheduled"

    # A change of another service is not frozen; one outside the window needs nothing.
    free = new_change(client, owner, services=["Printing"], config_items=[])
    assert overview(client, owner, free["number"])["freeze_windows"] == []
    asked = client.post(f"/api/v1/changes/{free['number']}/freeze-exception", headers=owner)
    assert asked.status_code == 409


def test_moving_a_scheduled_change_into_a_freeze_blocks_implementation(client, people):
    owner, admin = people["olivia"], people["admin"]
    number = to_cab(client, owner, LOW)["number"]
    decide(client, people["mona"], number)
    assert run(client, owner, number, "schedule").status_code == 200
    client.post("/api/v1/changes/freeze-windows", headers=admin, json={
        "name": "Elections", "starts_at": at(20), "ends_at": at(25)})
    moved = client.patch(f"/api/v1/changes/{number}", headers=owner,
                         json={"planned_start": at(21), "planned_end": at(21, 1)})
    assert moved.status_code == 200, moved.json
    refused = run(client, owner, number, "implement")
    assert refused.status_code == 409
    reasons = " ".join(refused.json["error"]["reasons"])
    # The approval was for the old window: the CAB is asked again, and the freeze
    # approvers too, without anyone having to ask.
    assert "awaits CAB approval" in reasons and "emergency approval" in reasons
    assert [a["purpose"] for a in pending_for(client, people["erin"], number)] == ["freeze"]
    decide(client, people["mona"], number)
    still = run(client, owner, number, "implement")
    assert "emergency approval" in " ".join(still.json["error"]["reasons"])
    decide(client, people["erin"], number, purpose="freeze")
    assert run(client, owner, number, "implement").json["state"] == "implementing"


def test_moving_an_approved_window_asks_the_cab_again(client, people):
    owner = people["olivia"]
    number = to_cab(client, owner, LOW)["number"]
    decide(client, people["mona"], number)
    assert run(client, owner, number, "schedule").status_code == 200
    assert client.patch(f"/api/v1/changes/{number}", headers=owner,
                        json={"planned_start": at(12), "planned_end": at(12, 3)}
                        ).status_code == 200
    refused = run(client, owner, number, "implement")
    assert refused.status_code == 409
    assert "awaits CAB approval" in " ".join(refused.json["error"]["reasons"])
    assert len(pending_for(client, people["mona"], number)) == 1
    rejected = decide(client, people["mona"], number, "reject", "not during the audit")
    assert rejected.status_code == 200, rejected.json
    assert run(client, owner, number, "implement").status_code == 409
    assert client.get(f"/api/v1/changes/{number}", headers=owner).json["state"] == "scheduled"
    assert client.patch(f"/api/v1/changes/{number}", headers=owner,
                        json={"planned_start": at(14), "planned_end": at(14, 3)}
                        ).status_code == 200
    decide(client, people["mona"], number)
    done = run(client, owner, number, "implement")
    assert done.status_code == 200, done.json
    assert done.json["state"] == "implementing"


# -- standard and emergency changes ---------------------------------------------------------------


def test_standard_change_from_a_template_skips_the_cab(client, people):
    owner = people["olivia"]
    response = client.post("/api/v1/changes", headers=owner, json={
        "title": "Renew the portal certificate", "template": "tls-certificate-renewal",
        "services": ["Portal"], "planned_start": at(2), "planned_end": at(2, 1)})
    assert response.status_code == 201, response.json
    change = response.json
    assert change["change_type"] == "standard" and change["risk_level"] == "low"
    assert change["backout_plan"].startswith("Restore the previous certificate")
    number = change["number"]

    refused = run(client, owner, number, "submit")
    assert refused.status_code == 409
    assert "pre-approved" in refused.json["error"]["reasons"][0]
    scheduled = run(client, owner, number, "schedule")
    assert scheduled.status_code == 200, scheduled.json
    info = overview(client, owner, number)
    assert info["approved"] and info["approvals"] == []
    assert run(client, owner, number, "implement").json["state"] == "implementing"

    unknown = client.post("/api/v1/changes", headers=owner, json={
        "title": "Something", "change_type": "standard", "template": "no-such-thing"})
    assert unknown.status_code == 422
    assert unknown.json["error"]["fields"]["template"] == [
        "no active standard change template of this name"]
    mixed = client.post("/api/v1/changes", headers=owner, json={
        "title": "Something", "change_type": "emergency", "template": "workstation-patching"})
    assert mixed.status_code == 422 and "template" in mixed.json["error"]["fields"]
    bad = client.post("/api/v1/changes", headers=owner, json={
        "title": "x", "change_type": "sideways", "planned_start": "tomorrow"})
    assert bad.status_code == 422
    assert {"change_type", "planned_start"} <= set(bad.json["error"]["fields"])


def test_unapproved_emergency_change_is_named_in_plain_english(client, people):
    owner = people["olivia"]
    number = new_change(client, owner, change_type="emergency")["number"]
    refused = run(client, owner, number, "schedule")
    assert refused.status_code == 409
    assert any("an emergency change needs CAB approval first" in r
               for r in refused.json["error"]["reasons"])


def test_emergency_change_uses_the_emergency_cab_even_in_a_freeze(client, people):
    owner, admin = people["olivia"], people["admin"]
    client.post("/api/v1/changes/freeze-windows", headers=admin, json={
        "name": "Year end", "starts_at": at(-1), "ends_at": at(30)})
    change = to_cab(client, owner, HIGH, change_type="emergency",
                    planned_start=at(0, 1), planned_end=at(0, 3))
    number = change["number"]
    info = overview(client, owner, number)
    assert [(g["group"], g["quorum"]) for g in info["approval"]["groups"]] == [
        (EMERGENCY, "any")]
    assert info["freeze_approval"]["state"] == "none"  # its own approval is the emergency one
    assert pending_for(client, people["carl"], number) == []
    assert decide(client, people["erin"], number, comment="Go").status_code == 200
    assert run(client, owner, number, "schedule").json["state"] == "scheduled"


# -- implementation, failure, review --------------------------------------------------------------


def test_failed_change_is_backed_out_and_links_the_incidents_it_caused(client, people):
    owner = people["olivia"]
    number = to_cab(client, owner, LOW)["number"]
    decide(client, people["mona"], number)
    for name in ("schedule", "implement"):
        assert run(client, owner, number, name).status_code == 200
    failed = run(client, owner, number, "fail")
    assert failed.json["state"] == "failed"
    assert failed.json["actual_start"] and failed.json["actual_end"]
    assert run(client, owner, number, "back_out").json["state"] == "backout"
    assert run(client, owner, number, "finish_backout").json["state"] == "review"

    ticket = client.post("/api/v1/tickets", headers=owner,
                         json={"title": "Mail bounces since the upgrade"}).json["number"]
    linked = client.post(f"/api/v1/changes/{number}/incidents", headers=owner,
                         json={"incident": ticket})
    assert linked.status_code == 201, linked.json
    not_incident = client.post(f"/api/v1/changes/{number}/incidents", headers=owner,
                               json={"incident": number})
    assert not_incident.status_code == 422
    assert client.post(f"/api/v1/changes/{number}/incidents", headers=owner,
                       json={}).json["error"]["fields"] == {
        "incident": ["Missing data for required field."]}
    info = overview(client, owner, number)
    assert [r["number"] for r in info["incidents_caused"]] == [ticket]
    links = client.get(f"/api/v1/tickets/{ticket}/links", headers=owner).json
    assert "caused by change" in str(links)

    refused = run(client, owner, number, "close")
    assert refused.status_code == 409
    assert "review_outcome is required to close after review" in \
        refused.json["error"]["reasons"]
    closed = run(client, owner, number, "close", review_outcome="failed",
                 lessons="Test the firmware first.")
    assert closed.json["state"] == "closed"

    report = client.get("/api/v1/changes/reports/summary?days=30", headers=owner).json
    assert report["reviewed"] == 1 and report["outcomes"]["failed"] == 1
    assert report["success_rate"] == 0.0
    assert report["changes_causing_incidents"] == [{
        "number": number, "title": "Upgrade the mail gateway", "review_outcome": "failed",
        "incidents": [ticket]}]


def test_reports_give_success_rate_and_emergency_share(client, people, runner):
    owner = people["olivia"]
    for kind, outcome in (("normal", "success"), ("emergency", "success"),
                          ("normal", "partial"), ("normal", "success")):
        number = to_cab(client, owner, LOW, change_type=kind)["number"]
        approver = people["erin"] if kind == "emergency" else people["mona"]
        decide(client, approver, number)
        for name in ("schedule", "implement", "complete"):
            assert run(client, owner, number, name).status_code == 200
        run(client, owner, number, "close", review_outcome=outcome, lessons="ok")
    report = client.get("/api/v1/changes/reports/summary", headers=owner).json
    assert (report["created"], report["reviewed"]) == (4, 4)
    assert report["success_rate"] == 75.0 and report["emergency_share"] == 25.0
    assert client.get("/api/v1/changes/reports/summary?days=0",
                      headers=owner).status_code == 422
    text = runner.invoke(["changes", "report", "--days", "30"])
    assert text.exit_code == 0 and "success rate      75.0 %" in text.output
    as_json = runner.invoke(["changes", "report", "--json"])
    assert '"emergency_share": 25.0' in as_json.output


# -- the deployment gate ---------------------------------------------------------------------------


def gate(client, headers, service="Portal", environment="production"):
    return client.get(f"/api/v1/changes/gate?service={service}&environment={environment}",
                      headers=headers)


def test_gate_answers_yes_only_inside_an_approved_window(client, people, runner, make_token):
    owner = people["olivia"]
    pipeline = make_token("ci@example.org", role="pipeline")
    refused = gate(client, pipeline)
    assert refused.status_code == 200 and refused.json["allowed"] is False
    assert "no approved change of 'Portal' in 'production'" in refused.json["reasons"][0]

    now = client.post("/api/v1/changes", headers=owner, json={
        "title": "Deploy portal 4.2", "template": "tls-certificate-renewal",
        "services": ["Portal"], "planned_start": at(0, -1), "planned_end": at(0, 1)}).json
    later = client.post("/api/v1/changes", headers=owner, json={
        "title": "Deploy portal 4.3", "template": "tls-certificate-renewal",
        "services": ["Portal"], "planned_start": at(3), "planned_end": at(3, 1)}).json
    not_yet = gate(client, pipeline).json
    assert not_yet["allowed"] is False  # approved (standard) but not scheduled yet
    assert any("not scheduled" in r for r in not_yet["reasons"])

    run(client, owner, now["number"], "schedule")
    run(client, owner, later["number"], "schedule")
    allowed = gate(client, pipeline)
    assert allowed.json["allowed"] is True and allowed.json["change"] == now["number"]
    assert "is approved and its window is open" in allowed.json["reasons"][0]
    assert gate(client, pipeline, environment="staging").json["allowed"] is False
    assert gate(client, pipeline, service="Payroll").json["allowed"] is False

    ok = runner.invoke(["changes", "gate", "--service", "Portal", "--environment",
                        "production"])
    assert ok.exit_code == 0 and ok.output.startswith("allowed")
    no = runner.invoke(["changes", "gate", "--service", "Portal", "--environment", "test"])
    assert no.exit_code == 1 and no.output.startswith("refused")
    assert "no approved change" in no.output

    # A freeze window closes the gate.
    client.post("/api/v1/changes/freeze-windows", headers=people["admin"], json={
        "name": "Incident freeze", "starts_at": at(0, -2), "ends_at": at(0, 2),
        "services": ["Portal"]})
    frozen = gate(client, pipeline).json
    assert frozen["allowed"] is False
    assert "inside freeze window 'Incident freeze'" in " ".join(frozen["reasons"])

    calls = overview(client, owner, now["number"])["gate_calls"]
    assert len(calls) >= 3 and calls[0]["allowed"] is False
    assert calls[0]["caller"] == "ci@example.org"
    assert any(c["allowed"] and c["caller"] == "system" for c in calls)

    # A change awaiting the CAB does not open the gate either.
    waiting = to_cab(client, owner, LOW, services=["Payroll"], planned_start=at(0, -1),
                     planned_end=at(0, 1))
    payroll = gate(client, pipeline, service="Payroll").json
    assert payroll["allowed"] is False and payroll["change"] == waiting["number"]
    assert any("awaits CAB approval" in r for r in payroll["reasons"])


def test_gate_refuses_bad_input_and_people_without_the_right(client, people, make_token,
                                                              runner):
    missing = client.get("/api/v1/changes/gate?service=Portal", headers=people["olivia"])
    assert missing.status_code == 422
    assert missing.json["error"]["fields"] == {
        "environment": ["required, at most 64 characters"]}
    pat = make_token("pat@dot.example.org", role="requester", agency="DOT")
    assert gate(client, pat).status_code == 403
    assert client.get("/api/v1/changes/gate?service=a&environment=b").status_code == 401
    result = runner.invoke(["changes", "gate", "--service", "", "--environment", "x"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "Error: the gate needs service and environment" in result.output


# -- admin catalogs, defaults, notifications, schema ---------------------------------------------


def test_admins_manage_the_catalogs_through_the_api_and_the_cli(client, people, runner):
    admin, agent = people["admin"], people["olivia"]
    template = {"name": "restart-app", "title": "Restart an application server",
                "implementation_plan": "Drain, restart, undrain.",
                "backout_plan": "None needed.", "services": ["Portal"]}
    assert client.post("/api/v1/changes/templates", headers=agent,
                       json=template).status_code == 403
    made = client.post("/api/v1/changes/templates", headers=admin, json=template)
    assert made.status_code == 201 and made.json["risk_level"] == "low"
    assert client.post("/api/v1/changes/templates", headers=admin,
                       json=template).status_code == 409
    invalid = client.post("/api/v1/changes/cab-rules", headers=admin, json={
        "name": "x", "group": "Nobody", "quorum": "most", "colour": "red"})
    assert invalid.status_code == 422
    assert set(invalid.json["error"]["fields"]) == {"quorum", "colour"}
    unknown_group = client.post("/api/v1/changes/cab-rules", headers=admin, json={
        "name": "x", "group": "Nobody"})
    assert unknown_group.json["error"]["fields"] == {"group": ["unknown group"]}
    backwards = client.post("/api/v1/changes/freeze-windows", headers=admin, json={
        "name": "x", "starts_at": at(2), "ends_at": at(1)})
    assert backwards.json["error"]["fields"] == {"ends_at": ["must come after starts_at"]}
    names = [t["name"] for t in client.get("/api/v1/changes/templates",
                                           headers=agent).json["items"]]
    assert "restart-app" in names
    off = client.patch("/api/v1/changes/templates/restart-app", headers=admin,
                       json={"active": False})
    assert off.status_code == 200 and off.json["active"] is False
    refused = client.post("/api/v1/changes", headers=agent, json={
        "title": "Restart", "template": "restart-app"})
    assert refused.status_code == 422
    assert client.delete("/api/v1/changes/templates/restart-app",
                         headers=admin).status_code == 204
    assert client.delete("/api/v1/changes/templates/restart-app",
                         headers=admin).status_code == 404

    added = runner.invoke(["changes", "risk-questions", "add",
                           '{"key": "weekend", "text": "Done at the weekend?", '
                           '"options": {"yes": 0, "no": 2}}'])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(["changes", "risk-questions", "list"])
    assert "weekend" in listed.output and "users_affected" in listed.output
    bad = runner.invoke(["changes", "freeze-windows", "add", '{"name": "x"}'])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert "starts_at" in bad.output
    not_json = runner.invoke(["changes", "templates", "add", "{nope"])
    assert not_json.exit_code == 1 and "not valid JSON" in not_json.output
    removed = runner.invoke(["changes", "risk-questions", "remove", "weekend"])
    assert removed.exit_code == 0
    members = runner.invoke(["groups", "members", CAB])
    assert members.output.split() == ["cara@example.org", "carl@example.org",
                                      "cody@example.org"]
    nobody = runner.invoke(["groups", "add-member", CAB, "ghost@example.org"])
    assert nobody.exit_code == 1 and "no user" in str(nobody.exception)


def test_install_defaults_are_idempotent(app):
    from itsm.plugins.change import demo
    from itsm.plugins.change.models import CabRule, ChangeTemplate, RiskQuestion

    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        counts = [session.scalar(select(func.count()).select_from(m))
                  for m in (CabRule, ChangeTemplate, RiskQuestion)]
        demo.install_defaults(session)
        demo.install_defaults(session)
        session.commit()
        again = [session.scalar(select(func.count()).select_from(m))
                 for m in (CabRule, ChangeTemplate, RiskQuestion)]
    assert counts == again == [5, 2, 4]


def test_owner_and_approvers_are_notified(app, client, people):
    owner = people["olivia"]
    number = to_cab(client, owner, LOW)["number"]
    decide(client, people["mona"], number)
    with app.app_context():
        app.extensions["itsm"].outbox.drain()
        with app.extensions["itsm"].Session() as session:
            sent = set(session.execute(select(Delivery.channel, Delivery.recipient)))
    assert ("log", "mona@example.org") in sent  # asked to approve
    assert ("log", "olivia@example.org") in sent  # the requester/owner hears the decision


def test_service_owners_hear_of_changes_to_their_service(app, client, people):
    new_change(client, people["olivia"])
    itsm = app.extensions["itsm"]
    with app.app_context():
        itsm.outbox.drain()
        with itsm.Session() as session:
            sent = set(session.scalars(select(Delivery.recipient)))
    assert "mail.owner@example.org" in sent


def test_migration_creates_exactly_what_the_models_describe(app):
    tables = ["change_request", "change_template", "change_cab_rule", "change_freeze_window",
              "change_risk_question", "change_approval", "change_gate_call"]
    assert schema_drift(app.extensions["itsm"].engine, tables) == []


def test_bad_calendar_periods_answer_422_and_the_routes_are_documented(client, people):
    agent = people["olivia"]
    for query in ("from=2026-13-01", "from=2026-01-01&to=2025-01-01",
                  "from=2020-01-01&to=2026-01-01"):
        response = client.get(f"/api/v1/changes/calendar?{query}", headers=agent)
        assert response.status_code == 422, query
        assert response.json["error"]["fields"]
    assert client.get("/api/v1/changes/CHG9999999/overview", headers=agent).status_code \
        == 404
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"/api/v1/changes/gate", "/api/v1/changes/calendar",
            "/api/v1/changes/approvals", "/api/v1/changes/reports/summary"} <= set(paths)


# -- approvals bound to what the CAB approved ------------------------------------------------------


def approved_now(client, people, services, environment, **fields):
    """A normal change approved by the CAB for ``services`` in ``environment`` with its
    window open now, scheduled."""
    owner = people["olivia"]
    number = to_cab(client, owner, LOW, services=services, environment=environment,
                    planned_start=at(0, -1), planned_end=at(0, 2), **fields)["number"]
    assert decide(client, people["mona"], number).status_code == 200
    assert run(client, owner, number, "schedule").status_code == 200
    return number


def test_scope_edited_while_implementing_is_refused_and_the_gate_stays_shut(
        client, people, make_token):
    owner, pipeline = people["olivia"], make_token("ci@example.org", role="pipeline")
    number = approved_now(client, people, ["reporting"], "staging")
    assert run(client, owner, number, "implement").json["state"] == "implementing"
    assert gate(client, pipeline, "reporting", "staging").json["allowed"] is True

    widened = client.patch(f"/api/v1/changes/{number}", headers=owner, json={
        "services": ["reporting", "core-banking"], "environment": "production",
        "planned_end": at(30)})
    assert widened.status_code == 409, widened.json
    message = widened.json["error"]["message"]
    assert "services, environment, planned_end may no longer change" in message
    stored = client.get(f"/api/v1/changes/{number}", headers=owner).json
    assert (stored["services"], stored["environment"]) == (["reporting"], "staging")
    refused = gate(client, pipeline, "core-banking", "production").json
    assert refused["allowed"] is False
    assert gate(client, pipeline, "reporting", "staging").json["allowed"] is True
    # The plans are in scope too; what is not in scope still changes.
    assert client.patch(f"/api/v1/changes/{number}", headers=owner, json={
        "backout_plan": "Hope."}).status_code == 409
    assert client.patch(f"/api/v1/changes/{number}", headers=owner, json={
        "title": "Reporting release 7"}).status_code == 200


def test_scope_edited_when_scheduled_supersedes_the_approval_in_the_journal(
        client, people, make_token):
    owner, pipeline = people["olivia"], make_token("ci@example.org", role="pipeline")
    number = approved_now(client, people, ["reporting"], "staging")
    moved = client.patch(f"/api/v1/changes/{number}", headers=owner, json={
        "services": ["core-banking", "reporting"], "environment": "production"})
    assert moved.status_code == 200, moved.json
    journal = str(client.get(f"/api/v1/changes/{number}/journal", headers=owner).json)
    assert "CAB approval of " in journal
    assert "superseded: services, environment changed" in journal
    assert gate(client, pipeline, "core-banking", "production").json["allowed"] is False
    refused = run(client, owner, number, "implement")
    assert refused.status_code == 409
    assert "awaits CAB approval" in " ".join(refused.json["error"]["reasons"])
    # Approved again, for the new scope: now that scope is what the gate allows.
    assert decide(client, people["mona"], number).status_code == 200
    assert gate(client, pipeline, "core-banking", "production").json["allowed"] is True
    assert gate(client, pipeline, "reporting", "staging").json["allowed"] is False


def test_schedule_with_another_window_than_the_approved_one_is_refused(client, people):
    owner = people["olivia"]
    number = to_cab(client, owner, LOW)["number"]
    decide(client, people["mona"], number)
    refused = run(client, owner, number, "schedule", planned_start=at(20),
                  planned_end=at(20, 2))
    assert refused.status_code == 409
    assert any("planned_start, planned_end changed since" in r
               for r in refused.json["error"]["reasons"])


def test_gate_compares_the_scope_with_the_approved_digest(app, client, people, make_token):
    # An edit that bypasses the record service (a restore, a database fix) still does not
    # open the gate: the guard compares digests, it does not trust the edit rules alone.
    from itsm.plugins.change.models import Change

    pipeline = make_token("ci@example.org", role="pipeline")
    number = approved_now(client, people, ["reporting"], "staging")
    with app.extensions["itsm"].Session() as session:
        change = session.scalar(select(Change).where(Change.number == number))
        change.services = ["reporting", "core-banking"]
        session.commit()
    refused = gate(client, pipeline, "core-banking", "staging").json
    assert refused["allowed"] is False
    assert any("services changed since" in r for r in refused["reasons"])


def test_standard_change_outside_its_template_is_not_standard(client, people):
    owner = people["olivia"]
    wide = client.post("/api/v1/changes", headers=owner, json={
        "title": "Patch everything", "template": "workstation-patching",
        "services": ["core-banking"], "planned_start": at(1), "planned_end": at(61)})
    assert wide.status_code == 422, wide.json
    assert set(wide.json["error"]["fields"]) == {"services", "planned_end"}
    assert "not core-banking" in wide.json["error"]["fields"]["services"][0]
    staging = client.post("/api/v1/changes", headers=owner, json={
        "title": "Patch", "template": "workstation-patching", "environment": "staging",
        "planned_start": at(1), "planned_end": at(1, 4)})
    assert staging.status_code == 422 and set(staging.json["error"]["fields"]) \
        == {"environment"}
    inside = client.post("/api/v1/changes", headers=owner, json={
        "title": "Patch", "template": "workstation-patching",
        "planned_start": at(1), "planned_end": at(1, 4)})
    assert inside.status_code == 201, inside.json
    number = inside.json["number"]
    later = client.patch(f"/api/v1/changes/{number}", headers=owner, json={
        "services": ["Workstations", "core-banking"]})
    assert later.status_code == 422 and "services" in later.json["error"]["fields"]
    assert run(client, owner, number, "schedule").status_code == 200


EDITS = {
    "widen": lambda p: {"services": [f"{p}-reporting", f"{p}-core-banking"]},
    "production": lambda p: {"environment": "production"},
    "extend": lambda p: {"planned_end": at(30)},
    "later": lambda p: {"planned_start": at(1), "planned_end": at(1, 2)},
    "now": lambda p: {"planned_start": at(0, -1), "planned_end": at(0, 2)},
    "plan": lambda p: {"implementation_plan": "Do it differently."},
}
STEPS = st.lists(st.sampled_from([*EDITS, "approve", "schedule", "implement", "complete",
                                  "fail"]), min_size=1, max_size=6)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
@example(steps=["implement", "widen", "production", "extend"])  # the reproduction
@example(steps=["widen", "approve", "implement", "later", "now"])
def test_gate_allows_only_what_an_approval_covers(client, people, make_token, steps):
    """For any sequence of edits and transitions after approval, the gate allows a
    (service, environment, now) only if the scope of an approval given covers it."""
    owner, mona = people["olivia"], people["mona"]
    pipeline = make_token("ci@example.org", role="pipeline")
    prefix = uuid.uuid4().hex[:8]  # every example has services of its own
    number = approved_now(client, people, [f"{prefix}-reporting"], "staging")
    covered: list[tuple[set[str], str, str, str]] = []

    def remember_approved() -> None:
        change = client.get(f"/api/v1/changes/{number}", headers=owner).json
        covered.append((set(change["services"]), change["environment"],
                        change["planned_start"], change["planned_end"]))

    remember_approved()
    for step in steps:
        if step in EDITS:
            client.patch(f"/api/v1/changes/{number}", headers=owner, json=EDITS[step](prefix))
        elif step == "approve":
            if any(a["purpose"] == "cab" for a in pending_for(client, mona, number)):
                assert decide(client, mona, number).status_code == 200
                remember_approved()
        else:
            run(client, owner, number, step)
        now = utcnow()
        for service in (f"{prefix}-reporting", f"{prefix}-core-banking"):
            for environment in ("staging", "production"):
                if gate(client, pipeline, service, environment).json["allowed"]:
                    assert any(
                        service in services and environment == env
                        and datetime.fromisoformat(start) <= now < datetime.fromisoformat(end)
                        for services, env, start, end in covered), (step, service, environment)
