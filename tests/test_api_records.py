"""The record API end to end, as a client sees it, on the sample "tickets" record type.

Every test goes through HTTP (the Flask test client) against the real database of the
test install: SQLite by default, PostgreSQL or MariaDB with ITSM_TEST_DATABASE_URL.
"""

from __future__ import annotations

import hashlib
import io

import pytest

TICKETS = "/api/v1/tickets"


# -- helpers -------------------------------------------------------------------------------


def open_ticket(client, headers, **fields) -> dict:
    """Open a ticket through the API and return its JSON (fails the test unless 201)."""
    body = {"title": "Printer on floor 2 is jammed", **fields}
    response = client.post(TICKETS, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def numbers(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["number"] for item in response.get_json()["items"]]


def error_of(response) -> dict:
    """The ``error`` object of a JSON error response."""
    assert response.is_json, response.get_data(as_text=True)
    return response.get_json()["error"]


@pytest.fixture
def requester_a(make_token):
    """Ann, an end user of agency A."""
    return make_token("ann@a.example", role="requester", agency="A")


@pytest.fixture
def colleague_a(make_token):
    """Carl, another end user of agency A."""
    return make_token("carl@a.example", role="requester", agency="A")


@pytest.fixture
def requester_b(make_token):
    """Bea, an end user of agency B."""
    return make_token("bea@b.example", role="requester", agency="B")


# -- create and read -----------------------------------------------------------------------


def test_created_ticket_answers_201_with_location_etag_and_first_number(client, agent):
    response = client.post(TICKETS, json={"title": "VPN drops every hour", "priority": 2,
                                          "category": "network"}, headers=agent)

    assert response.status_code == 201
    ticket = response.get_json()
    assert ticket["number"] == "TCK0000001"
    assert response.headers["Location"] == "/api/v1/tickets/TCK0000001"
    assert response.headers["ETag"] == '"1"'
    assert ticket["version"] == 1
    assert ticket["title"] == "VPN drops every hour"
    assert ticket["priority"] == 2
    assert ticket["category"] == "network"
    assert ticket["state"] == "new"
    assert ticket["state_label"] == "New"
    assert ticket["requester"] == "agent@example.org"
    assert ticket["closed_at"] is None


def test_numbers_count_up_one_ticket_after_another(client, agent):
    first = open_ticket(client, agent)
    second = open_ticket(client, agent, title="Second one")

    assert (first["number"], second["number"]) == ("TCK0000001", "TCK0000002")


def test_location_of_a_new_ticket_reads_it_back_with_the_same_etag(client, agent):
    created = client.post(TICKETS, json={"title": "Mouse is broken"}, headers=agent)

    response = client.get(created.headers["Location"], headers=agent)

    assert response.status_code == 200
    assert response.headers["ETag"] == created.headers["ETag"]
    created_body = created.get_json()
    assert isinstance(created_body.pop("suggestions"), list)  # tickets ask for suggestions
    assert response.get_json() == created_body


def test_a_ticket_number_may_be_typed_in_lowercase(client, agent):
    open_ticket(client, agent)

    response = client.get(f"{TICKETS}/tck0000001", headers=agent)

    assert response.status_code == 200
    assert response.get_json()["number"] == "TCK0000001"


def test_reading_a_number_that_does_not_exist_is_404(client, agent):
    response = client.get(f"{TICKETS}/TCK0000099", headers=agent)

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# -- partial update ------------------------------------------------------------------------


def test_patch_with_current_if_match_changes_the_field_and_gives_a_new_etag(client, agent):
    open_ticket(client, agent, priority=3)

    response = client.patch(f"{TICKETS}/TCK0000001", json={"priority": 1},
                            headers={**agent, "If-Match": '"1"'})

    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    assert response.get_json()["priority"] == 1
    assert response.get_json()["version"] == 2
    again = client.get(f"{TICKETS}/TCK0000001", headers=agent)
    assert again.get_json()["priority"] == 1
    assert again.headers["ETag"] == '"2"'


def test_stale_if_match_is_refused_with_412_and_changes_nothing(client, agent):
    open_ticket(client, agent, priority=3)
    client.patch(f"{TICKETS}/TCK0000001", json={"priority": 2},
                 headers={**agent, "If-Match": '"1"'})

    response = client.patch(f"{TICKETS}/TCK0000001", json={"priority": 5},
                            headers={**agent, "If-Match": '"1"'})

    assert response.status_code == 412
    assert error_of(response)["code"] == "stale"
    assert client.get(f"{TICKETS}/TCK0000001", headers=agent).get_json()["priority"] == 2


def test_weak_etag_in_if_match_is_understood(client, agent):
    open_ticket(client, agent)

    response = client.patch(f"{TICKETS}/TCK0000001", json={"title": "Renamed"},
                            headers={**agent, "If-Match": 'W/"1"'})

    assert response.status_code == 200
    assert response.get_json()["title"] == "Renamed"


def test_patch_without_if_match_is_a_last_write_wins_update(client, agent):
    open_ticket(client, agent)

    response = client.patch(f"{TICKETS}/TCK0000001", json={"category": "hardware"},
                            headers=agent)

    assert response.status_code == 200
    assert response.get_json()["category"] == "hardware"


def test_patch_that_changes_nothing_keeps_the_version_and_the_journal(client, agent):
    open_ticket(client, agent, priority=3)

    response = client.patch(f"{TICKETS}/TCK0000001", json={"priority": 3}, headers=agent)

    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    journal = client.get(f"{TICKETS}/TCK0000001/journal", headers=agent).get_json()["items"]
    assert [entry["kind"] for entry in journal] == ["created"]


def test_patching_the_state_is_refused_and_points_at_transitions(client, agent):
    open_ticket(client, agent)

    response = client.patch(f"{TICKETS}/TCK0000001", json={"state": "resolved"},
                            headers=agent)

    assert response.status_code == 422
    error = error_of(response)
    assert "state" in error["fields"]
    assert "/api/v1/tickets/TCK0000001/transitions" in error["message"]
    assert client.get(f"{TICKETS}/TCK0000001", headers=agent).get_json()["state"] == "new"


def test_patch_with_an_unknown_assignee_names_the_field(client, agent):
    open_ticket(client, agent)

    response = client.patch(f"{TICKETS}/TCK0000001", json={"assignee": "nobody@example.org"},
                            headers=agent)

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"assignee": ["unknown user"]}


