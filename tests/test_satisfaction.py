"""Satisfaction: requesters rate incidents and fulfilled requests, the report's figures
equal a hand computation by group, service and agency, agencies never see each other's
ratings, a low score reaches the group's manager and the agency's relationship manager,
and catalog feedback tells its reviewers and, when answered, its author."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.relationship as relationship_plugin
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.inbox import Notification
from itsm.core.models import Delivery, Event, User, utcnow
from itsm.plugins.catalog.models import Feedback, Service, ServiceRequest
from itsm.plugins.incident.models import Incident
from itsm.plugins.relationship.models import Portfolio

API = "/api/v1/satisfaction"
PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, catalog_plugin, relationship_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.relationship.notify_channels": ["log"],
            "plugins.incident.notify_channels": ["log"]}


@pytest.fixture
def world(itsm, make_token):
    """Two agencies, two groups (Network managed by Max), two services, a relationship
    manager for NORTH, and requesters in each agency."""
    people = {"ann": make_token("ann@north.example", role="requester", agency="NORTH"),
              "bob": make_token("bob@south.example", role="requester", agency="SOUTH"),
              "agent": make_token("agent@it.example", role="agent"),
              "max": make_token("max@it.example", role="agent"),
              "rae": make_token("rae@it.example", role="agent"),
              "sue": make_token("sue@it.example", role="service_manager")}
    with itsm.Session() as session:
        ids = {u.email.split("@")[0]: u.id for u in session.scalars(select(User))}
        north = ensure_agency(session, "NORTH", "Agency NORTH")
        south = ensure_agency(session, "SOUTH", "Agency SOUTH")
        network = ensure_group(session, "Network")
        network.manager_id = ids["max"]
        desk = ensure_group(session, "Service Desk")
        mail = Service(slug="mail", name="Mail", status="live")
        vpn = Service(slug="vpn", name="VPN", status="live")
        session.add_all([mail, vpn, Portfolio(user_id=ids["rae"], agency_id=north.id)])
        session.commit()
        people.update(ids=ids, north=north.id, south=south.id, network=network.id,
                      desk=desk.id, mail=mail.id, vpn=vpn.id)
    return people


def _incident(session, number, requester, agency, group, score, state="resolved"):
    row = Incident(number=number, type="incident", title=f"Problem {number}", state=state,
                   requester_id=requester, agency_id=agency, group_id=group,
                   resolved_at=utcnow() - timedelta(minutes=5), satisfaction=score,
                   satisfaction_comment="")
    session.add(row)
    return row


def _request(session, number, requester, agency, group, service, score=None):
    row = ServiceRequest(number=number, type="request", title=f"Need {number}",
                         state="fulfilled", requester_id=requester, agency_id=agency,
                         group_id=group, service_id=service, answers={},
                         fulfilled_at=utcnow() - timedelta(minutes=5), satisfaction=score,
                         satisfaction_comment="")
    session.add(row)
    return row


def test_requesters_rate_both_types_and_a_low_score_is_followed_up(client, itsm, world):
    ids = world["ids"]
    with itsm.Session() as session:
        _incident(session, "INC9000001", ids["ann"], world["north"], world["network"], None)
        _request(session, "REQ9000001", ids["ann"], world["north"], world["network"],
                 world["mail"])
        session.commit()
    rated = client.post("/api/v1/incidents/INC9000001/satisfaction",
                        json={"rating": 4, "comment": "Fine"}, headers=world["ann"])
    assert rated.status_code == 200, rated.json
    low = client.post("/api/v1/catalog/requests/REQ9000001/satisfaction",
                      json={"rating": 1, "comment": "Took a week"}, headers=world["ann"])
    assert low.status_code == 200, low.json
    assert low.json["satisfaction"] == 1 and low.json["satisfaction_comment"] == "Took a week"
    bad = client.post("/api/v1/catalog/requests/REQ9000001/satisfaction",
                      json={"rating": 7}, headers=world["ann"])
    assert bad.status_code == 422 and "rating" in bad.json["error"]["fields"]
    assert client.post("/api/v1/catalog/requests/REQ9000001/satisfaction",
                       json={"rating": 5}, headers=world["agent"]).status_code == 403
    assert client.post("/api/v1/catalog/requests/REQ9000001/satisfaction",
                       json={"rating": 5}, headers=world["bob"]).status_code == 404

    with itsm.Session() as session:
        events = session.scalars(select(Event).where(Event.name == "satisfaction.low")).all()
        assert [e.payload["record"]["number"] for e in events] == ["REQ9000001"]
        assert events[0].payload["manager"] == "max@it.example"
    itsm.outbox.drain()
    with itsm.Session() as session:
        inbox = session.scalars(select(Notification).where(
            Notification.user_id == ids["max"], Notification.kind == "follow_up")).all()
        assert [n.record_number for n in inbox] == ["REQ9000001"]
        told = session.scalars(select(Delivery.recipient).where(
            Delivery.event_id == events[0].id, Delivery.channel == "log")).all()
        assert "rae@it.example" in told


def test_a_record_re_rated_low_is_followed_up_once_per_low_episode(client, itsm, world):
    ids = world["ids"]
    with itsm.Session() as session:
        _incident(session, "INC9000007", ids["ann"], world["north"], world["network"], None)
        _request(session, "REQ9000007", ids["ann"], world["north"], world["network"],
                 world["mail"])
        session.commit()

    def rate(path, rating):
        answer = client.post(path, json={"rating": rating}, headers=world["ann"])
        assert answer.status_code == 200, answer.json

    incident = "/api/v1/incidents/INC9000007/satisfaction"
    request = "/api/v1/catalog/requests/REQ9000007/satisfaction"
    rate(incident, 2)   # low: followed up
    rate(incident, 1)   # still low, the same episode: nobody is told again
    rate(incident, 2)
    rate(request, 1)    # another record: its own follow-up
    rate(request, 1)
    rate(incident, 5)   # the requester is happy after all: the episode ends
    rate(incident, 1)   # unhappy again: a new episode, a new follow-up

    with itsm.Session() as session:
        events = session.scalars(select(Event).where(Event.name == "satisfaction.low")
                                 .order_by(Event.id)).all()
        assert [(e.payload["record"]["number"], e.payload["score"]) for e in events] == [
            ("INC9000007", 2), ("REQ9000007", 1), ("INC9000007", 1)]
    itsm.outbox.drain()
    with itsm.Session() as session:
        inbox = session.scalars(select(Notification).where(
            Notification.user_id == ids["max"], Notification.kind == "follow_up")).all()
        assert sorted(n.record_number for n in inbox) == [
            "INC9000007", "INC9000007", "REQ9000007"]
        told = session.scalars(select(Delivery.event_id).where(
            Delivery.recipient == "rae@it.example", Delivery.channel == "log")).all()
        assert sorted(told) == sorted(e.id for e in events)


def test_the_report_equals_a_hand_computation(client, itsm, world, runner, make_token):
    make_token("lee@it.example", role="agent", password=PASSWORD)
    ids, n, s = world["ids"], world["north"], world["south"]
    net, desk = world["network"], world["desk"]
    with itsm.Session() as session:
        _incident(session, "INC9000011", ids["ann"], n, net, 5)
        _incident(session, "INC9000012", ids["ann"], n, desk, 2)
        _incident(session, "INC9000013", ids["bob"], s, net, 3)
        _request(session, "REQ9000011", ids["ann"], n, net, world["mail"], 4)
        _request(session, "REQ9000012", ids["bob"], s, desk, world["vpn"], 1)
        _request(session, "REQ9000013", ids["bob"], s, desk, world["vpn"], None)
        session.commit()
    by_group = client.get(f"{API}?by=group", headers=world["agent"])
    assert by_group.status_code == 200, by_group.json
    # Network: 5, 3, 4 -> 12/3 = 4.0; Service Desk: 2, 1 -> 1.5 (two at or below 2).
    assert [(i["label"], i["count"], i["average"], i["low"])
            for i in by_group.json["items"]] == [("Network", 3, 4.0, 0),
                                                ("Service Desk", 2, 1.5, 2)]
    assert by_group.json["total"] == {"count": 5, "average": 3.0}
    by_agency = client.get(f"{API}?by=agency", headers=world["agent"]).json["items"]
    # NORTH: 5, 2, 4 -> 3.67; SOUTH: 3, 1 -> 2.0
    assert [(i["label"], i["count"], i["average"]) for i in by_agency] == [
        ("Agency NORTH", 3, 3.67), ("Agency SOUTH", 2, 2.0)]
    by_service = client.get(f"{API}?by=service", headers=world["agent"]).json["items"]
    assert [(i["label"], i["count"], i["average"]) for i in by_service] == [
        ("(none)", 3, 3.33), ("Mail", 1, 4.0), ("VPN", 1, 1.0)]
    by_type = client.get(f"{API}?by=type", headers=world["agent"]).json["items"]
    assert [(i["label"], i["count"]) for i in by_type] == [("incident", 3), ("request", 2)]

    refused = client.get(f"{API}?by=colour", headers=world["agent"])
    assert refused.status_code == 422 and "by" in refused.json["error"]["fields"]
    assert client.get(f"{API}?from=2026-13", headers=world["agent"]).status_code == 422
    # A requester holds no report permission: nobody's ratings, their agency's included.
    assert client.get(API, headers=world["ann"]).status_code == 403

    result = runner.invoke(["satisfaction", "report", "--by", "group"])
    assert result.exit_code == 0, result.output
    assert "Network" in result.output and "Service Desk" in result.output
    bad = runner.invoke(["satisfaction", "report", "--from", "nope"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output

    token = TOKEN.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"email": "lee@it.example", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    page = client.get("/satisfaction?by=agency")
    assert page.status_code == 200
    assert "<svg" in page.text and "Agency NORTH" in page.text and "3.67" in page.text
    typo = client.get("/satisfaction?by=agency&from=2026-1x")
    assert typo.status_code == 200 and "2026-1x" in typo.text


def test_an_agency_staff_member_sees_only_their_agency(client, itsm, world, make_token):
    ids = world["ids"]
    with itsm.Session() as session:
        _incident(session, "INC9000021", ids["ann"], world["north"], world["network"], 5)
        _incident(session, "INC9000022", ids["bob"], world["south"], world["network"], 1)
        session.commit()
    north_agent = make_token("nina@north.example", role="agent", agency="NORTH")
    mine = client.get(f"{API}?by=agency", headers=north_agent).json
    assert [i["label"] for i in mine["items"]] == ["Agency NORTH"]
    assert all(r["agency"] == "Agency NORTH" for r in mine["low"])


def test_feedback_tells_its_reviewers_and_its_author(client, itsm, world):
    given = client.post("/api/v1/catalog/services/mail/feedback", headers=world["ann"],
                        json={"kind": "problem", "body": "The mail page lists old prices."})
    assert given.status_code == 201, given.json
    with itsm.Session() as session:
        submitted = session.scalars(select(Event).where(
            Event.name == "catalog.feedback.submitted")).one()
        assert submitted.payload["recipients"] == ["sue@it.example"]
        feedback_id = session.scalar(select(Feedback.id))
    answered = client.patch(f"/api/v1/catalog/feedback/{feedback_id}", headers=world["sue"],
                           json={"state": "done", "answer": "Prices updated, thank you."})
    assert answered.status_code == 200, answered.json
    with itsm.Session() as session:
        event = session.scalars(select(Event).where(
            Event.name == "catalog.feedback.answered")).one()
        assert event.payload["recipients"] == ["ann@north.example"]


def test_a_vendor_process_adds_its_ratings_through_the_hook(client, itsm, world):
    from itsm.core.satisfaction import Rating
    from itsm.testing import make_plugin

    def itsm_satisfaction_ratings(session, start, end):
        return [Rating(number="WO0000001", type="work_order", agency_id=world["north"],
                       agency="Agency NORTH", group="Facilities", service="Moves",
                       score=3, comment="", rated_at=utcnow())]

    itsm.host.pm.register(make_plugin(
        "moves", itsm_satisfaction_ratings=itsm_satisfaction_ratings), "moves")
    try:
        data = client.get(f"{API}?by=type", headers=world["agent"]).json
    finally:
        itsm.host.pm.unregister(name="moves")
    assert [(i["label"], i["count"], i["average"]) for i in data["items"]] == [
        ("work_order", 1, 3.0)]
