"""In-app notifications: each kind reaches the right person's inbox through the outbox,
marking read (one, all; API and pages), e-mail by preference against a real SMTP server,
and agencies kept apart."""

from __future__ import annotations

import re

import pytest
import sample_plugin
from sqlalchemy import select, update
from test_email import SmtpServer

from itsm.adapters import email as email_plugin
from itsm.core import inbox
from itsm.core.models import Event, Record

PASSWORD = "correct horse battery"
TICKETS = "/api/v1/tickets"
AGENT, BOB, CAROL = "agent@example.org", "bob@example.org", "carol@example.org"
ANN, ZOE = "ann@aaa.example.org", "zoe@bbb.example.org"


@pytest.fixture
def itsm_plugins():
    return [sample_plugin]


@pytest.fixture
def people(make_token):
    return {"agent": make_token(AGENT, role="agent", password=PASSWORD),
            "bob": make_token(BOB, role="agent", password=PASSWORD),
            "carol": make_token(CAROL, role="agent", password=PASSWORD),
            "ann": make_token(ANN, role="requester", agency="AAA", password=PASSWORD),
            "zoe": make_token(ZOE, role="requester", agency="BBB", password=PASSWORD)}


def new_ticket(client, headers, **fields) -> str:
    response = client.post(TICKETS, json={"title": "Printer jams", **fields}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json["number"]


def comment(client, headers, number, body, public=True):
    response = client.post(f"{TICKETS}/{number}/comments", headers=headers,
                           json={"body": body, "public": public})
    assert response.status_code == 201, response.json


def inbox_of(client, headers, **args) -> dict:
    response = client.get("/api/v1/notifications", headers=headers, query_string=args)
    assert response.status_code == 200, response.json
    return response.json


def kinds(client, headers) -> list[tuple[str, str]]:
    return [(n["kind"], n["record"]["number"]) for n in inbox_of(client, headers)["items"]]


def raw_event(itsm, number: str, name: str, **payload) -> None:
    """An event as a plugin of its own would write it to the outbox."""
    with itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.number == number))
        session.add(Event(name=name, record_id=record.id, payload={
            "record": {"number": number, "type": record.type, "title": record.title,
                       "state": record.state, "priority": record.priority}, **payload}))
        session.commit()


def test_an_assignment_reaches_the_assignee_and_never_the_one_who_assigned(client, itsm,
                                                                           people):
    number = new_ticket(client, people["agent"], assignee=BOB)
    other = new_ticket(client, people["agent"])
    client.patch(f"{TICKETS}/{other}", json={"assignee": CAROL}, headers=people["agent"])
    new_ticket(client, people["bob"], assignee=BOB)  # one's own: nobody is told
    itsm.outbox.drain()
    assert kinds(client, people["bob"]) == [("assigned", number)]
    assert kinds(client, people["carol"]) == [("assigned", other)]
    assert kinds(client, people["agent"]) == []
    item = inbox_of(client, people["bob"])["items"][0]
    assert item["summary"] == f"agent assigned {number} to you"  # by name
    assert item["record"]["url"] == f"/records/tickets/{number}" and item["read"] is False
    # Delivered again (a retry after a lost answer): still one notification.
    with itsm.Session() as session:
        event = session.scalars(select(Event).order_by(Event.id)).first()
    inbox.InboxChannel().deliver(inbox.EventMessage.of(event),
                                 inbox.Recipient("inbox", item_address(itsm, BOB)))
    assert len(inbox_of(client, people["bob"])["items"]) == 1


def item_address(itsm, email: str) -> str:
    from itsm.core.models import User

    with itsm.Session() as session:
        return f"{session.scalar(select(User.id).where(User.email == email))}:assigned"


def test_a_public_reply_reaches_the_assignee_a_work_note_mention_its_person(client, itsm,
                                                                            people):
    number = new_ticket(client, people["ann"])
    client.patch(f"{TICKETS}/{number}", json={"assignee": BOB}, headers=people["bob"])
    comment(client, people["ann"], number, "It jams again, now on every page.")
    comment(client, people["agent"], number, "@carol@example.org and @bob: toner?",
            public=False)
    comment(client, people["bob"], number, "My own reply tells nobody of mine.")
    itsm.outbox.drain()
    bob = inbox_of(client, people["bob"])["items"]
    assert [(n["kind"], n["actor"]) for n in bob] == [("mention", "agent"), ("reply", "ann")]
    assert bob[1]["excerpt"] == "It jams again, now on every page."
    assert bob[0]["summary"] == f"agent mentioned you in a work note on {number}"
    assert kinds(client, people["carol"]) == [("mention", number)]
    # A requester reads no work note: ann is never told of one, even when named.
    comment(client, people["agent"], number, "@ann@aaa.example.org was told", public=False)
    itsm.outbox.drain()
    assert kinds(client, people["ann"]) == []