def test_a_requester_cannot_edit_a_ticket_even_their_own(client, requester_a):
    open_ticket(client, requester_a)

    response = client.patch(f"{TICKETS}/TCK0000001", json={"title": "Mine"},
                            headers=requester_a)

    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


# -- transitions ---------------------------------------------------------------------------


def test_transitions_list_shows_allowed_ones_and_reasons_for_refused_ones(client, agent):
    open_ticket(client, agent)

    response = client.get(f"{TICKETS}/TCK0000001/transitions", headers=agent)

    assert response.status_code == 200
    by_name = {t["name"]: t for t in response.get_json()["items"]}
    assert set(by_name) == {"start", "resolve", "cancel"}
    assert by_name["start"]["allowed"] is True
    assert by_name["start"]["reasons"] == []
    assert by_name["start"]["target"] == "in_progress"
    assert by_name["resolve"]["allowed"] is False
    assert by_name["resolve"]["reasons"] == ["resolution is required to resolve"]
    assert by_name["resolve"]["required"] == ["resolution"]


def test_a_requester_sees_every_transition_refused_with_a_reason(client, requester_a):
    open_ticket(client, requester_a)

    response = client.get(f"{TICKETS}/TCK0000001/transitions", headers=requester_a)

    items = response.get_json()["items"]
    assert items and all(not t["allowed"] and t["reasons"] for t in items)


def test_starting_work_moves_the_ticket_and_bumps_the_etag(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/transitions", json={"name": "start"},
                           headers={**agent, "If-Match": '"1"'})

    assert response.status_code == 200
    assert response.get_json()["state"] == "in_progress"
    assert response.headers["ETag"] == '"2"'


def test_refused_transition_is_409_with_every_reason(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/transitions", json={"name": "hold"},
                           headers=agent)

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert sorted(error["reasons"]) == sorted([
        "cannot hold from state 'New'",
        "hold_reason is required to hold",
    ])
    assert client.get(f"{TICKETS}/TCK0000001", headers=agent).get_json()["state"] == "new"


def test_requester_running_a_transition_is_refused_with_the_reason(client, requester_a):
    open_ticket(client, requester_a)

    response = client.post(f"{TICKETS}/TCK0000001/transitions", json={"name": "cancel"},
                           headers=requester_a)

    assert response.status_code == 409
    assert error_of(response)["reasons"] == ["ann@a.example may not move ticket records"]


