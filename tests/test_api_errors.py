"""Bad input never gives a 500: every refusal is a 4xx with the JSON error shape.

The shape is ``{"error": {"code": str, "message": str, "fields"?: {...}, "reasons"?: [...]}}``.
"""

from __future__ import annotations

import base64
import json

import pytest

TICKETS = "/api/v1/tickets"
TICKET = f"{TICKETS}/TCK0000001"
MAX_BODY = 64 * 1024


@pytest.fixture
def itsm_config(itsm_config):
    """A small body limit, so that "too large" is cheap to provoke."""
    return {**itsm_config, "api.max_body_bytes": MAX_BODY}


@pytest.fixture
def ticket(client, agent) -> dict:
    response = client.post(TICKETS, json={"title": "Printer jammed", "priority": 3},
                           headers=agent)
    assert response.status_code == 201
    return response.get_json()


def refused(response, status: int, code: str | None = None) -> dict:
    """Assert the response is the JSON error ``status``; return its ``error`` object."""
    assert response.status_code == status, (response.status_code,
                                            response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "fields", "reasons"}
    if code is not None:
        assert error["code"] == code
    return error


def cursor_of(value) -> str:
    """A cursor forged by a client: base64 of any JSON."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Basic YWdlbnQ6c2VjcmV0"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer    "},
    {"Authorization": "Bearer itsm_nosuchtoken"},
    {"Authorization": "Bearer not-even-our-prefix"},
], ids=["no token", "basic scheme", "bearer without token", "blank token", "unknown token",
        "foreign token"])
def test_request_without_a_valid_token_is_401_with_www_authenticate(client, headers):
    for response in (client.get(TICKETS, headers=headers),
                     client.get("/api/v1/me", headers=headers),
                     client.post(TICKETS, json={"title": "x"}, headers=headers)):
        refused(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_revoked_token_is_401(app, client, make_token):
    from sqlalchemy import select

    from itsm.core import auth
    from itsm.core.models import ApiToken

    headers = make_token("gone@example.org")
    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        auth.revoke_token(session, session.scalar(select(ApiToken.id)))
        session.commit()

    refused(client.get("/api/v1/me", headers=headers), 401, "unauthorized")


def test_expired_tokens_and_deactivated_users_are_401_and_use_is_noted_once_a_minute(
        app, client, make_token):
    from datetime import timedelta

    from sqlalchemy import select, update

    from itsm.core.demo import ensure_group
    from itsm.core.models import ApiToken, GroupMember, User, utcnow

    itsm = app.extensions["itsm"]
    headers = make_token("kim@example.org")
    with app.app_context(), itsm.Session() as session:
        user = session.scalar(select(User).where(User.email == "kim@example.org"))
        for name in ("Network", "Desktop"):
            session.add(GroupMember(group_id=ensure_group(session, name).id, user_id=user.id))
        session.commit()

    def last_used():
        with itsm.Session() as session:
            return session.scalar(select(ApiToken.last_used_at))

    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert sorted(me.json["groups"]) == ["Desktop", "Network"]  # from the one query
    first = last_used()
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert last_used() == first  # within the minute: no write
    with itsm.Session() as session:
        session.execute(update(ApiToken).values(last_used_at=first - timedelta(minutes=5)))
        session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert last_used() > first

    with itsm.Session() as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    refused(client.get("/api/v1/me", headers=headers), 401, "unauthorized")
    with itsm.Session() as session:
        session.execute(update(ApiToken).values(expires_at=None))
        session.execute(update(User).values(active=False))
        session.commit()
    refused(client.get("/api/v1/me", headers=headers), 401, "unauthorized")


def test_missing_token_is_reported_before_looking_at_a_bad_body(client):
    response = client.post(TICKETS, data="{not json", content_type="application/json")

    refused(response, 401)


# -- the body: media type, syntax, shape ---------------------------------------------------


def test_body_sent_as_text_plain_is_415(client, agent):
    response = client.post(TICKETS, data='{"title": "x"}', content_type="text/plain",
                           headers=agent)

    refused(response, 415, "unsupported_media_type")


def test_body_sent_as_a_form_is_415(client, agent):
    response = client.post(TICKETS, data={"title": "x"}, headers=agent)

    refused(response, 415, "unsupported_media_type")


def test_missing_body_is_422(client, agent):
    response = client.post(TICKETS, headers=agent)

    assert refused(response, 422, "invalid")["fields"] == {"_body": ["missing"]}


@pytest.mark.parametrize("raw", ['{"title": "x"', "{'title': 'x'}", "tru", '{"title": }',
                                 "NaN!", '{"title": "x"} trailing'])
def test_invalid_json_is_422_naming_the_body(client, agent, raw):
    response = client.post(TICKETS, data=raw, content_type="application/json",
                           headers=agent)

    assert refused(response, 422, "invalid")["fields"] == {"_body": ["invalid JSON"]}


@pytest.mark.parametrize("body", [[{"title": "x"}], "a title", 42, None, True],
                         ids=["array", "string", "number", "null", "boolean"])
def test_json_that_is_not_an_object_is_422(client, agent, ticket, body):
    raw = json.dumps(body)
    for method, path in (("POST", TICKETS), ("PATCH", TICKET),
                         ("POST", f"{TICKET}/transitions"), ("POST", f"{TICKET}/comments"),
                         ("POST", f"{TICKET}/links")):
        response = client.open(path, method=method, data=raw,
                               content_type="application/json", headers=agent)
        assert refused(response, 422, "invalid")["fields"] == {"_body": ["not an object"]}, \
            (method, path)


def test_invalid_utf8_in_a_json_body_is_422(client, agent):
    response = client.post(TICKETS, data=b'{"title": "caf\xe9 \xff\xfe"}',
                           content_type="application/json", headers=agent)

    refused(response, 422, "invalid")


def test_body_over_the_size_limit_is_413(client, agent):
    body = json.dumps({"title": "x", "description": "a" * MAX_BODY})

    response = client.post(TICKETS, data=body, content_type="application/json",
                           headers=agent)

    refused(response, 413)
    assert client.get(TICKETS, headers=agent).get_json()["items"] == []


def test_upload_over_the_body_size_limit_is_413(client, agent, ticket):
    import io

    response = client.post(f"{TICKET}/attachments",
                           data={"file": (io.BytesIO(b"x" * (MAX_BODY + 1)), "big.bin")},
                           content_type="multipart/form-data", headers=agent)

    refused(response, 413)
    assert client.get(f"{TICKET}/attachments", headers=agent).get_json()["items"] == []


@pytest.mark.parametrize("depth", [10_000, 30_000])
def test_deeply_nested_json_is_refused_not_a_crash(client, agent, depth):
    raw = "[" * depth + "]" * depth

    response = client.post(TICKETS, data=raw, content_type="application/json",
                           headers=agent)

    refused(response, 422, "invalid")


def test_deeply_nested_json_inside_a_field_is_refused_not_a_crash(client, agent, ticket):
    raw = '{"name": "resolve", "fields": {"resolution": ' + "[" * 10_000 + "]" * 10_000 + "}}"

    response = client.post(f"{TICKET}/transitions", data=raw,
                           content_type="application/json", headers=agent)

    refused(response, 422, "invalid")


# -- field validation ----------------------------------------------------------------------


def test_unknown_fields_are_422_with_a_message_for_each(client, agent):
    response = client.post(TICKETS, json={"title": "x", "colour": "red", "urgency": 1},
                           headers=agent)

    fields = refused(response, 422, "invalid")["fields"]
    assert fields == {"colour": ["Unknown field."], "urgency": ["Unknown field."]}


def test_missing_title_is_422_on_title(client, agent):
    response = client.post(TICKETS, json={"priority": 2}, headers=agent)

    assert "title" in refused(response, 422, "invalid")["fields"]


@pytest.mark.parametrize("priority", ["high", True, 9, 0, 2.5, "3", [1], {"p": 1}])
def test_wrong_priority_is_422_on_priority(client, agent, priority):
    response = client.post(TICKETS, json={"title": "x", "priority": priority}, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["priority"]


@pytest.mark.parametrize("priority", ["high", True, 9])
def test_wrong_priority_on_update_is_422_and_changes_nothing(client, agent, ticket,
                                                             priority):
    response = client.patch(TICKET, json={"priority": priority}, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["priority"]
    assert client.get(TICKET, headers=agent).get_json()["priority"] == 3


@pytest.mark.parametrize(("body", "field"), [
    ({"title": ""}, "title"), ({"title": "x" * 301}, "title"), ({"title": 7}, "title"),
    ({"title": None}, "title"), ({"title": "x", "category": "plumbing"}, "category"),
    ({"title": "x", "requester": "not-an-email"}, "requester"),
    ({"title": "x", "description": ["a"]}, "description")])
def test_invalid_field_values_are_422_naming_the_field(client, agent, body, field):
    response = client.post(TICKETS, json=body, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == [field]


def test_unknown_group_agency_and_user_are_422_naming_each(client, agent):
    response = client.post(TICKETS, json={"title": "x", "group": "Nobody",
                                          "agency": "ZZ", "assignee": "ghost@example.org"},
                           headers=agent)

    fields = refused(response, 422, "invalid")["fields"]
    assert set(fields) == {"group", "agency", "assignee"}


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": 5}, {"name": "start", "x": 1},
                                  {"name": "start", "fields": []},
                                  {"name": "start", "version": "1"}])
def test_invalid_transition_request_is_422(client, agent, ticket, body):
    response = client.post(f"{TICKET}/transitions", json=body, headers=agent)

    assert refused(response, 422, "invalid")["fields"]


@pytest.mark.parametrize("body", [{}, {"body": ""}, {"body": 5}, {"body": "x", "public": "maybe"},
                                  {"body": "x", "author": "me"}])
def test_invalid_comment_is_422(client, agent, ticket, body):
    response = client.post(f"{TICKET}/comments", json=body, headers=agent)

    assert refused(response, 422, "invalid")["fields"]


@pytest.mark.parametrize("body", [{}, {"target": ""}, {"target": 1}, {"target": "X" * 40},
                                  {"target": "TCK0000001", "weight": 2}])
def test_invalid_link_is_422(client, agent, ticket, body):
    response = client.post(f"{TICKET}/links", json=body, headers=agent)

    assert refused(response, 422, "invalid")["fields"]


# -- NUL characters: valid JSON, but some databases cannot store them ----------------------


@pytest.mark.parametrize("field", ["title", "description"])
def test_nul_character_in_a_new_ticket_is_422_not_a_crash(client, agent, field):
    body = {"title": "x", field: "before\u0000after"}

    response = client.post(TICKETS, json=body, headers=agent)

    assert field in refused(response, 422, "invalid")["fields"]


def test_nul_character_in_a_comment_is_422_not_a_crash(client, agent, ticket):
    response = client.post(f"{TICKET}/comments", json={"body": "a\u0000b"}, headers=agent)

    assert "body" in refused(response, 422, "invalid")["fields"]


def test_nul_character_in_a_transition_field_is_422_not_a_crash(client, agent, ticket):
    response = client.post(f"{TICKET}/transitions",
                           json={"name": "resolve", "fields": {"resolution": "a\u0000"}},
                           headers=agent)

    assert "resolution" in refused(response, 422, "invalid")["fields"]
    assert client.get(TICKET, headers=agent).get_json()["state"] == "new"


def test_nul_character_in_a_group_name_is_422_not_a_crash(client, agent):
    response = client.post(TICKETS, json={"title": "x", "group": "\u0000"}, headers=agent)

    assert "group" in refused(response, 422, "invalid")["fields"]


def test_nul_character_in_a_record_number_is_404_not_a_crash(client, agent, ticket):
    refused(client.get(f"{TICKETS}/TCK%00", headers=agent), 404, "not_found")


@pytest.mark.parametrize("name", ["q", "state", "assignee", "requester", "group", "agency"])
def test_nul_character_in_a_list_filter_is_not_a_crash(client, agent, ticket, name):
    response = client.get(TICKETS, query_string={name: "a\u0000b"}, headers=agent)

    if response.status_code == 200:
        assert response.get_json()["items"] == []
    else:
        assert name in refused(response, 422, "invalid")["fields"]


# -- list arguments ------------------------------------------------------------------------


def test_unknown_query_parameter_is_422_naming_it(client, agent):
    response = client.get(TICKETS, query_string={"colour": "red", "page": "2"},
                          headers=agent)

    fields = refused(response, 422, "invalid")["fields"]
    assert fields == {"colour": ["unknown parameter"], "page": ["unknown parameter"]}


@pytest.mark.parametrize("limit", ["1000000", "201", "0", "-1", "ten", "", "1e3"])
def test_limit_outside_1_to_the_maximum_is_422(client, agent, limit):
    response = client.get(TICKETS, query_string={"limit": limit}, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["limit"]


@pytest.mark.parametrize("sort", ["colour", "title desc", "--priority", ""])
def test_unknown_sort_is_422(client, agent, sort):
    response = client.get(TICKETS, query_string={"sort": sort}, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["sort"]


@pytest.mark.parametrize("priority", ["high", "1,,2", "1.5"])
def test_priority_filter_that_is_not_numbers_is_422(client, agent, priority):
    response = client.get(TICKETS, query_string={"priority": priority}, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["priority"]


def test_priority_filter_with_a_huge_number_finds_nothing_instead_of_crashing(client, agent,
                                                                               ticket):
    response = client.get(TICKETS, query_string={"priority": "9" * 30}, headers=agent)

    if response.status_code == 200:
        assert response.get_json()["items"] == []
    else:
        assert list(refused(response, 422, "invalid")["fields"]) == ["priority"]


@pytest.mark.parametrize("cursor", ["garbage!", "e30", "W10", "WzFd", "////", "a" * 500,
                                    cursor_of("x"), cursor_of([1, "2"]),
                                    cursor_of([{"t": "yesterday"}, 1]), cursor_of([{}, 1]),
                                    cursor_of([True, 1]), cursor_of([1.5, 1])],
                         ids=["garbage", "empty object", "empty list", "one item", "slashes",
                              "long", "string", "string id", "bad date", "dict without t",
                              "boolean", "float"])
def test_garbage_cursor_is_422(client, agent, ticket, cursor):
    response = client.get(TICKETS, query_string={"sort": "priority", "cursor": cursor},
                          headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["cursor"]


@pytest.mark.parametrize(("made_for", "used_with"), [
    ("priority", "-created_at"), ("-created_at", "priority"), ("number", "updated_at"),
    ("priority", "number")])
def test_cursor_from_another_sort_is_422(client, agent, made_for, used_with):
    for i in range(3):
        client.post(TICKETS, json={"title": f"t{i}", "priority": 2}, headers=agent)
    first = client.get(TICKETS, query_string={"sort": made_for, "limit": 1}, headers=agent)
    cursor = first.get_json()["next"]
    assert cursor

    response = client.get(TICKETS, query_string={"sort": used_with, "cursor": cursor},
                          headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["cursor"]


@pytest.mark.parametrize("value", [[1, 10**30], [10**30, 1], [-(10**30), 1]],
                         ids=["huge id", "huge priority", "huge negative priority"])
def test_forged_cursor_with_huge_numbers_is_422_not_a_crash(client, agent, ticket, value):
    response = client.get(TICKETS, query_string={"sort": "priority",
                                                 "cursor": cursor_of(value)}, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["cursor"]


def test_forged_cursor_with_a_nul_character_is_not_a_crash(client, agent, ticket):
    response = client.get(TICKETS, query_string={"sort": "number",
                                                 "cursor": cursor_of(["\u0000", 1])},
                          headers=agent)

    if response.status_code == 200:
        assert [t["number"] for t in response.get_json()["items"]] == ["TCK0000001"]
    else:
        assert list(refused(response, 422, "invalid")["fields"]) == ["cursor"]


def test_forged_cursor_with_a_date_without_time_zone_is_422(client, agent, ticket):
    response = client.get(TICKETS, query_string={
        "sort": "-created_at", "cursor": cursor_of([{"t": "2026-01-01T00:00:00"}, 1])},
        headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["cursor"]


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00",
                                   "2026-01-01 00:00:00 00:00", "1700000000"])
def test_bad_updated_since_is_422(client, agent, since):
    response = client.get(TICKETS, query_string={"updated_since": since}, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == ["updated_since"]


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_updated_since_at_the_edge_of_the_calendar_is_not_a_crash(client, agent, ticket,
                                                                   since):
    response = client.get(TICKETS, query_string={"updated_since": since}, headers=agent)

    if response.status_code == 200:
        expected = ["TCK0000001"] if since.startswith("0001") else []
        assert [t["number"] for t in response.get_json()["items"]] == expected
    else:
        assert list(refused(response, 422, "invalid")["fields"]) == ["updated_since"]


@pytest.mark.parametrize("name", ["assignee", "requester"])
def test_filter_by_an_unknown_user_is_422(client, agent, name):
    response = client.get(TICKETS, query_string={name: "ghost@example.org"}, headers=agent)

    assert list(refused(response, 422, "invalid")["fields"]) == [name]


# -- routes, methods and headers -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/widgets", "/api/v1/widgets/W1",
                                  "/api/v1/widgets/W1/journal"])
def test_unknown_collection_is_404_json(client, agent, path):
    refused(client.get(path, headers=agent), 404, "not_found")
    refused(client.post(path.split("/W1")[0], json={"title": "x"}, headers=agent), 404)


@pytest.mark.parametrize("path", ["/api/v1/tickets/TCK0000001/history", "/api/v1/nothing/a/b/c",
                                  "/api/v1/tickets/TCK0000001/attachments/abc"])
def test_unknown_api_path_is_404_json(client, agent, ticket, path):
    refused(client.get(path, headers=agent), 404)


def test_unknown_attachment_is_404(client, agent, ticket):
    refused(client.get(f"{TICKET}/attachments/999999", headers=agent), 404, "not_found")


@pytest.mark.parametrize("if_match", ["abc", '"abc"', "1.0", '"-1"', '"²"', '""', '"1", "2"'])
def test_malformed_if_match_is_422(client, agent, ticket, if_match):
    response = client.patch(TICKET, json={"priority": 1},
                            headers={**agent, "If-Match": if_match})

    assert list(refused(response, 422, "invalid")["fields"]) == ["If-Match"]
    assert client.get(TICKET, headers=agent).get_json()["priority"] == 3


def test_malformed_if_match_on_a_transition_is_422(client, agent, ticket):
    response = client.post(f"{TICKET}/transitions", json={"name": "start"},
                           headers={**agent, "If-Match": "yesterday"})

    refused(response, 422, "invalid")


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", TICKET), ("PUT", TICKET), ("PUT", TICKETS), ("DELETE", TICKETS),
    ("DELETE", f"{TICKET}/comments"), ("PATCH", f"{TICKET}/journal")])
def test_method_not_allowed_is_405_json(client, agent, ticket, method, path):
    response = client.open(path, method=method, json={}, headers=agent)

    refused(response, 405, "method_not_allowed")


def test_405_says_which_methods_are_allowed(client, agent, ticket):
    response = client.delete(TICKET, headers=agent)

    refused(response, 405)
    assert set(response.headers.get("Allow", "").replace(" ", "").split(",")) >= {"GET", "PATCH"}


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/openapi.json"])
def test_posting_to_a_read_only_resource_is_405_not_an_unknown_collection(client, agent,
                                                                          path):
    response = client.post(path, json={}, headers=agent)

    refused(response, 405, "method_not_allowed")


def test_an_error_never_leaks_a_stack_trace(client, agent, ticket):
    response = client.post(TICKETS, data=b"\x00\x01\x02", content_type="application/json",
                           headers=agent)

    error = refused(response, 422)
    assert "Traceback" not in error["message"]
