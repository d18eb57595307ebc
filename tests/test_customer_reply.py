"""The conversation brings work back: a requester's reply (portal, e-mail, API) to an
incident on hold waiting for the customer puts it back in progress through the workflow,
and marks it "updated by customer" until its assignee opens it."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select

import itsm.adapters.mailgate as mailgate_plugin
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.incident as incident_plugin
from itsm.core import auth
from itsm.core.models import JournalEntry, Record
from itsm.core.notify import reply_token
from itsm.core.records import replay_values
from itsm.testing import make_plugin

INCIDENTS = "/api/v1/incidents"
ANN = "ann@north.example"
PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _veto(record, transition, actor, data):
    if transition.name == "customer_replied" and "frozen" in record.title:
        return "this incident is frozen by the audit"
    return None


freezer = make_plugin("freezer", itsm_transition_guard=_veto)


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, catalog_plugin, mailgate_plugin, freezer]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.email.sender": "Service Desk <desk@itsm.example>"}


@pytest.fixture
def ann(make_token):
    return make_token(ANN, role="requester", agency="NORTH")


@pytest.fixture
def agent(make_token):
    return make_token("alex@it.example", role="agent")


def waiting(client, ann, agent, title="VPN drops", hold_kind="customer") -> str:
    """An incident of Ann's, taken by the agent and put on hold."""
    number = client.post(INCIDENTS, json={"title": title}, headers=ann).json["number"]
    assert client.patch(f"{INCIDENTS}/{number}", json={"assignee": "alex@it.example"},
                        headers=agent).status_code == 200
    for name, fields in (("start", {}), ("hold", {"hold_kind": hold_kind,
                                                  "hold_reason": "Which client version?"})):
        moved = client.post(f"{INCIDENTS}/{number}/transitions",
                            json={"name": name, "fields": fields}, headers=agent)
        assert moved.status_code == 200, moved.json
    return number


def marker(itsm, number):
    with itsm.Session() as session:
        return session.scalar(select(Record.customer_reply_at).where(Record.number == number))


def test_an_api_reply_brings_the_incident_back_to_work(client, itsm, ann, agent):
    number = waiting(client, ann, agent)
    version = client.get(f"{INCIDENTS}/{number}", headers=agent).json["version"]
    reply = client.post(f"{INCIDENTS}/{number}/comments", json={"body": "Version 5.2"},
                        headers=ann)
    assert reply.status_code == 201, reply.json
    incident = client.get(f"{INCIDENTS}/{number}", headers=agent).json
    assert incident["state"] == "in_progress"
    assert incident["version"] == version + 1  # the transition, not the mark
    assert marker(itsm, number) is not None
    journal = client.get(f"{INCIDENTS}/{number}/journal", headers=agent).json["items"]
    assert [e["kind"] for e in journal[-2:]] == ["commented", "transitioned"]
    assert journal[-1]["data"]["transition"] == "customer_replied"


def test_the_reply_transition_is_not_offered_nor_run_on_request(client, ann, agent):
    number = waiting(client, ann, agent)
    incident = client.get(f"{INCIDENTS}/{number}", headers=agent).json
    assert "customer_replied" not in incident["transitions"]
    refused = client.post(f"{INCIDENTS}/{number}/transitions",
                          json={"name": "customer_replied"}, headers=agent)
    assert refused.status_code == 422
    assert "name" in refused.json["error"]["fields"]


def test_waiting_for_a_supplier_a_reply_leaves_it_on_hold_but_marked(client, itsm, ann,
                                                                     agent):
    number = waiting(client, ann, agent, hold_kind="supplier")
    client.post(f"{INCIDENTS}/{number}/comments", json={"body": "Any news?"}, headers=ann)
    assert client.get(f"{INCIDENTS}/{number}", headers=agent).json["state"] == "on_hold"
    assert marker(itsm, number) is not None


def test_a_guard_refusal_keeps_the_reply_and_the_record_where_it_is(client, itsm, ann, agent):
    number = waiting(client, ann, agent, title="frozen laptop")
    reply = client.post(f"{INCIDENTS}/{number}/comments", json={"body": "Here it is"},
                        headers=ann)
    assert reply.status_code == 201
    assert client.get(f"{INCIDENTS}/{number}", headers=agent).json["state"] == "on_hold"
    journal = client.get(f"{INCIDENTS}/{number}/journal", headers=agent).json["items"]
    assert journal[-1]["kind"] == "commented"
    assert marker(itsm, number) is not None


def test_staff_replies_and_work_notes_do_not_bring_it_back(client, itsm, ann, agent):
    number = waiting(client, ann, agent)
    client.post(f"{INCIDENTS}/{number}/comments", json={"body": "Still waiting for you"},
                headers=agent)
    assert client.get(f"{INCIDENTS}/{number}", headers=agent).json["state"] == "on_hold"
    assert marker(itsm, number) is None