def test_required_field_sent_with_the_transition_lets_it_through(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/transitions",
                           json={"name": "resolve", "fields": {"resolution": "Replaced toner"}},
                           headers=agent)

    assert response.status_code == 200
    ticket = response.get_json()
    assert ticket["state"] == "resolved"
    assert ticket["resolution"] == "Replaced toner"
    assert ticket["transitions"] == ["close", "reopen", "cancel"]


def test_closing_sets_closed_at_and_reopening_clears_it(client, agent):
    open_ticket(client, agent)
    client.post(f"{TICKETS}/TCK0000001/transitions",
                json={"name": "resolve", "fields": {"resolution": "Fixed"}}, headers=agent)

    closed = client.post(f"{TICKETS}/TCK0000001/transitions", json={"name": "close"},
                         headers=agent)
    reopened = client.post(f"{TICKETS}/TCK0000001/transitions", json={"name": "reopen"},
                           headers=agent)

    assert closed.status_code == 200
    assert closed.get_json()["closed_at"] is not None
    assert reopened.status_code == 200
    assert reopened.get_json()["state"] == "in_progress"
    assert reopened.get_json()["closed_at"] is None


def test_stale_if_match_on_a_transition_is_412(client, agent):
    open_ticket(client, agent)
    client.patch(f"{TICKETS}/TCK0000001", json={"priority": 1}, headers=agent)

    by_header = client.post(f"{TICKETS}/TCK0000001/transitions", json={"name": "start"},
                            headers={**agent, "If-Match": '"1"'})
    by_body = client.post(f"{TICKETS}/TCK0000001/transitions",
                          json={"name": "start", "version": 1}, headers=agent)

    assert by_header.status_code == 412
    assert by_body.status_code == 412
    assert client.get(f"{TICKETS}/TCK0000001", headers=agent).get_json()["state"] == "new"


def test_unknown_transition_is_422_naming_it(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/transitions", json={"name": "teleport"},
                           headers=agent)

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"name": ["unknown transition 'teleport'"]}


def test_field_the_transition_does_not_set_is_422(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/transitions",
                           json={"name": "resolve",
                                 "fields": {"resolution": "Fixed", "category": "network"}},
                           headers=agent)

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"category": ["not set by resolve"]}
    ticket = client.get(f"{TICKETS}/TCK0000001", headers=agent).get_json()
    assert (ticket["state"], ticket["category"]) == ("new", "general")


def test_invalid_value_of_a_transition_field_is_422_naming_the_field(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/transitions",
                           json={"name": "resolve", "fields": {"resolution": 42}},
                           headers=agent)

    assert response.status_code == 422
    assert "resolution" in error_of(response)["fields"]


# -- comments and work notes ---------------------------------------------------------------


def test_agent_adds_a_public_comment_and_a_work_note(client, agent):
    open_ticket(client, agent)

    comment = client.post(f"{TICKETS}/TCK0000001/comments", json={"body": "On my way"},
                          headers=agent)
    note = client.post(f"{TICKETS}/TCK0000001/comments",
                       json={"body": "Toner order #55", "public": False}, headers=agent)

    assert comment.status_code == 201
    assert comment.get_json()["public"] is True
    assert comment.get_json()["author"] == "agent@example.org"
    assert note.status_code == 201
    assert note.get_json()["public"] is False
    listed = client.get(f"{TICKETS}/TCK0000001/comments", headers=agent).get_json()["items"]
    assert [(c["body"], c["public"]) for c in listed] == [("On my way", True),
                                                          ("Toner order #55", False)]


def test_a_comment_does_not_change_the_etag(client, agent):
    open_ticket(client, agent)

    client.post(f"{TICKETS}/TCK0000001/comments", json={"body": "Looking"}, headers=agent)

    assert client.get(f"{TICKETS}/TCK0000001", headers=agent).headers["ETag"] == '"1"'


def test_requester_comments_on_their_ticket(client, requester_a):
    open_ticket(client, requester_a)

    response = client.post(f"{TICKETS}/TCK0000001/comments", json={"body": "Still broken"},
                           headers=requester_a)

    assert response.status_code == 201
    assert response.get_json()["author"] == "ann@a.example"


