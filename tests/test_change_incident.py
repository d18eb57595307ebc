"""The change plugin with the real incident plugin, and with no incident type at all."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import itsm.plugins.change
import itsm.plugins.incident
from itsm.core.models import Link

LOW = {"users_affected": "few", "complexity": "routine", "tested": "yes",
       "backout": "minutes"}


@pytest.fixture
def itsm_plugins(request):
    with_incidents = getattr(request, "param", True)
    return ([itsm.plugins.incident] if with_incidents else []) + [itsm.plugins.change]


def standard_change_in_review(client, headers):
    number = client.post("/api/v1/changes", headers=headers, json={
        "title": "Renew the VPN certificate", "template": "tls-certificate-renewal",
        "services": ["Remote access"], "planned_start": "2030-01-07T20:00:00Z",
        "planned_end": "2030-01-07T21:00:00Z"}).json["number"]
    for name in ("schedule", "implement", "fail", "back_out", "finish_backout"):
        response = client.post(f"/api/v1/changes/{number}/transitions", headers=headers,
                               json={"name": name})
        assert response.status_code == 200, response.json
    return number


def test_failed_change_links_the_real_incidents_it_caused(app, client, make_token):
    agent = make_token("olivia@example.org", role="agent")
    number = standard_change_in_review(client, agent)
    incident = client.post("/api/v1/incidents", headers=agent, json={
        "title": "VPN refuses every login", "category": "network", "subcategory": "vpn"})
    assert incident.status_code == 201, incident.json
    inc = incident.json["number"]
    linked = client.post(f"/api/v1/changes/{number}/incidents", headers=agent,
                         json={"incident": inc})
    assert linked.status_code == 201, linked.json
    overview = client.get(f"/api/v1/changes/{number}/overview", headers=agent).json
    assert overview["incident_management"] is True
    assert [(r["number"], r["type"]) for r in overview["incidents_caused"]] == [
        (inc, "incident")]
    # An incident may also say it was caused by the change: that counts the same.
    other = client.post("/api/v1/incidents", headers=agent, json={
        "title": "VPN slow", "category": "network", "subcategory": "vpn"}).json["number"]
    back = client.post(f"/api/v1/incidents/{other}/links", headers=agent,
                       json={"target": number, "kind": "caused_by"})
    assert back.status_code == 201, back.json
    client.post(f"/api/v1/changes/{number}/transitions", headers=agent, json={
        "name": "close", "fields": {"review_outcome": "failed", "lessons": "Check the CA."}})
    report = client.get("/api/v1/changes/reports/summary", headers=agent).json
    assert report["changes_causing_incidents"][0]["incidents"] == sorted([inc, other])


@pytest.mark.parametrize("itsm_plugins", [False], indirect=True)
def test_without_incident_management_no_incident_can_be_linked(app, client, make_token):
    agent = make_token("olivia@example.org", role="agent")
    number = standard_change_in_review(client, agent)
    refused = client.post(f"/api/v1/changes/{number}/incidents", headers=agent,
                          json={"incident": "INC0000001"})
    assert refused.status_code == 409
    assert "incident management is not enabled" in refused.json["error"]["message"]
    overview = client.get(f"/api/v1/changes/{number}/overview", headers=agent).json
    assert overview["incident_management"] is False and overview["incidents_caused"] == []
    closed = client.post(f"/api/v1/changes/{number}/transitions", headers=agent, json={
        "name": "close", "fields": {"review_outcome": "failed", "lessons": "No incidents."}})
    assert closed.json["state"] == "closed"
    assert client.get("/api/v1/changes/reports/summary",
                      headers=agent).json["causing_incidents"] == 0


@pytest.mark.parametrize("itsm_plugins", [True, False], indirect=True)
def test_demo_data_loads_with_and_without_incidents(app, runner, itsm_plugins):
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output
    from itsm.plugins.change.models import Change

    with app.app_context(), app.extensions["itsm"].Session() as session:
        states = sorted(session.scalars(select(Change.state)))
        links = session.scalars(select(Link.kind)).all()
    assert states == ["cab_review", "closed", "closed", "scheduled"]
    assert ("change_caused" in links) is (itsm.plugins.incident in itsm_plugins)
    calendar = runner.invoke(["changes", "calendar", "--from", "2000-01-01", "--to",
                              "2100-01-01"])
    assert calendar.exit_code == 0 and "Upgrade the e-mail gateway" in calendar.output
    again = runner.invoke(["demo"])
    assert again.exit_code == 0, again.output