def test_an_e_mail_reply_brings_it_back(client, itsm, runner, ann, agent):
    number = waiting(client, ann, agent)
    message = EmailMessage()
    message["From"] = f"Ann <{ANN}>"
    message["To"] = f"desk+{reply_token('test-secret', number, ANN)}@itsm.example"
    message["Subject"] = f"Re: [{number}] VPN drops"
    message["Message-ID"] = make_msgid(domain="north.example")
    message.set_content("It is 5.2.1, sorry.")
    result = runner.invoke(["mail", "ingest"], input=message.as_bytes())
    assert result.exit_code == 0, result.output
    assert client.get(f"{INCIDENTS}/{number}", headers=agent).json["state"] == "in_progress"
    assert marker(itsm, number) is not None


def _sign_in(client, email):
    token = TOKEN.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/home").text).group(1)


def _set_password(itsm, email):
    with itsm.Session() as session:
        user = session.scalar(select(auth.User).where(auth.User.email == email))
        user.password_hash = auth.hash_password(PASSWORD)
        session.commit()


def test_a_portal_reply_brings_it_back_and_the_assignee_opening_it_clears_the_mark(
        app, itsm, ann, agent):
    client = app.test_client()
    number = waiting(client, ann, agent)
    for email in (ANN, "alex@it.example"):
        _set_password(itsm, email)
    token = _sign_in(client, ANN)
    posted = client.post(f"/portal/incidents/{number}/comment",
                         data={"body": "Version 5.2", "csrf_token": token})
    assert posted.status_code == 302
    assert marker(itsm, number) is not None
    client.post("/logout", data={"csrf_token": token})

    agent_browser = app.test_client()
    _sign_in(agent_browser, "alex@it.example")
    page = agent_browser.get(f"/records/incidents/{number}")
    assert page.status_code == 200
    assert "In progress" in page.text
    assert marker(itsm, number) is None


def test_someone_else_opening_it_keeps_the_mark(app, client, itsm, ann, agent, make_token):
    number = waiting(client, ann, agent)
    client.post(f"{INCIDENTS}/{number}/comments", json={"body": "v5"}, headers=ann)
    make_token("kim@it.example", role="agent")
    _set_password(itsm, "kim@it.example")
    browser = app.test_client()
    _sign_in(browser, "kim@it.example")
    assert browser.get(f"/records/incidents/{number}").status_code == 200
    assert marker(itsm, number) is not None


def test_the_journal_still_replays_to_what_is_stored(client, itsm, ann, agent):
    number = waiting(client, ann, agent)
    client.post(f"{INCIDENTS}/{number}/comments", json={"body": "v5"}, headers=ann)
    with itsm.unit_of_work(auth.Actor.system()) as service:
        record = service.get(number)
        entries = service.session.scalars(select(JournalEntry).where(
            JournalEntry.record_id == record.id).order_by(JournalEntry.id)).all()
        stored = service.public_values(record)
        assert {k: v for k, v in replay_values(entries).items() if k in stored} == stored


def test_a_catalog_request_waiting_for_its_requester_comes_back_on_her_answer(
        client, itsm, runner, ann, agent, tmp_path):
    import json

    from test_catalog import CATALOG

    from itsm.core.demo import ensure_agency, ensure_group

    with itsm.Session() as session:
        for code in ("DOT", "EPA"):
            ensure_agency(session, code, code)
        for name in ("Service Desk", "Network"):
            ensure_group(session, name)
        session.commit()
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({**CATALOG, "approvers": []}))
    assert runner.invoke(["catalog", "import", str(path)]).exit_code == 0
    vpn = client.get("/api/v1/catalog/services/vpn", headers=ann).json["offerings"][0]["id"]
    number = client.post(f"/api/v1/catalog/offerings/{vpn}/requests", headers=ann, json={
        "answers": {"reason": "Working from home on Fridays"}}).json["number"]
    assert client.get(f"/api/v1/requests/{number}", headers=agent).json["state"] == \
        "in_fulfillment"
    asked = client.post(f"/api/v1/requests/{number}/transitions", headers=agent,
                        json={"name": "ask", "comment": "Which laptop will you use?"})
    assert asked.status_code == 200, asked.json
    assert asked.json["state"] == "waiting"
    client.post(f"/api/v1/requests/{number}/comments", json={"body": "My DOT laptop"},
                headers=ann)
    assert client.get(f"/api/v1/requests/{number}", headers=agent).json["state"] == \
        "in_fulfillment"
    assert marker(itsm, number) is not None