def test_requester_cannot_post_a_work_note(client, requester_a):
    open_ticket(client, requester_a)

    response = client.post(f"{TICKETS}/TCK0000001/comments",
                           json={"body": "psst", "public": False}, headers=requester_a)

    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


def test_requester_never_sees_work_notes_in_comments_or_journal(client, agent, requester_a):
    open_ticket(client, requester_a)
    client.post(f"{TICKETS}/TCK0000001/comments", json={"body": "We are on it"},
                headers=agent)
    client.post(f"{TICKETS}/TCK0000001/comments",
                json={"body": "User keeps breaking it", "public": False}, headers=agent)

    comments = client.get(f"{TICKETS}/TCK0000001/comments", headers=requester_a)
    journal = client.get(f"{TICKETS}/TCK0000001/journal", headers=requester_a)

    assert [c["body"] for c in comments.get_json()["items"]] == ["We are on it"]
    assert "User keeps breaking it" not in journal.get_data(as_text=True)
    assert all(entry["public"] for entry in journal.get_json()["items"])
    staff_journal = client.get(f"{TICKETS}/TCK0000001/journal", headers=agent).get_json()
    assert "work_noted" in [entry["kind"] for entry in staff_journal["items"]]


def test_blank_comment_is_422(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/comments", json={"body": "   "},
                           headers=agent)

    assert response.status_code == 422
    assert "body" in error_of(response)["fields"]


# -- links ---------------------------------------------------------------------------------


def test_link_is_shown_from_both_sides_with_the_inverse_label(client, agent):
    open_ticket(client, agent, title="Outage")
    open_ticket(client, agent, title="Broken switch")

    response = client.post(f"{TICKETS}/TCK0000001/links",
                           json={"target": "tck0000002", "kind": "caused_by"}, headers=agent)

    assert response.status_code == 201
    link = response.get_json()
    assert (link["kind"], link["direction"], link["label"]) == ("caused_by", "outgoing",
                                                                "caused by")
    assert link["record"]["number"] == "TCK0000002"
    assert link["record"]["title"] == "Broken switch"
    assert link["record"]["available"] is True
    back = client.get(f"{TICKETS}/TCK0000002/links", headers=agent).get_json()["items"]
    assert [(x["direction"], x["label"], x["record"]["number"]) for x in back] == [
        ("incoming", "caused", "TCK0000001")]
    forth = client.get(f"{TICKETS}/TCK0000001/links", headers=agent).get_json()["items"]
    assert [(x["direction"], x["label"], x["record"]["number"]) for x in forth] == [
        ("outgoing", "caused by", "TCK0000002")]


def test_link_kind_defaults_to_relates_to(client, agent):
    open_ticket(client, agent)
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/links", json={"target": "TCK0000002"},
                           headers=agent)

    assert response.status_code == 201
    assert response.get_json()["kind"] == "relates_to"


def test_the_same_link_twice_is_409(client, agent):
    open_ticket(client, agent)
    open_ticket(client, agent)
    client.post(f"{TICKETS}/TCK0000001/links", json={"target": "TCK0000002"}, headers=agent)

    response = client.post(f"{TICKETS}/TCK0000001/links", json={"target": "TCK0000002"},
                           headers=agent)

    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert len(client.get(f"{TICKETS}/TCK0000001/links", headers=agent)
               .get_json()["items"]) == 1


def test_link_to_an_unknown_record_is_422_on_target(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/links", json={"target": "TCK0000404"},
                           headers=agent)

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"target": ["no such record"]}


def test_a_ticket_cannot_link_to_itself(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/links", json={"target": "TCK0000001"},
                           headers=agent)

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"target": ["same record"]}


def test_unknown_link_kind_is_422_on_kind(client, agent):
    open_ticket(client, agent)
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/links",
                           json={"target": "TCK0000002", "kind": "loves"}, headers=agent)

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"kind": ["unknown link kind"]}


# -- journal -------------------------------------------------------------------------------


