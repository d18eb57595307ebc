"""Expectations set for requesters: the priority in words, the expected response and
resolution times from the SLA clocks in the requester's zone, and a plain "we are waiting
for you", on the incident and request pages and in the acknowledgement mail."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

import itsm.adapters.email as email_plugin
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.incident as incident_plugin
from itsm.core import auth
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.display import local_time
from itsm.core.expectations import duration_words
from itsm.core.models import GroupMember, Record, User
from itsm.core.sla_models import SlaClock
from tests.test_catalog import CATALOG
from tests.test_email import SmtpServer, parts
from tests.test_incident_pages import PASSWORD, sign_in

ZONE = "America/New_York"
REQUESTER = "pat@dot.example"
TARGETS = {f"sla.{metric}.p{p}": minutes for p in range(1, 6)
           for metric, minutes in (("response", 60), ("resolution", 480))}


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, catalog_plugin, email_plugin]


@pytest.fixture
def itsm_config(itsm_config, smtp):
    return {**itsm_config, "plugins.initial": [], **TARGETS, "sla.calendar": "24x7",
            "plugins.email.host": "127.0.0.1", "plugins.email.port": smtp.port,
            "plugins.email.sender": "Service Desk <desk@itsm.example>",
            "plugins.email.base_url": "https://itsm.example"}


@pytest.fixture
def people(app):
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        ensure_agency(session, "DOT", "Agency DOT")
        desk = ensure_group(session, "Service Desk")
        ensure_group(session, "Network")
        for email, role, agency in ((REQUESTER, "requester", "DOT"),
                                    ("alex@it.example", "agent", None)):
            auth.create_user(session, email, role=role, agency=agency, password=PASSWORD)
        session.execute(update(User).where(User.email == REQUESTER).values(time_zone=ZONE))
        alex = session.scalar(select(User).where(User.email == "alex@it.example"))
        session.add(GroupMember(group_id=desk.id, user_id=alex.id))
        session.commit()
    return state


def due_times(itsm, number: str) -> dict[str, str]:
    """Each clock's breach due time as the requester in New York reads it."""
    with itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.number == number))
        return {c.metric: local_time(c.breach_due_at, ZoneInfo(ZONE)) for c in
                session.scalars(select(SlaClock).where(SlaClock.record_id == record.id))}


def open_incident(client, make_token) -> tuple[str, str]:
    response = client.post("/api/v1/incidents", headers=make_token("alex@it.example"), json={
        "title": "VPN drops", "category": "network", "subcategory": "vpn",
        "requester": REQUESTER, "impact": 2, "urgency": 2})
    assert response.status_code == 201, response.json
    return response.json["number"], response.json["priority"]


def test_duration_words():
    assert [duration_words(m) for m in (15, 60, 90, 480, 2880)] == [
        "15 minutes", "1 hour", "1.5 hours", "8 hours", "2 days"]


def test_requester_page_and_mail_show_priority_words_and_due_times(app, client, itsm,
                                                                   people, make_token,
                                                                   smtp):
    from itsm.core.expectations import PRIORITY_WORDS

    number, priority = open_incident(client, make_token)
    words = f"{PRIORITY_WORDS[priority]} — we aim to respond within 1 hour and resolve " \
        "within 8 hours"
    due = due_times(itsm, number)
    assert due["response"].endswith(("EST", "EDT"))  # the requester's zone, not UTC

    sign_in(client, REQUESTER)
    page = client.get(f"/portal/incidents/{number}").text
    assert words in page
    assert f"expected by {due['response']}" in page
    assert f"expected by {due['resolution']}" in page
    assert "We are waiting for you" not in page

    assert itsm.outbox.drain().failed == 0
    [created] = smtp.mailbox.to(REQUESTER)
    text, html = parts(created)
    for body in (text, html):
        assert words in body
        assert f"Expected response by {due['response']}" in body
        assert f"Expected resolution by {due['resolution']}" in body


