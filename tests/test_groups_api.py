"""``/api/v1/groups``: resolver groups and their members in the core's API."""

from __future__ import annotations

from sqlalchemy import select

from itsm.core.admin.models import AdminAudit

API = "/api/v1/groups"


def test_admins_manage_groups_and_members(client, admin, agent, make_token, itsm):
    make_token("nina@example.org", role="agent")
    made = client.post(API, headers=admin, json={"name": "Network", "email": "net@example.org",
                                                 "manager": "nina@example.org",
                                                 "description": "Routers"})
    assert made.status_code == 201, made.json
    group = made.json
    assert group["manager"] == "nina@example.org" and group["members"] == []
    by_id, by_name = f"{API}/{group['id']}", f"{API}/Network"
    added = client.post(f"{by_id}/members", headers=admin, json={"email": "Nina@Example.org"})
    assert added.status_code == 201 and [m["email"] for m in added.json["items"]] == [
        "nina@example.org"]
    again = client.post(f"{by_name}/members", headers=admin, json={"email": "nina@example.org"})
    assert again.status_code == 200
    assert client.get(by_name, headers=agent).json["members"][0]["email"] == "nina@example.org"
    listed = client.get(API, headers=agent).json["items"]
    assert {"name": "Network", "member_count": 1}.items() <= next(
        g for g in listed if g["name"] == "Network").items()
    changed = client.patch(by_id, headers=admin, json={"name": "Networks", "manager": None})
    assert changed.status_code == 200 and changed.json["manager"] is None
    assert client.delete(f"{API}/Networks/members/nina@example.org",
                         headers=admin).status_code == 204
    assert client.get(f"{by_id}/members", headers=agent).json["items"] == []
    with itsm.Session() as session:
        actions = session.scalars(select(AdminAudit.action).order_by(AdminAudit.id)).all()
    assert actions == ["group.create", "group.add_member", "group.update",
                       "group.remove_member"]


def test_bad_input_is_a_field_message_and_others_may_not_write(client, admin, agent,
                                                              make_token):
    requester = make_token("rita@example.org", role="requester")
    cases = [({"name": ""}, "name"), ({}, "name"), ({"name": "X", "email": "nope"}, "email"),
             ({"name": "X", "manager": "ghost@example.org"}, "manager"),
             ({"name": "X", "colour": "red"}, "colour"), ({"name": "12"}, "name"),
             ({"name": "x" * 101}, "name")]
    for body, field in cases:
        response = client.post(API, headers=admin, json=body)
        assert response.status_code in (404, 422), (body, response.json)
        assert field in response.json["error"]["fields"], (body, response.json)
    assert client.post(API, headers=admin, json=["list"]).status_code == 422
    client.post(API, headers=admin, json={"name": "Desk"})
    assert client.post(API, headers=admin, json={"name": "Desk"}).status_code == 422
    assert client.get(f"{API}/Nowhere", headers=agent).status_code == 404
    assert client.post(f"{API}/Desk/members", headers=admin,
                       json={"email": "ghost@example.org"}).status_code == 404
    assert client.delete(f"{API}/Desk/members/agent@example.org",
                         headers=admin).status_code == 404
    assert client.post(API, headers=agent, json={"name": "Mine"}).status_code == 403
    assert client.post(f"{API}/Desk/members", headers=agent,
                       json={"email": "agent@example.org"}).status_code == 403
    assert client.patch(f"{API}/Desk", headers=agent, json={"name": "Y"}).status_code == 403
    assert client.get(API, headers=requester).status_code == 403
    assert client.get(API).status_code == 401


def test_the_groups_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"/api/v1/groups", "/api/v1/groups/{group}", "/api/v1/groups/{group}/members",
            "/api/v1/groups/{group}/members/{email}"} <= set(paths)
    assert not any(p.startswith("/api/v1/changes/groups") for p in paths)
