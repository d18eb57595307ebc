"""Queues: sorting by any column under cursor paging, filters, totals, views, saved views,
bulk actions with refusals, agency isolation and bad input, on the API and the console."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sample_plugin
from sqlalchemy import select, update

from itsm.core import queues
from itsm.core.models import SLA_NONE, JournalEntry, Record, SavedView, utcnow
from itsm.core.sla_models import SlaClock

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def itsm_plugins():
    return [sample_plugin]


@pytest.fixture
def people(make_token, runner):
    cast = {
        "agent": make_token("agent@example.org", role="agent", password=PASSWORD),
        "other": make_token("other@example.org", role="agent", password=PASSWORD),
        "ann": make_token("ann@aaa.example.org", role="requester", agency="AAA",
                          password=PASSWORD),
        "bob": make_token("bob@bbb.example.org", role="requester", agency="BBB",
                          password=PASSWORD),
    }
    for group in ("Network", "Desktop"):
        assert runner.invoke(["groups", "add", group]).exit_code == 0
    assert runner.invoke(["groups", "add-member", "Network", "agent@example.org"]).exit_code == 0
    return cast


def new_ticket(client, headers, **fields) -> str:
    response = client.post("/api/v1/tickets?suggest=false",
                           json={"title": "Printer jams", **fields}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["number"]


def listing(client, headers, **args):
    response = client.get("/api/v1/tickets", query_string=args, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def all_pages(client, headers, **args) -> list[str]:
    numbers, cursor = [], None
    while True:
        page = listing(client, headers, **args, **({"cursor": cursor} if cursor else {}))
        numbers += [item["number"] for item in page["items"]]
        cursor = page["next"]
        if not cursor:
            return numbers


def sign_in(client, email):
    token = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    answer = client.post("/login", data={"email": email, "password": PASSWORD,
                                         "csrf_token": token})
    assert answer.status_code == 302


def post(client, path, data):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**data, "csrf_token": token})


def text(response) -> str:
    return response.get_data(as_text=True)


# -- the next SLA due time and sorting ------------------------------------------------------


def test_next_sla_due_is_kept_on_the_record_and_cleared_when_no_clock_runs(app, client, people):
    number = new_ticket(client, people["agent"], priority=1)
    itsm = app.extensions["itsm"]
    with itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.number == number))
        dues = session.scalars(select(SlaClock.breach_due_at).where(
            SlaClock.record_id == record.id, SlaClock.state == "running")).all()
        assert record.sla_due_at == min(dues) < SLA_NONE
        version = record.version
    moved = client.post(f"/api/v1/tickets/{number}/transitions", json={"name": "cancel"},
                        headers=people["agent"])
    assert moved.status_code == 200
    with itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.number == number))
        assert record.sla_due_at == SLA_NONE
        assert record.version == version + 1  # the due time is no change of its own


def test_every_column_sorts_and_cursor_pages_never_skip_nor_repeat(client, people):
    agent = people["agent"]
    for i, (priority, group) in enumerate([(3, "Network"), (1, None), (3, "Desktop"),
                                           (2, "Network"), (None, None), (3, "Network"),
                                           (1, "Desktop")]):
        new_ticket(client, agent, title=f"Same title {i % 2}", priority=priority,
                   **({"group": group} if group else {}),
                   **({"assignee": "agent@example.org"} if i % 3 == 0 else {}),
                   requester="ann@aaa.example.org" if i % 2 else "bob@bbb.example.org")
    for key in ("number", "title", "requester", "assignee", "group", "agency", "priority",
                "state", "sla_due", "updated_at", "created_at", "category"):
        for sort in (key, f"-{key}"):
            whole = [i["number"] for i in listing(client, agent, sort=sort, limit=100)["items"]]
            assert len(whole) == 7
            assert all_pages(client, agent, sort=sort, limit=2) == whole, sort
    by_due = listing(client, agent, sort="sla_due")["items"]
    assert [i["priority"] for i in by_due][:2] == [1, 1]  # tightest targets first
    by_group = [i["group"] for i in listing(client, agent, sort="group")["items"]]
    assert by_group == sorted(by_group, key=lambda g: g or "")


# -- filters --------------------------------------------------------------------------------


def test_filters_narrow_the_queue(app, client, people):
    agent = people["agent"]
    mine = new_ticket(client, agent, group="Network", assignee="agent@example.org",
                      category="network")
    waiting = new_ticket(client, agent, group="Network")
    other_group = new_ticket(client, agent, group="Desktop")
    late = new_ticket(client, agent, priority=4)
    with app.extensions["itsm"].Session() as session:
        session.execute(update(Record).where(Record.number == late).values(
            sla_due_at=utcnow() - timedelta(hours=1)))
        session.execute(update(Record).where(Record.number == waiting).values(
            customer_reply_at=utcnow()))
        session.commit()

    def numbers(**args):
        return {i["number"] for i in listing(client, agent, **args)["items"]}

    assert numbers(assignee="me") == {mine}
    assert numbers(assignee="unassigned", group="mine") == {waiting}
    assert numbers(group="Desktop") == {other_group}
    assert numbers(category="network") == {mine}
    assert listing(client, agent, category="network")["total"]["count"] == 1
    assert numbers(breaching_within="0") == {late}
    assert late in numbers(breaching_within="60")
    assert numbers(updated_by_customer="true") == {waiting}
    assert numbers(state="open") == {mine, waiting, other_group, late}
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert numbers(created_since=tomorrow) == set()
    assert numbers(created_before=tomorrow, updated_before=tomorrow) == \
        {mine, waiting, other_group, late}


@pytest.mark.parametrize("args, field", [
    ({"sort": "colour"}, "sort"), ({"breaching_within": "soon"}, "breaching_within"),
    ({"breaching_within": "-5"}, "breaching_within"), ({"created_since": "yesterday"},
                                                        "created_since"),
    ({"updated_by_customer": "maybe"}, "updated_by_customer"), ({"service": "Mail"}, "service"),
    ({"group": "No such group"}, "group"), ({"cursor": "garbage"}, "cursor")])
def test_bad_list_arguments_get_field_messages(client, people, args, field):
    response = client.get("/api/v1/tickets", query_string=args, headers=people["agent"])
    assert response.status_code == 422
    assert field in response.json["error"]["fields"]
    sign_in(client, "agent@example.org")
    page = client.get("/records/tickets", query_string=args)
    assert page.status_code == 400
    assert 'role="alert"' in text(page)


# -- totals ---------------------------------------------------------------------------------


def test_the_total_is_exact_up_to_the_bound_and_says_so_beyond(app, client, people,
                                                              monkeypatch):
    agent = people["agent"]
    for _ in range(5):
        new_ticket(client, agent)
    assert listing(client, agent, limit=2)["total"] == {"count": 5, "exact": True,
                                                        "more_than": False}
    monkeypatch.setattr(queues, "TOTAL_BOUND", 3)
    total = listing(client, agent, limit=2)["total"]
    assert total["exact"] is False and total["count"] >= 3
    sign_in(client, "agent@example.org")
    page = text(client.get("/records/tickets"))
    assert "More than 3 records" in page or "About" in page


# -- views ----------------------------------------------------------------------------------


def test_builtin_views_and_a_saved_view(app, client, people):
    agent = people["agent"]
    unassigned = new_ticket(client, agent, group="Network", title="Unassigned network")
    taken = new_ticket(client, agent, group="Network", assignee="other@example.org",
                       title="Taken network")
    elsewhere = new_ticket(client, agent, group="Desktop", title="Desktop one")
    sign_in(client, "agent@example.org")
    page = text(client.get("/records/tickets?view=my_groups_unassigned"))
    assert unassigned in page and taken not in page and elsewhere not in page
    assert 'aria-current="page">My groups&#39; unassigned' in page
    assert "1 record" in page
    for view in queues.builtin_views(app.extensions["itsm"].types.get("ticket")):
        assert client.get(f"/records/tickets?view={view.key}").status_code == 200
    saved = post(client, "/records/tickets/views",
                 {"name": "Desktop queue", "group": "Desktop", "sort": "-priority"})
    assert saved.status_code == 302
    page = text(client.get(saved.headers["Location"]))
    assert "Desktop queue" in page and elsewhere in page and unassigned not in page
    refused = post(client, "/records/tickets/views", {"name": "  ", "group": "Desktop"})
    assert refused.status_code == 302
    assert "enter a name" in text(client.get(refused.headers["Location"]))
    with app.extensions["itsm"].Session() as session:
        view_id = session.scalar(select(SavedView.id))
    other = app.test_client()
    sign_in(other, "other@example.org")
    assert "Desktop queue" not in text(other.get("/records/tickets"))
    assert post(other, f"/records/tickets/views/{view_id}/delete", {}).status_code == 404
    assert post(client, f"/records/tickets/views/{view_id}/delete", {}).status_code == 302
    assert f"view=saved-{view_id}" not in text(client.get("/records/tickets"))


def test_p1_and_major_stand_out_and_rows_are_links(client, people):
    urgent = new_ticket(client, people["agent"], priority=1)
    sign_in(client, "agent@example.org")
    page = text(client.get("/records/tickets"))
    row = page[page.index(f'value="{urgent}"') - 400:page.index(f'value="{urgent}"')]
    assert 'class="p1' in row
    assert f'href="/records/tickets/{urgent}"' in page


# -- bulk -----------------------------------------------------------------------------------


def test_bulk_actions_report_each_row_and_journal_each_done_one(app, client, people):
    agent = people["agent"]
    first, second = new_ticket(client, agent), new_ticket(client, agent)
    resolved = new_ticket(client, agent)  # then cancelled: "start" is refused
    assert client.post(f"/api/v1/tickets/{resolved}/transitions", json={"name": "cancel"},
                       headers=agent).status_code == 200
    sign_in(client, "agent@example.org")
    answer = post(client, "/records/tickets/bulk",
                  {"action": "transition", "transition": "start",
                   "number": [first, second, resolved]})
    page = text(answer)
    assert answer.status_code == 200
    assert "2 done, 1 refused" in page
    assert "cannot start from state" in page.lower()
    answer = post(client, "/records/tickets/bulk", {"action": "assign", "assignee": "me",
                                                    "number": [first, second]})
    assert "2 done" in text(answer)
    itsm = app.extensions["itsm"]
    with itsm.Session() as session:
        ids = session.scalars(select(Record.id).where(Record.number.in_([first, second])))
        kinds = session.scalars(select(JournalEntry.kind).where(
            JournalEntry.record_id.in_(list(ids)))).all()
    assert kinds.count("transitioned") == 2 and kinds.count("updated") == 2
    assert listing(client, agent, assignee="me")["total"]["count"] == 2
    answer = post(client, "/records/tickets/bulk", {"action": "comment", "body": "",
                                                    "number": [first]})
    assert answer.status_code == 302  # back to the queue with the message


def test_requesters_get_no_bulk_form_and_cannot_post_one(client, people):
    number = new_ticket(client, people["ann"])
    sign_in(client, "ann@aaa.example.org")
    assert 'action="/records/tickets/bulk"' not in text(client.get("/records/tickets"))
    answer = post(client, "/records/tickets/bulk", {"action": "assign", "assignee": "me",
                                                    "number": [number]})
    assert "refused" in text(answer).lower() or answer.status_code in (302, 403)


# -- agencies -------------------------------------------------------------------------------


def test_agencies_never_see_each_others_records_in_lists_counts_or_totals(client, people):
    for _ in range(3):
        new_ticket(client, people["ann"], title="Ann's printer")
    secret = new_ticket(client, people["bob"], title="Bob's secret")
    seen = listing(client, people["ann"], limit=1)
    assert seen["total"]["count"] == 3
    assert all_pages(client, people["ann"], limit=1, sort="requester").count(secret) == 0
    assert listing(client, people["ann"], q="secret")["total"]["count"] == 0
    sign_in(client, "ann@aaa.example.org")
    for args in ({}, {"view": "all_open"}, {"sort": "agency"}, {"q": "Bob"}):
        page = text(client.get("/records/tickets", query_string=args))
        assert secret not in page and "secret" not in page
    assert "3 records" in text(client.get("/records/tickets"))


def test_home_tiles_count_their_view_and_link_to_it(client, people):
    new_ticket(client, people["agent"], group="Network")
    new_ticket(client, people["agent"], group="Network", assignee="agent@example.org")
    sign_in(client, "agent@example.org")
    page = text(client.get("/home"))
    for key, count in (("my_open", 1), ("my_groups_unassigned", 1)):
        tile = re.search(rf'href="/records/tickets\?view={key}"><span class="value">(\d+)',
                         page)
        assert tile and int(tile.group(1)) == count, key
        listed = text(client.get(f"/records/tickets?view={key}"))
        assert f"{count} record" in listed