def test_an_approval_asked_and_an_sla_warning_reach_their_people(client, itsm, people):
    number = new_ticket(client, people["agent"], assignee=BOB)
    unassigned = new_ticket(client, people["agent"])
    raw_event(itsm, number, "tickets.approval_requested", approvers=[CAROL, "nobody@x.org"])
    raw_event(itsm, number, "sla.warning", metric="resolution")
    raw_event(itsm, unassigned, "sla.breached", metric="response")  # nobody works it yet
    itsm.outbox.drain()
    assert kinds(client, people["carol"]) == [("approval", number)]
    bob = inbox_of(client, people["bob"])["items"]
    assert [n["kind"] for n in bob] == ["sla", "assigned"]
    assert bob[0]["summary"] == f"The resolution target of {number} is about to breach"


def test_marking_read_one_and_all_through_the_api(client, itsm, people):
    for _ in range(3):
        new_ticket(client, people["agent"], assignee=BOB)
    itsm.outbox.drain()
    counted = client.get("/api/v1/notifications/unread-count", headers=people["bob"])
    assert counted.json == {"unread": 3}
    first, *rest = inbox_of(client, people["bob"])["items"]
    marked = client.post("/api/v1/notifications/read", json={"ids": [first["id"]]},
                         headers=people["bob"])
    assert marked.status_code == 200 and marked.json == {"marked": 1, "unread": 2}
    assert [n["id"] for n in inbox_of(client, people["bob"], unread="true")["items"]] \
        == [n["id"] for n in rest]
    # Someone else's notification is as unknown as a missing one; bad input names fields.
    refused = client.post("/api/v1/notifications/read", json={"ids": [first["id"]]},
                          headers=people["carol"])
    assert refused.status_code == 404
    for body in ({}, {"ids": []}, {"ids": ["1"]}, {"all": True, "ids": [1]}, {"x": 1}):
        answer = client.post("/api/v1/notifications/read", json=body, headers=people["bob"])
        assert answer.status_code == 422 and answer.json["error"]["fields"], body
    assert client.get("/api/v1/notifications?cursor=abc",
                      headers=people["bob"]).status_code == 422
    assert client.get("/api/v1/notifications?unread=maybe",
                      headers=people["bob"]).status_code == 422
    everything = client.post("/api/v1/notifications/read", json={"all": True},
                             headers=people["bob"])
    assert everything.json == {"marked": 2, "unread": 0}
    assert client.get("/api/v1/notifications/unread-count").status_code == 401


def test_paging_the_list_newest_first(client, itsm, people):
    numbers = [new_ticket(client, people["agent"], assignee=BOB) for _ in range(5)]
    itsm.outbox.drain()
    first = inbox_of(client, people["bob"], limit=3)
    second = inbox_of(client, people["bob"], limit=3, cursor=first["next_cursor"])
    assert [n["record"]["number"] for n in first["items"] + second["items"]] \
        == list(reversed(numbers))
    assert second["next_cursor"] is None and first["unread"] == 5


TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in(app, email):
    web = app.test_client()
    token = TOKEN.search(web.get("/login").get_data(as_text=True)).group(1)
    web.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    return web


def form_post(web, path, data=None):
    with web.session_transaction() as state:
        token = state["csrf"]
    return web.post(path, data={**(data or {}), "csrf_token": token})


