"""Who may see and change what: agencies, groups, roles, and the audit of refusals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from itsm.core.demo import ensure_group
from itsm.core.models import AccessDenial, GroupMember, User

TICKETS = "/api/v1/tickets"


@pytest.fixture
def people(itsm, make_token):
    """Two agencies with a requester each, a network agent, a desk agent and an admin."""
    headers = {
        "pat": make_token("pat@dot.example", role="requester", agency="DOT"),
        "sam": make_token("sam@doh.example", role="requester", agency="DOH"),
        "net": make_token("net@it.example", role="agent"),
        "desk": make_token("desk@it.example", role="agent"),
        "admin": make_token("root@it.example", role="admin"),
    }
    with itsm.Session() as session:
        network = ensure_group(session, "Network")
        net = session.scalar(select(User).where(User.email == "net@it.example"))
        session.add(GroupMember(group_id=network.id, user_id=net.id))
        session.commit()
    return headers


def denials(itsm) -> list[tuple[str, str]]:
    with itsm.Session() as session:
        return [(d.actor_email, d.permission) for d in
                session.scalars(select(AccessDenial).order_by(AccessDenial.id))]


def test_requester_cannot_see_other_agency_ticket_anywhere(client, people, itsm):
    number = client.post(TICKETS, json={"title": "DOH printer"},
                         headers=people["sam"]).json["number"]
    assert client.get(f"{TICKETS}/{number}", headers=people["pat"]).status_code == 404
    assert client.get(f"{TICKETS}?q=printer", headers=people["pat"]).json["items"] == []
    assert client.get(f"{TICKETS}/{number}/journal", headers=people["pat"]).status_code == 404
    assert client.post(f"{TICKETS}/{number}/comments", json={"body": "mine?"},
                       headers=people["pat"]).status_code == 404
    assert client.get(f"{TICKETS}/{number}", headers=people["sam"]).status_code == 200
    assert ("pat@dot.example", "ticket.read") in denials(itsm)


def test_requester_records_land_in_their_agency(client, people):
    created = client.post(TICKETS, json={"title": "DOT laptop"}, headers=people["pat"]).json
    assert created["agency"] == "DOT" and created["requester"] == "pat@dot.example"


def test_agent_changes_only_records_of_their_groups(client, people, itsm):
    number = client.post(TICKETS, json={"title": "WAN flaps", "group": "Network"},
                         headers=people["admin"]).json["number"]
    # Every agent may read it ...
    assert client.get(f"{TICKETS}/{number}", headers=people["desk"]).status_code == 200
    # ... but only the Network group's agent may change or move it.
    refused = client.patch(f"{TICKETS}/{number}", json={"priority": 1},
                           headers=people["desk"])
    assert refused.status_code == 403
    moved = client.post(f"{TICKETS}/{number}/transitions", json={"name": "start"},
                        headers=people["desk"])
    assert moved.status_code == 409
    assert "may not move ticket records" in moved.json["error"]["reasons"][0]
    assert client.patch(f"{TICKETS}/{number}", json={"priority": 1},
                        headers=people["net"]).status_code == 200
    assert ("desk@it.example", "ticket.update") in denials(itsm)


def test_unassigned_records_are_open_to_every_agent(client, people):
    number = client.post(TICKETS, json={"title": "New hire"},
                         headers=people["pat"]).json["number"]
    assert client.patch(f"{TICKETS}/{number}", json={"group": "Network"},
                        headers=people["desk"]).status_code == 200


def test_requester_cannot_update_or_move_even_own_ticket(client, people, itsm):
    number = client.post(TICKETS, json={"title": "Own"}, headers=people["pat"]).json["number"]
    assert client.patch(f"{TICKETS}/{number}", json={"title": "x"},
                        headers=people["pat"]).status_code == 403
    assert client.post(f"{TICKETS}/{number}/transitions", json={"name": "cancel"},
                       headers=people["pat"]).status_code == 409
    assert ("pat@dot.example", "ticket.update") in denials(itsm)


def test_denial_is_recorded_although_the_request_rolled_back(client, people, itsm):
    before = len(denials(itsm))
    client.patch(f"{TICKETS}/TCK0000999", json={"title": "x"}, headers=people["pat"])
    number = client.post(TICKETS, json={"title": "DOH only"},
                         headers=people["sam"]).json["number"]
    client.get(f"{TICKETS}/{number}", headers=people["pat"])
    after = denials(itsm)
    assert len(after) == before + 1  # the unknown number is a plain 404, not a denial
    with itsm.Session() as session:
        row = session.scalars(select(AccessDenial).order_by(AccessDenial.id.desc())).first()
    assert row.record_id is not None and row.permission == "ticket.read"


def test_admin_reaches_everything(client, people):
    number = client.post(TICKETS, json={"title": "DOH"}, headers=people["sam"]).json["number"]
    assert client.patch(f"{TICKETS}/{number}", json={"priority": 2},
                        headers=people["admin"]).status_code == 200
    assert len(client.get(TICKETS, headers=people["admin"]).json["items"]) == 1


def test_clocks_are_shown_to_whoever_may_read_the_record(client, people):
    number = client.post(TICKETS, json={"title": "Slow", "priority": 2},
                         headers=people["pat"]).json["number"]
    clocks = client.get(f"{TICKETS}/{number}/sla", headers=people["pat"]).json["items"]
    assert {c["metric"] for c in clocks} == {"response", "resolution"}
    assert all(c["state"] == "running" and c["breached"] is False for c in clocks)
    assert client.get(f"{TICKETS}/{number}/sla", headers=people["sam"]).status_code == 404


def test_admin_reads_the_refusals_in_the_audit_command(client, people, runner):
    number = client.post(TICKETS, json={"title": "DOH"}, headers=people["sam"]).json["number"]
    client.get(f"{TICKETS}/{number}", headers=people["pat"])
    result = runner.invoke(["audit", "--json", "--user", "pat@dot.example"])
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(result.output)
    assert [(r["user"], r["permission"], r["record"]) for r in rows] == [
        ("pat@dot.example", "ticket.read", number)]


def test_requester_cannot_probe_which_agencies_or_users_exist(client, people):
    for query in ({"agency": "DOH"}, {"agency": "NOPE"}, {"assignee": "net@it.example"},
                  {"assignee": "ghost@it.example"}, {"group": "Nowhere"}):
        response = client.get(TICKETS, query_string=query, headers=people["pat"])
        assert response.status_code == 200, query
        assert response.json["items"] == []
    # Staff get the helpful answer.
    assert client.get(TICKETS, query_string={"agency": "NOPE"},
                      headers=people["desk"]).status_code == 422


def test_group_membership_from_the_cli_decides_who_works_a_record(client, people, runner):
    number = client.post(TICKETS, json={"title": "Switch port dead", "group": "Network"},
                         headers=people["admin"]).json["number"]
    assert client.patch(f"{TICKETS}/{number}", json={"priority": 2},
                        headers=people["desk"]).status_code == 403
    added = runner.invoke(["groups", "add-member", "Network", "desk@it.example"])
    assert added.exit_code == 0, added.output
    assert "desk@it.example" in runner.invoke(["groups", "members", "Network"]).output
    assert client.patch(f"{TICKETS}/{number}", json={"priority": 2},
                        headers=people["desk"]).status_code == 200
    assert runner.invoke(["groups", "remove-member", "Network",
                          "desk@it.example"]).exit_code == 0
    assert client.patch(f"{TICKETS}/{number}", json={"priority": 3},
                        headers=people["desk"]).status_code == 403
    missing = runner.invoke(["groups", "add-member", "Nowhere", "desk@it.example"])
    assert missing.exit_code != 0 and "no group 'Nowhere'" in str(missing.exception)