def test_journal_has_one_entry_per_change_with_field_diffs_and_actor(client, agent):
    open_ticket(client, agent, priority=3)
    client.patch(f"{TICKETS}/TCK0000001", json={"priority": 1, "category": "hardware"},
                 headers=agent)
    client.post(f"{TICKETS}/TCK0000001/transitions",
                json={"name": "resolve", "fields": {"resolution": "Swapped the drum"},
                      "comment": "Done"}, headers=agent)
    client.post(f"{TICKETS}/TCK0000001/comments", json={"body": "Thanks"}, headers=agent)

    response = client.get(f"{TICKETS}/TCK0000001/journal", headers=agent)

    assert response.status_code == 200
    entries = response.get_json()["items"]
    assert [e["kind"] for e in entries] == ["created", "updated", "transitioned", "commented"]
    assert {e["actor"] for e in entries} == {"agent@example.org"}
    created, updated, transitioned, commented = entries
    assert created["data"]["title"] == "Printer on floor 2 is jammed"
    assert created["data"]["priority"] == 3
    assert updated["data"]["changes"] == {"priority": [3, 1], "category": ["general",
                                                                           "hardware"]}
    assert transitioned["data"]["transition"] == "resolve"
    assert transitioned["data"]["changes"] == {"state": ["new", "resolved"],
                                               "resolution": ["", "Swapped the drum"]}
    assert transitioned["body"] == "Done"
    assert commented["body"] == "Thanks"
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids)


def test_journal_notes_a_description_edit_without_copying_the_text(client, agent):
    open_ticket(client, agent, description="old words")

    client.patch(f"{TICKETS}/TCK0000001", json={"description": "new words"}, headers=agent)

    entries = client.get(f"{TICKETS}/TCK0000001/journal", headers=agent).get_json()["items"]
    assert entries[-1]["data"]["changes"] == {"description": ["(edited)", "(edited)"]}


def test_link_and_attachment_are_journaled(client, agent):
    open_ticket(client, agent)
    open_ticket(client, agent)
    client.post(f"{TICKETS}/TCK0000001/links", json={"target": "TCK0000002"}, headers=agent)
    client.post(f"{TICKETS}/TCK0000001/attachments",
                data={"file": (io.BytesIO(b"log"), "app.log")},
                content_type="multipart/form-data", headers=agent)

    entries = client.get(f"{TICKETS}/TCK0000001/journal", headers=agent).get_json()["items"]

    assert [e["kind"] for e in entries] == ["created", "linked", "attached"]
    assert entries[1]["data"] == {"kind": "relates_to", "target": "TCK0000002"}
    assert entries[2]["data"]["filename"] == "app.log"


# -- attachments ---------------------------------------------------------------------------


def test_uploaded_file_is_listed_and_downloads_byte_for_byte(client, agent):
    open_ticket(client, agent)
    content = bytes(range(256)) * 40

    upload = client.post(f"{TICKETS}/TCK0000001/attachments",
                         data={"file": (io.BytesIO(content), "dump.bin",
                                        "application/octet-stream")},
                         content_type="multipart/form-data", headers=agent)

    assert upload.status_code == 201
    attachment = upload.get_json()
    assert attachment["filename"] == "dump.bin"
    assert attachment["size"] == len(content)
    assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
    listed = client.get(f"{TICKETS}/TCK0000001/attachments", headers=agent).get_json()
    assert [a["id"] for a in listed["items"]] == [attachment["id"]]
    download = client.get(f"{TICKETS}/TCK0000001/attachments/{attachment['id']}",
                          headers=agent)
    assert download.status_code == 200
    assert download.data == content
    assert download.mimetype == "application/octet-stream"
    assert "dump.bin" in download.headers["Content-Disposition"]


def test_upload_keeps_only_the_last_part_of_a_file_name_with_a_path(client, agent):
    open_ticket(client, agent)

    upload = client.post(f"{TICKETS}/TCK0000001/attachments",
                         data={"file": (io.BytesIO(b"x"), "..\\..\\etc/passwd")},
                         content_type="multipart/form-data", headers=agent)

    assert upload.status_code == 201
    assert upload.get_json()["filename"] == "passwd"


def test_upload_without_a_file_field_is_422(client, agent):
    open_ticket(client, agent)

    response = client.post(f"{TICKETS}/TCK0000001/attachments",
                           data={"document": (io.BytesIO(b"x"), "a.txt")},
                           content_type="multipart/form-data", headers=agent)

    assert response.status_code == 422
    assert error_of(response)["fields"] == {"file": ["missing"]}