def test_incident_on_hold_for_the_customer_says_so(client, itsm, people, make_token):
    number, _ = open_incident(client, make_token)
    admin = make_token("root@it.example", role="admin")
    moved = client.post(f"/api/v1/incidents/{number}/transitions", headers=admin, json={
        "name": "hold", "fields": {"hold_kind": "customer", "hold_reason": "which laptop?"}})
    assert moved.status_code == 200, moved.json
    sign_in(client, REQUESTER)
    page = client.get(f"/portal/incidents/{number}").text
    assert "We are waiting for you" in page
    assert "paused while we wait" in page


def test_incident_on_hold_for_a_supplier_does_not_blame_the_customer(client, itsm, people,
                                                                     make_token):
    number, _ = open_incident(client, make_token)
    moved = client.post(f"/api/v1/incidents/{number}/transitions",
                        headers=make_token("root@it.example", role="admin"), json={
                            "name": "hold", "fields": {"hold_kind": "supplier",
                                                       "hold_reason": "part ordered"}})
    assert moved.status_code == 200, moved.json
    sign_in(client, REQUESTER)
    assert "We are waiting for you" not in client.get(f"/portal/incidents/{number}").text


def test_catalog_request_waiting_for_the_requester_says_so(client, runner, itsm, people,
                                                          make_token, tmp_path):
    path = tmp_path / "catalog.json"
    catalog = {**CATALOG, "approvers": [],
               "services": [s for s in CATALOG["services"] if s["slug"] == "vpn"]}
    path.write_text(json.dumps(catalog))
    result = runner.invoke(["catalog", "import", str(path)])
    assert result.exit_code == 0, result.output
    pat = make_token(REQUESTER)
    offering = client.get("/api/v1/catalog/services/vpn", headers=pat).json["offerings"][0]
    created = client.post(f"/api/v1/catalog/offerings/{offering['id']}/requests", headers=pat,
                          json={"title": "VPN",
                                "answers": {"reason": "home office"}})
    assert created.status_code == 201, created.json
    number = created.json["number"]
    sign_in(client, REQUESTER)
    page = client.get(f"/portal/requests/{number}").text
    assert "We aim to respond within 15 minutes and resolve within 4 hours" in page
    assert "We are waiting for you" not in page

    agent = make_token("root@it.example", role="admin")
    state = client.get(f"/api/v1/requests/{number}", headers=agent).json["state"]
    if state == "submitted":
        client.post(f"/api/v1/requests/{number}/transitions", headers=make_token(
            "root@it.example", role="admin"), json={"name": "start"})
    asked = client.post(f"/api/v1/requests/{number}/transitions", headers=agent,
                        json={"name": "ask"})
    assert asked.status_code == 200, asked.json
    page = client.get(f"/portal/requests/{number}").text
    assert "We are waiting for you" in page


def test_requester_without_a_zone_reads_the_installs_zone_by_name(client, itsm, people,
                                                                  make_token, smtp):
    install_zone = itsm.settings["time_zone"] = "Asia/Dubai"
    with itsm.Session() as session:
        session.execute(update(User).where(User.email == REQUESTER).values(time_zone=""))
        session.commit()
    number, _ = open_incident(client, make_token)
    with itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.number == number))
        due = {c.metric: local_time(c.breach_due_at, ZoneInfo(install_zone)) for c in
               session.scalars(select(SlaClock).where(SlaClock.record_id == record.id))}
    assert due["response"].endswith("+04")  # an abbreviation that names no place
    sign_in(client, REQUESTER)
    page = client.get(f"/portal/incidents/{number}").text
    assert f"expected by {due['response']}" in page
    assert f"Times are in {install_zone} time." in page
    assert itsm.outbox.drain().failed == 0
    [created] = smtp.mailbox.to(REQUESTER)
    for body in parts(created):
        assert f"Expected response by {due['response']}" in body
        assert f"Times are in {install_zone} time." in body
