"""The incident plugin: priority, routing, workflow, escalation, major incidents, closure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

import itsm.plugins.incident as incident_plugin
from itsm.core import sla
from itsm.core.demo import ensure_group
from itsm.core.jobs import run_periodic
from itsm.core.models import (
    Delivery,
    Event,
    GroupMember,
    JournalEntry,
    Record,
    User,
    utcnow,
)
from itsm.core.sla_models import SlaClock
from itsm.plugins.incident.models import Escalation, Incident
from itsm.testing import schema_drift

INCIDENTS = "/api/v1/incidents"


@pytest.fixture
def itsm_plugins():
    return [incident_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    # Clocks around the clock: the tests wait minutes and hours from now, whatever the
    # time of day they run at (office hours would put a P1's breach at tomorrow 08:15).
    return {**itsm_config, "plugins.incident.breach_group": "Major Incident Team",
            "plugins.incident.escalation_contacts": ["service.manager@example.org"],
            "plugins.incident.notify_channels": ["log"], "sla.calendar": "24x7"}


@pytest.fixture
def groups(itsm, agent):
    """Resolver groups; the test agent works in Network and the Service Desk."""
    with itsm.Session() as session:
        made = {name: ensure_group(session, name) for name in (
            "Network", "Service Desk", "Applications", "Major Incident Team")}
        agent_id = session.scalar(select(User.id).where(User.email == "agent@example.org"))
        for name in ("Network", "Service Desk"):
            session.add(GroupMember(group_id=made[name].id, user_id=agent_id))
        session.commit()


@pytest.fixture
def ann(make_token):
    return make_token("ann@north.example", role="requester", agency="NORTH")


def _id(number):
    return select(Record.id).where(Record.number == number).scalar_subquery()


def report(client, headers, **fields):
    body = {"title": "VPN drops every hour", "category": "network", "subcategory": "vpn",
            **fields}
    response = client.post(INCIDENTS, json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def move(client, headers, number, name, status=200, **fields):
    response = client.post(f"{INCIDENTS}/{number}/transitions",
                           json={"name": name, "fields": fields}, headers=headers)
    assert response.status_code == status, response.json
    return response.json


def test_priority_follows_the_impact_urgency_matrix_and_edits(client, agent, admin, groups):
    assert report(client, agent, impact=1, urgency=1)["priority"] == 1
    assert report(client, agent, impact=2, urgency=3)["priority"] == 4
    low = report(client, agent)  # nothing said: the lowest impact and urgency
    assert (low["impact"], low["urgency"], low["priority"]) == (3, 3, 5)
    raised = client.patch(f"{INCIDENTS}/{low['number']}", json={"urgency": 1},
                          headers=admin).json
    assert raised["priority"] == 3
    journal = client.get(f"{INCIDENTS}/{low['number']}/journal", headers=agent).json["items"]
    assert journal[-1]["data"]["changes"]["priority"] == [5, 3]  # the SLA replays this
    bad = client.post(INCIDENTS, json={"title": "x", "impact": 4}, headers=agent)
    assert bad.status_code == 422 and "impact goes from 1 to 3" in bad.json["error"]["message"]
    wrong = client.post(INCIDENTS, json={"title": "x", "category": "network",
                                         "subcategory": "printer"}, headers=agent)
    assert wrong.status_code == 422 and "subcategory" in wrong.json["error"]["message"]


def test_a_four_level_matrix_is_configuration(app, client, agent, itsm):
    itsm.settings["plugins.incident.priority_matrix"] = [
        [1, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 5]]
    assert report(client, agent, impact=4, urgency=4)["priority"] == 5
    assert report(client, agent, impact=1, urgency=2)["priority"] == 1


def test_new_incidents_are_routed_by_category(client, ann, agent, groups):
    created = report(client, ann)
    assert created["group"] == "Network"
    assert created["channel"] == "portal" and created["requester"] == "ann@north.example"
    assert report(client, agent, category="access", subcategory="password")["group"] \
        == "Service Desk"
    assert report(client, agent, group="Applications")["group"] == "Applications"


def test_requesters_cannot_set_staff_fields(client, ann, groups):
    refused = client.post(INCIDENTS, json={"title": "Everything is down", "major": True},
                          headers=ann)
    assert refused.status_code == 422
    assert refused.json["error"]["fields"]["major"] == ["only IT staff may set this field"]


def test_full_lifecycle_with_hold_resolution_and_confirmation(client, ann, agent, groups,
                                                              itsm):
    number = report(client, ann)["number"]
    move(client, agent, number, "start")
    held = client.post(f"{INCIDENTS}/{number}/transitions", json={"name": "hold"},
                       headers=agent)
    assert held.status_code == 409
    assert "hold_reason is required to put on hold" in held.json["error"]["reasons"]
    move(client, agent, number, "hold", hold_kind="customer", hold_reason="Awaiting logs")
    clocks = {c["metric"]: c for c in client.get(f"{INCIDENTS}/{number}/sla",
                                                 headers=agent).json["items"]}
    assert clocks["resolution"]["paused"] is True
    move(client, agent, number, "resume")
    refused = client.post(f"{INCIDENTS}/{number}/transitions", json={"name": "resolve"},
                          headers=agent)
    assert set(refused.json["error"]["reasons"]) == {
        "resolution_code is required to resolve", "resolution_notes is required to resolve"}
    resolved = move(client, agent, number, "resolve", resolution_code="solved",
                    resolution_notes="Replaced the VPN client profile.")
    assert resolved["resolved_at"] is not None
    # The agent cannot close in the requester's place; the requester confirms.
    assert client.post(f"{INCIDENTS}/{number}/transitions", json={"name": "close"},
                       headers=agent).status_code == 409
    rated = client.post(f"{INCIDENTS}/{number}/satisfaction",
                        json={"rating": 4, "comment": "Quick, thanks"}, headers=ann)
    assert rated.status_code == 200 and rated.json["satisfaction"] == 4
    assert client.post(f"{INCIDENTS}/{number}/satisfaction", json={"rating": 9},
                       headers=ann).status_code == 422
    assert client.post(f"{INCIDENTS}/{number}/satisfaction", json={"rating": 3},
                       headers=agent).status_code == 403
    closed = move(client, ann, number, "close")
    assert closed["state"] == "closed" and closed["satisfaction"] == 4


def test_reopen_only_within_the_window(client, ann, agent, groups, itsm):
    number = report(client, ann)["number"]
    move(client, agent, number, "resolve", resolution_code="solved", resolution_notes="ok")
    reopened = move(client, ann, number, "reopen")
    assert reopened["state"] == "in_progress" and reopened["reopen_count"] == 1
    move(client, agent, number, "resolve", resolution_code="solved", resolution_notes="ok")
    with itsm.Session() as session:
        session.execute(update(Incident).where(Incident.id == _id(number)).values(
            resolved_at=utcnow() - timedelta(days=8)))
        session.commit()
    late = client.post(f"{INCIDENTS}/{number}/transitions", json={"name": "reopen"},
                       headers=ann)
    assert late.status_code == 409
    assert "reopen window of 7 days has passed" in late.json["error"]["reasons"][0]


def test_quiet_resolved_incidents_close_automatically(client, ann, agent, groups, itsm, app):
    number = report(client, ann)["number"]
    fresh = report(client, ann)["number"]
    for n in (number, fresh):
        move(client, agent, n, "resolve", resolution_code="solved", resolution_notes="ok")
    with itsm.Session() as session:
        session.execute(update(Incident).where(Incident.id == _id(number)).values(
            resolved_at=utcnow() - timedelta(days=6)))
        session.execute(update(Record).where(Record.number == number).values(
            updated_at=utcnow() - timedelta(days=6)))
        session.commit()
    run_periodic(itsm)
    states = {n: client.get(f"{INCIDENTS}/{n}", headers=agent).json["state"]
              for n in (number, fresh)}
    assert states == {number: "closed", fresh: "resolved"}
    journal = client.get(f"{INCIDENTS}/{number}/journal", headers=agent).json["items"]
    assert "Closed automatically" in journal[-1]["body"]


def test_sla_warning_and_breach_escalate_once_each(client, ann, agent, groups, itsm, app):
    number = report(client, ann, impact=1, urgency=1)["number"]  # P1: 15 min response
    with itsm.Session() as session:
        record_id = session.scalar(select(Record.id).where(Record.number == number))
    later = utcnow() + timedelta(days=3)
    sla.sweep(itsm, later)
    itsm.outbox.drain()  # the announcements reach the escalation channel
    with itsm.Session() as session:  # a retried delivery takes no step twice
        session.execute(update(Delivery).where(Delivery.channel == "incident.escalation")
                        .values(state="pending", next_attempt_at=utcnow()))
        session.commit()
    assert itsm.outbox.drain().delivered >= 4
    with itsm.Session() as session:
        steps = session.execute(select(Escalation.metric, Escalation.level)
                                .where(Escalation.record_id == record_id)).all()
        events = session.scalars(select(Event.name).where(
            Event.record_id == record_id, Event.name == "incident.escalated")).all()
    assert sorted(steps) == [("resolution", "breach"), ("resolution", "warning"),
                             ("response", "breach"), ("response", "warning")]
    assert len(events) == 4
    moved = client.get(f"{INCIDENTS}/{number}", headers=agent).json
    assert moved["group"] == "Major Incident Team" and moved["assignee"] is None
    notes = [e["body"] for e in client.get(f"{INCIDENTS}/{number}/journal",
                                           headers=agent).json["items"]
             if e["kind"] == "work_noted"]
    assert any("target is breached" in n and "reassigned to Major Incident Team" in n
               for n in notes)
    # Work notes stay internal: the requester's comment list has none of them.
    seen = client.get(f"{INCIDENTS}/{number}/comments", headers=ann).json["items"]
    assert not any("Escalated" in c["body"] for c in seen)


def test_escalation_tells_management_through_the_outbox(client, ann, groups, itsm, app):
    number = report(client, ann, impact=1, urgency=1)["number"]
    later = utcnow() + timedelta(hours=1)
    sla.sweep(itsm, later)
    itsm.outbox.drain()
    itsm.outbox.fan_out()
    with itsm.Session() as session:
        rows = session.execute(select(Event.name, Delivery.recipient).join(
            Delivery, Delivery.event_id == Event.id).where(
            Event.name == "incident.escalated")).all()
    assert ("incident.escalated", "service.manager@example.org") in rows
    assert ("incident.escalated", "ann@north.example") not in rows  # internal news
    assert number


def test_breaching_soon_lists_open_incidents_by_due_time(client, agent, groups, runner):
    urgent = report(client, agent, impact=1, urgency=1)["number"]
    report(client, agent)  # P5: days away
    items = client.get(f"{INCIDENTS}/breaching?within=30", headers=agent).json["items"]
    assert [(i["number"], i["metric"]) for i in items] == [(urgent, "response")]
    assert client.get(f"{INCIDENTS}/breaching?within=0", headers=agent).status_code == 422
    result = runner.invoke(["incident", "breaching", "--within", "30"])
    assert result.exit_code == 0 and urgent in result.output


def test_major_incident_children_follow_it_and_closing_needs_the_review(
        client, ann, agent, groups, itsm):
    major = report(client, agent, title="E-mail down for everyone", impact=1, urgency=1,
                   major=True)["number"]
    child = report(client, ann, title="No e-mail")["number"]
    other = report(client, ann, title="Outlook asks for a password")["number"]
    for number in (child, other):
        linked = client.post(f"{INCIDENTS}/{major}/children", json={"incident": number},
                             headers=agent)
        assert linked.status_code == 201
    assert client.post(f"{INCIDENTS}/{child}/children", json={"incident": other},
                       headers=agent).status_code == 409  # not a major incident
    listed = client.get(f"{INCIDENTS}/{major}/children", headers=agent).json["items"]
    assert sorted(i["number"] for i in listed) == sorted([child, other])
    client.post(f"{INCIDENTS}/{major}/comments", json={"body": "Mail server restarting"},
                headers=agent)
    news = client.get(f"{INCIDENTS}/{child}/comments", headers=ann).json["items"]
    assert news[-1]["body"] == f"Update from major incident {major}: Mail server restarting"
    move(client, agent, major, "resolve", resolution_code="solved",
         resolution_notes="Mail server disk replaced")
    for number in (child, other):
        follower = client.get(f"{INCIDENTS}/{number}", headers=agent).json
        assert follower["state"] == "resolved"
        assert follower["resolution_notes"].startswith(f"Resolved with major incident {major}")
    # The major incident closes only once its post-incident review is done.
    assert client.post(f"{INCIDENTS}/{major}/transitions", json={"name": "close"},
                       headers=agent).status_code == 409
    review = client.post(f"{INCIDENTS}/{major}/review", headers=agent)
    assert review.status_code == 201, review.json
    pir = review.json["number"]
    assert pir.startswith("PIR")
    detail = client.get(f"/api/v1/incident-reviews/{pir}", headers=agent).json
    assert [step["kind"] for step in detail["timeline"]][:1] == ["created"]
    assert any("resolve" in step["summary"] for step in detail["timeline"])
    admin_close = client.post(f"{INCIDENTS}/{major}/transitions", json={"name": "close"},
                              headers=agent)
    assert "post-incident review is done" in " ".join(admin_close.json["error"]["reasons"])
    done = client.post(f"/api/v1/incident-reviews/{pir}/transitions",
                       json={"name": "complete", "fields": {"root_cause": "Disk full",
                                                            "actions": "Alert at 80 %"}},
                       headers=agent)
    assert done.status_code == 200, done.json
    offered = {t["name"]: t for t in client.get(f"{INCIDENTS}/{major}/transitions",
                                                headers=agent).json["items"]}
    assert not any("review" in r for r in offered["close"]["reasons"])


def test_functional_escalation_hands_over_with_a_work_note(client, agent, groups, admin):
    number = report(client, agent)["number"]
    moved = client.post(f"{INCIDENTS}/{number}/escalate",
                        json={"group": "Applications", "reason": "VPN client bug"},
                        headers=admin)
    assert moved.status_code == 200
    assert client.get(f"{INCIDENTS}/{number}", headers=agent).json["group"] == "Applications"
    bad = client.post(f"{INCIDENTS}/{number}/escalate", json={"group": "Nobody",
                                                               "reason": "x y z"},
                      headers=admin)
    assert bad.status_code == 422 and bad.json["error"]["fields"]["group"]


def test_other_agencies_never_see_an_incident(client, ann, make_token, groups):
    bob = make_token("bob@south.example", role="requester", agency="SOUTH")
    number = report(client, ann)["number"]
    assert client.get(f"{INCIDENTS}/{number}", headers=bob).status_code == 404
    assert client.post(f"{INCIDENTS}/{number}/satisfaction", json={"rating": 5},
                       headers=bob).status_code == 404
    assert client.get(f"{INCIDENTS}/{number}/children", headers=bob).status_code == 404


def test_demo_data_loads_incidents(runner, itsm):
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output
    with itsm.Session() as session:
        count = session.scalar(select(Incident.id).where(Incident.major.is_(True)))
        entries = session.scalars(select(JournalEntry.kind)).all()
    assert count is not None and "transitioned" in entries


def test_sla_clock_rows_exist_for_incidents(client, agent, groups, itsm):
    number = report(client, agent, impact=1, urgency=1)["number"]
    with itsm.Session() as session:
        metrics = session.scalars(select(SlaClock.metric).join(
            Record, Record.id == SlaClock.record_id).where(Record.number == number)).all()
    assert sorted(metrics) == ["resolution", "response"]


def test_migration_creates_exactly_what_the_models_describe(itsm):
    assert schema_drift(itsm.engine, ["incident", "incident_review",
                                      "incident_escalation"]) == []


def test_breaching_soon_says_breached_rather_than_negative_minutes(client, agent, groups,
                                                                     runner, itsm):
    late = report(client, agent, impact=1, urgency=1)["number"]
    past = utcnow() - timedelta(days=13, hours=19)
    with itsm.Session() as session:
        record_id = session.scalar(select(Record.id).where(Record.number == late))
        session.execute(update(SlaClock).where(SlaClock.record_id == record_id)
                        .values(breach_due_at=past))
        session.execute(update(Record).where(Record.id == record_id).values(sla_due_at=past))
        session.commit()
    result = runner.invoke(["incident", "breaching", "--within", "30"])
    assert result.exit_code == 0
    assert "breached 13 d 19 h ago" in result.output and "-19" not in result.output
    items = client.get(f"{INCIDENTS}/breaching?within=30", headers=agent).json["items"]
    assert items[0]["number"] == late and items[0]["breached"] is True
    # The console's "Breaching soon" view lists the same record, first.
    listed = client.get("/api/v1/incidents?state=open&breaching_within=30&sort=sla_due",
                        headers=agent).json["items"]
    assert [i["number"] for i in listed] == [i["number"] for i in items]