def test_download_of_an_attachment_of_another_ticket_is_404(client, agent):
    open_ticket(client, agent)
    open_ticket(client, agent)
    upload = client.post(f"{TICKETS}/TCK0000001/attachments",
                         data={"file": (io.BytesIO(b"secret"), "a.txt")},
                         content_type="multipart/form-data", headers=agent)

    response = client.get(f"{TICKETS}/TCK0000002/attachments/{upload.get_json()['id']}",
                          headers=agent)

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# -- listing and filters -------------------------------------------------------------------


@pytest.fixture
def queue(client, agent, make_token):
    """Five tickets in agencies A and B, some assigned to the agent, one resolved."""
    make_token("ann@a.example", role="requester", agency="A")
    make_token("bea@b.example", role="requester", agency="B")
    open_ticket(client, agent, title="Printer jammed", priority=1, agency="A",
                assignee="agent@example.org")                                  # TCK0000001
    open_ticket(client, agent, title="Laptop slow", priority=3, agency="B",
                description="the printer driver eats the CPU")                 # TCK0000002
    open_ticket(client, agent, title="Password reset", priority=2, agency="A")  # TCK0000003
    open_ticket(client, agent, title="New monitor", priority=5, agency="B",
                assignee="agent@example.org")                                  # TCK0000004
    open_ticket(client, agent, title="Discount 100% off", priority=3)         # TCK0000005
    client.post(f"{TICKETS}/TCK0000003/transitions",
                json={"name": "resolve", "fields": {"resolution": "Reset"}}, headers=agent)


def test_list_without_filters_shows_newest_first(client, agent, queue):
    response = client.get(TICKETS, headers=agent)

    assert numbers(response) == ["TCK0000005", "TCK0000004", "TCK0000003", "TCK0000002",
                                 "TCK0000001"]
    assert response.get_json()["next"] is None


def test_list_filters_by_state(client, agent, queue):
    assert numbers(client.get(TICKETS, query_string={"state": "resolved"},
                              headers=agent)) == ["TCK0000003"]
    assert len(numbers(client.get(TICKETS, query_string={"state": "new,resolved"},
                                  headers=agent))) == 5


def test_list_filters_by_priority(client, agent, queue):
    response = client.get(TICKETS, query_string={"priority": "1,2", "sort": "number"},
                          headers=agent)

    assert numbers(response) == ["TCK0000001", "TCK0000003"]


def test_list_filters_by_assignee_me_and_none(client, agent, queue):
    mine = client.get(TICKETS, query_string={"assignee": "me", "sort": "number"},
                      headers=agent)
    unassigned = client.get(TICKETS, query_string={"assignee": "none", "sort": "number"},
                            headers=agent)
    by_email = client.get(TICKETS, query_string={"assignee": "Agent@Example.org",
                                                 "sort": "number"}, headers=agent)

    assert numbers(mine) == ["TCK0000001", "TCK0000004"]
    assert numbers(unassigned) == ["TCK0000002", "TCK0000003", "TCK0000005"]
    assert numbers(by_email) == ["TCK0000001", "TCK0000004"]


def test_list_filters_by_agency(client, agent, queue):
    response = client.get(TICKETS, query_string={"agency": "B", "sort": "number"},
                          headers=agent)

    assert numbers(response) == ["TCK0000002", "TCK0000004"]


def test_text_search_looks_in_title_and_description_ignoring_case(client, agent, queue):
    response = client.get(TICKETS, query_string={"q": "PRINTER", "sort": "number"},
                          headers=agent)

    assert numbers(response) == ["TCK0000001", "TCK0000002"]


def test_text_search_finds_a_ticket_by_its_number(client, agent, queue):
    response = client.get(TICKETS, query_string={"q": "tck0000004"}, headers=agent)

    assert numbers(response) == ["TCK0000004"]


def test_text_search_takes_percent_and_underscore_literally(client, agent, queue):
    percent = client.get(TICKETS, query_string={"q": "100%"}, headers=agent)
    underscore = client.get(TICKETS, query_string={"q": "_"}, headers=agent)

    assert numbers(percent) == ["TCK0000005"]
    assert numbers(underscore) == []


def test_list_filters_by_updated_since(client, agent, queue):
    changed = client.patch(f"{TICKETS}/TCK0000002", json={"priority": 2}, headers=agent)
    since = changed.get_json()["updated_at"]

    response = client.get(TICKETS, query_string={"updated_since": since}, headers=agent)

    assert numbers(response) == ["TCK0000002"]