def test_the_bell_the_list_page_and_marking_read_without_script(app, client, itsm, people):
    numbers = [new_ticket(client, people["agent"], assignee=BOB) for _ in range(2)]
    itsm.outbox.drain()
    web = signed_in(app, BOB)
    home = web.get("/home").get_data(as_text=True)
    bell = home[home.index('id="bell"'):home.index("</a>", home.index('id="bell"'))]
    assert "data-bell-count>2</span>" in bell and "unread" in bell
    listed = web.get("/notifications").get_data(as_text=True)
    for number in numbers:
        assert f'href="/records/tickets/{number}"' in listed
    assert listed.count("Mark read") == 2
    ids = [n["id"] for n in inbox_of(client, people["bob"])["items"]]
    done = form_post(web, f"/notifications/{ids[0]}/read", {"next": "/notifications?unread=1"})
    assert done.status_code == 302 and done.headers["Location"].endswith("?unread=1")
    assert web.get("/notifications?unread=1").get_data(as_text=True).count("Mark read") == 1
    # Another person's notification cannot be marked by this one's form.
    form_post(signed_in(app, CAROL), f"/notifications/{ids[1]}/read")
    assert inbox_of(client, people["bob"])["unread"] == 1
    form_post(web, "/notifications/read", {"next": "https://evil.example/"})
    assert inbox_of(client, people["bob"])["unread"] == 0
    assert "data-bell-count>0</span>" in web.get("/home").get_data(as_text=True)


def test_agencies_never_see_each_others_records_through_notifications(client, itsm, people):
    theirs = new_ticket(client, people["zoe"])  # agency BBB
    ours = new_ticket(client, people["ann"])  # agency AAA
    raw_event(itsm, theirs, "tickets.approval_requested", approvers=[ANN, ZOE])
    raw_event(itsm, ours, "tickets.approval_requested", approvers=[ANN, ZOE])
    itsm.outbox.drain()
    assert kinds(client, people["ann"]) == [("approval", ours)]
    assert kinds(client, people["zoe"]) == [("approval", theirs)]
    # A record that moves to another agency leaves the inbox of the one before.
    with itsm.Session() as session:
        other = session.scalar(select(Record.agency_id).where(Record.number == theirs))
        session.execute(update(Record).where(Record.number == ours).values(agency_id=other))
        session.commit()
    assert kinds(client, people["ann"]) == []
    listed = signed_in(client.application, ANN).get("/notifications").get_data(as_text=True)
    assert ours not in listed and theirs not in listed


# -- e-mail by preference, against a real SMTP server --------------------------------------


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(with_plugin, itsm_config, smtp):
    itsm_config.update({"plugins.email.host": "127.0.0.1", "plugins.email.port": smtp.port,
                        "plugins.email.sender": "Service Desk <desk@itsm.example>"})
    return with_plugin(email_plugin)


def test_preferences_say_which_kinds_also_go_by_email(mail_app, smtp):
    from itsm.core import auth

    itsm = mail_app.extensions["itsm"]
    client = mail_app.test_client()
    with mail_app.app_context(), itsm.Session() as session:
        for email in (AGENT, BOB):
            auth.create_user(session, email, role="agent", password=PASSWORD)
        user = auth.create_user(session, "api@example.org", role="agent")
        _, secret = auth.create_token(session, user, name="t")
        session.commit()
    agent = {"Authorization": f"Bearer {secret}"}
    web = signed_in(mail_app, BOB)
    page = web.get("/account/notifications").get_data(as_text=True)
    assert 'name="email" value="assigned"' in page and "checked" not in page
    saved = form_post(web, "/account/notifications", {"email": ["assigned", "nonsense"]})
    assert saved.status_code == 302
    assert 'value="assigned" checked' in web.get("/account/notifications").get_data(
        as_text=True)

    with mail_app.app_context():
        number = new_ticket(client, agent, assignee=BOB)
        noted = new_ticket(client, agent)
        comment(client, agent, noted, "@bob@example.org have a look", public=False)
        itsm.outbox.drain()
    mails = smtp.mailbox.to(BOB)
    assert len(mails) == 1 and number in mails[0]["Subject"]  # the mention is in-app only
    with mail_app.app_context(), itsm.Session() as session:
        stored = session.scalars(select(inbox.Notification.kind)
                                 .order_by(inbox.Notification.id)).all()
    assert stored == ["assigned", "mention"]


def test_opening_a_record_reads_its_notifications(app, client, itsm, people):
    first = new_ticket(client, people["agent"], assignee=BOB)
    second = new_ticket(client, people["agent"], assignee=BOB)
    itsm.outbox.drain()
    web = signed_in(app, BOB)
    page = web.get(f"/records/tickets/{first}").get_data(as_text=True)
    assert "data-bell-count>1</span>" in page  # counted after it was read
    unread = inbox_of(client, people["bob"], unread="true")["items"]
    assert [n["record"]["number"] for n in unread] == [second]
    # Someone else opening it changes nothing of bob's.
    signed_in(app, CAROL).get(f"/records/tickets/{second}")
    assert inbox_of(client, people["bob"])["unread"] == 1