def test_updated_since_accepts_z_for_utc(client, agent, queue):
    changed = client.patch(f"{TICKETS}/TCK0000002", json={"priority": 2}, headers=agent)
    since = changed.get_json()["updated_at"].replace("+00:00", "Z")

    response = client.get(TICKETS, query_string={"updated_since": since}, headers=agent)

    assert numbers(response) == ["TCK0000002"]


def test_filters_combine(client, agent, queue):
    response = client.get(TICKETS, query_string={"agency": "A", "state": "new",
                                                 "assignee": "me"}, headers=agent)

    assert numbers(response) == ["TCK0000001"]


# -- keyset pagination ---------------------------------------------------------------------


PRIORITIES = [None, 1, 2, 3, 4, 5]


@pytest.fixture
def many_tickets(client, agent) -> list[dict]:
    """120 tickets, priorities cycling through none and 1 to 5."""
    return [open_ticket(client, agent, title=f"Ticket {i}", priority=PRIORITIES[i % 6])
            for i in range(120)]


def walk(client, headers, **params) -> list[list[str]]:
    """Follow ``next`` from the first page to the last; return each page's numbers."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(TICKETS, query_string=query, headers=headers)
        pages.append(numbers(response))
        cursor = response.get_json()["next"]
        if cursor is None:
            return pages
        assert len(pages) < 10, "pagination does not end"


def test_pages_by_newest_first_cover_120_tickets_without_gaps_or_repeats(client, agent,
                                                                         many_tickets):
    pages = walk(client, agent, sort="-created_at", limit=50)

    assert [len(page) for page in pages] == [50, 50, 20]
    seen = [number for page in pages for number in page]
    assert seen == [t["number"] for t in reversed(many_tickets)]


def test_pages_by_priority_cover_120_tickets_in_priority_order(client, agent, many_tickets):
    pages = walk(client, agent, sort="priority", limit=50)

    assert [len(page) for page in pages] == [50, 50, 20]
    seen = [number for page in pages for number in page]
    expected = sorted(many_tickets, key=lambda t: (t["priority"] or 99, t["number"]))
    assert seen == [t["number"] for t in expected]
    assert len(set(seen)) == 120


def test_pages_by_oldest_first_and_by_descending_priority(client, agent, many_tickets):
    oldest = [n for page in walk(client, agent, sort="created_at", limit=50) for n in page]
    by_priority = [n for page in walk(client, agent, sort="-priority", limit=50)
                   for n in page]

    assert oldest == [t["number"] for t in many_tickets]
    expected = sorted(many_tickets, key=lambda t: (t["priority"] or 99, t["number"]),
                      reverse=True)
    assert by_priority == [t["number"] for t in expected]


def test_pages_by_date_do_not_depend_on_the_database_session_time_zone(app, client, agent,
                                                                       monkeypatch):
    """Stored timestamps are UTC; a server whose TimeZone is not UTC must page the same.

    (PGTZ sets the session time zone of new PostgreSQL connections; SQLite ignores it.)
    """
    tickets = [open_ticket(client, agent, title=f"Ticket {i}") for i in range(5)]
    monkeypatch.setenv("PGTZ", "America/New_York")
    app.extensions["itsm"].engine.dispose()  # new connections pick up the time zone

    newest = walk(client, agent, sort="-created_at", limit=2)
    oldest = walk(client, agent, sort="updated_at", limit=2)

    assert [n for page in newest for n in page] == [t["number"] for t in reversed(tickets)]
    assert [n for page in oldest for n in page] == [t["number"] for t in tickets]


def test_a_page_that_ends_exactly_at_the_last_ticket_has_no_next(client, agent):
    for i in range(4):
        open_ticket(client, agent, title=f"Ticket {i}")

    pages = walk(client, agent, sort="number", limit=2)

    assert pages == [["TCK0000001", "TCK0000002"], ["TCK0000003", "TCK0000004"]]


# -- agency isolation ----------------------------------------------------------------------


def test_requester_gets_404_for_a_ticket_of_another_agency(client, requester_a, requester_b):
    open_ticket(client, requester_b, title="Bea's secret")

    for path in ("", "/comments", "/journal", "/links", "/attachments", "/transitions"):
        response = client.get(f"{TICKETS}/TCK0000001{path}", headers=requester_a)
        assert response.status_code == 404, path
        assert "secret" not in response.get_data(as_text=True)
    assert client.get(f"{TICKETS}/tck0000001", headers=requester_a).status_code == 404


def test_requester_cannot_write_to_a_ticket_of_another_agency(client, requester_a,
                                                              requester_b):
    open_ticket(client, requester_b)

    comment = client.post(f"{TICKETS}/TCK0000001/comments", json={"body": "hi"},
                          headers=requester_a)
    upload = client.post(f"{TICKETS}/TCK0000001/attachments",
                         data={"file": (io.BytesIO(b"x"), "a.txt")},
                         content_type="multipart/form-data", headers=requester_a)

    assert comment.status_code == 404
    assert upload.status_code == 404


def test_requester_never_sees_another_agency_in_lists_or_search(client, requester_a,
                                                                 colleague_a, requester_b):
    open_ticket(client, requester_b, title="Printer of agency B")
    open_ticket(client, colleague_a, title="Printer of agency A")

    listed = client.get(TICKETS, headers=requester_a)
    searched = client.get(TICKETS, query_string={"q": "printer"}, headers=requester_a)
    by_number = client.get(TICKETS, query_string={"q": "TCK0000001"}, headers=requester_a)
    by_agency = client.get(TICKETS, query_string={"agency": "B"}, headers=requester_a)

    assert numbers(listed) == ["TCK0000002"]
    assert numbers(searched) == ["TCK0000002"]
    assert numbers(by_number) == []
    assert numbers(by_agency) == []


def test_requester_sees_tickets_of_colleagues_in_the_same_agency(client, requester_a,
                                                                  colleague_a):
    open_ticket(client, colleague_a, title="Carl's ticket")

    response = client.get(f"{TICKETS}/TCK0000001", headers=requester_a)

    assert response.status_code == 200
    assert response.get_json()["requester"] == "carl@a.example"
    assert response.get_json()["agency"] == "A"


def test_requester_ticket_gets_their_agency_and_them_as_requester(client, requester_a):
    ticket = open_ticket(client, requester_a)

    assert (ticket["requester"], ticket["agency"]) == ("ann@a.example", "A")


def test_requester_cannot_set_assignee_or_group(client, requester_a):
    response = client.post(TICKETS, json={"title": "Please take it", "group": "Network",
                                          "assignee": "agent@example.org"},
                           headers=requester_a)

    assert response.status_code == 422
    fields = error_of(response)["fields"]
    assert set(fields) == {"assignee", "group"}
    assert client.get(TICKETS, headers=requester_a).get_json()["items"] == []


def test_requester_cannot_file_a_ticket_for_another_agency(client, requester_a, requester_b):
    response = client.post(TICKETS, json={"title": "Sneaky", "agency": "B"},
                           headers=requester_a)

    assert response.status_code == 422
    assert "agency" in error_of(response)["fields"]


def test_link_to_another_agency_is_hidden_from_the_requester(client, agent, requester_a,
                                                             requester_b):
    open_ticket(client, requester_a, title="Ann's ticket")
    open_ticket(client, requester_b, title="Bea's private ticket")
    client.post(f"{TICKETS}/TCK0000001/links", json={"target": "TCK0000002"}, headers=agent)

    links = client.get(f"{TICKETS}/TCK0000001/links", headers=requester_a)
    journal = client.get(f"{TICKETS}/TCK0000001/journal", headers=requester_a)

    assert links.get_json()["items"] == []
    assert "Bea's private ticket" not in journal.get_data(as_text=True)
    assert "TCK0000002" not in journal.get_data(as_text=True)


# -- the caller ----------------------------------------------------------------------------


def test_me_tells_a_requester_who_they_are(client, requester_a):
    response = client.get("/api/v1/me", headers=requester_a)

    assert response.status_code == 200
    assert response.get_json() == {"email": "ann@a.example", "name": "ann",
                                   "role": "requester", "agency": "A", "groups": []}


def test_me_of_an_agent_has_no_agency(client, agent):
    response = client.get("/api/v1/me", headers=agent)

    assert response.get_json()["role"] == "agent"
    assert response.get_json()["agency"] is None


def test_index_lists_the_tickets_collection(client):
    response = client.get("/api/v1/")

    assert response.status_code == 200
    assert response.get_json()["collections"]["tickets"] == {
        "type": "ticket", "label": "Ticket", "prefix": "TCK", "plugin": "tickets"}
