"""The agency's agreement at work: automatic escalation follows it (a DOT incident whose
target is breached goes to DOT's MOU escalation path, level by level at the stated times,
while an EPA incident, no agreement, goes to the install's list), and its relationship
manager is reminded 90, 30 and 7 days before it ends."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

import itsm.plugins.incident as incident_plugin
import itsm.plugins.mou as mou_plugin
from itsm.core import sla
from itsm.core.demo import ensure_group
from itsm.core.models import Delivery, Event, Record, utcnow
from itsm.plugins.incident.hooks import escalate_along_paths
from itsm.plugins.incident.models import Escalation
from itsm.plugins.mou.alerts import remind_expiry

API = "/api/v1"
PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client, email: str) -> str:
    token = TOKEN.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302
    with client.session_transaction() as state:
        return state["csrf"]


@pytest.fixture
def itsm_plugins():
    return [mou_plugin, incident_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.incident.escalation_contacts": ["desk.manager@it.example"],
            "plugins.incident.notify_channels": ["log"], "sla.calendar": "24x7",
            "plugins.mou.notify_channels": ["log"]}


@pytest.fixture
def people(app, make_token):
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        ensure_group(session, "Service Desk")
        session.commit()
    return {"agent": make_token("ann@it.example", role="agent"),
            "dot": make_token("pat@dot.example", role="requester", agency="DOT"),
            "epa": make_token("eve@epa.example", role="requester", agency="EPA")}


def dot_agreement(client, agent, **fields) -> str:
    """DOT's MOU in force: the project lead at the breach, the director 4 hours after."""
    number = client.post(f"{API}/mous", headers=agent, json={
        "title": "DOT MOU", "agency": "DOT", "kind": "mou", **fields}).json["number"]
    contacts = client.put(f"{API}/mous/{number}/contacts", headers=agent, json={"items": [
        {"role": "Technology business consultant", "name": "Rae Manager",
         "email": "rm@it.example"},
        {"role": "Project lead", "name": "Lee Lead", "email": "lead@dot.example",
         "after_minutes": 0},
        {"role": "Director of service management", "name": "Dana Director",
         "email": "director@it.example", "after_minutes": 240},
        {"role": "Deputy", "name": "Not automatic", "email": "deputy@dot.example"}]})
    assert contacts.status_code == 200, contacts.json
    assert contacts.json["items"][2]["after_minutes"] == 240
    assert "after_minutes" not in contacts.json["items"][3]
    for name in ("submit",):
        client.post(f"{API}/mous/{number}/transitions", headers=agent, json={"name": name})
    for side in ("provider", "agency"):
        client.post(f"{API}/mous/{number}/signatories", headers=agent, json={
            "side": side, "name": f"{side} signer", "signed_on": "2026-01-05"})
    for name in ("approve", "activate"):
        moved = client.post(f"{API}/mous/{number}/transitions", headers=agent,
                            json={"name": name})
        assert moved.status_code == 200, moved.json
    return number


def told(itsm, number: str) -> list[tuple[str, str]]:
    """(level, recipient) of every escalation event of the record."""
    itsm.outbox.fan_out()
    with itsm.Session() as session:
        record_id = session.scalar(select(Record.id).where(Record.number == number))
        rows = session.execute(select(Event.payload, Delivery.recipient).join(
            Delivery, Delivery.event_id == Event.id).where(
            Event.record_id == record_id, Event.name == "incident.escalated")).all()
    return sorted({(payload["level"], recipient) for payload, recipient in rows
                   if "@" in recipient})


def test_escalation_follows_the_agencys_mou_path_and_falls_back_to_the_install(
        app, client, people, itsm):
    mou = dot_agreement(client, people["agent"])
    dot = client.post(f"{API}/incidents", headers=people["dot"], json={
        "title": "Road sensors offline", "impact": 1, "urgency": 1}).json["number"]
    epa = client.post(f"{API}/incidents", headers=people["epa"], json={
        "title": "Air quality feed stuck", "impact": 1, "urgency": 1}).json["number"]

    breach = utcnow() + timedelta(days=2)  # both targets breached
    sla.sweep(itsm, breach)
    itsm.outbox.drain()
    dot_told = told(itsm, dot)
    assert ("warning", "lead@dot.example") in dot_told  # level 1 hears of the risk
    assert ("breach", "lead@dot.example") in dot_told   # and of the breach, at once
    assert not any(r in ("director@it.example", "desk.manager@it.example",
                         "deputy@dot.example") for _, r in dot_told)
    assert {r for _, r in told(itsm, epa)} == {"desk.manager@it.example"}
    with itsm.Session() as session:  # each event says whose path named its people
        paths = {number: {e.payload["path"]["kind"] for e in session.scalars(
            select(Event).join(Record, Record.id == Event.record_id).where(
                Record.number == number, Event.name == "incident.escalated"))}
            for number in (dot, epa)}
    assert paths == {dot: {"agreed"}, epa: {"install"}}

    # Four hours after the breach announcements, the director; never twice.
    with itsm.Session() as session:
        breached_at = session.scalar(select(Escalation.created_at).where(
            Escalation.level == "breach").order_by(Escalation.id))
    assert escalate_along_paths(breached_at + timedelta(minutes=239)) == 0
    taken = escalate_along_paths(breached_at + timedelta(minutes=241))
    assert taken >= 1  # response and resolution each reached the director
    assert escalate_along_paths(breached_at + timedelta(minutes=300)) == 0
    assert ("level-2", "director@it.example") in told(itsm, dot)
    assert not any(level == "level-2" for level, _ in told(itsm, epa))

    notes = [e["body"] for e in client.get(f"{API}/incidents/{dot}/journal",
                                           headers=people["agent"]).json["items"]
             if e["kind"] == "work_noted"]
    assert any("breached for 240 minutes" in n and "Dana Director" in n and mou in n
               for n in notes), notes


def test_a_vendor_plugin_can_agree_the_path_through_the_hook(app, client, people, itsm):
    from itsm.core.escalation import EscalationStep
    from itsm.testing import make_plugin

    def itsm_escalation_path(session, record):
        return [EscalationStep(level=1, name="Duty officer", email="duty@epa.example",
                               source="EPA duty roster")]

    itsm.host.pm.register(make_plugin("roster", itsm_escalation_path=itsm_escalation_path),
                          "roster")
    try:
        epa = client.post(f"{API}/incidents", headers=people["epa"], json={
            "title": "Air quality feed stuck", "impact": 1, "urgency": 1}).json["number"]
        sla.sweep(itsm, utcnow() + timedelta(days=2))
        itsm.outbox.drain()
        assert {r for _, r in told(itsm, epa)} == {"duty@epa.example"}
    finally:
        itsm.host.pm.unregister(name="roster")


def test_the_relationship_manager_is_reminded_before_the_agreement_ends(
        app, client, people, itsm):
    mou = dot_agreement(client, people["agent"], effective_from="2026-01-01",
                        effective_to="2027-06-30")
    ends = date(2027, 6, 30)

    def reminders() -> list[tuple[int, str]]:
        itsm.outbox.fan_out()
        with itsm.Session() as session:
            rows = session.execute(select(Event.payload, Delivery.recipient).join(
                Delivery, Delivery.event_id == Event.id).where(
                Event.name == "mou.expiring")).all()
        return sorted({(p["window"], r) for p, r in rows if "@" in r})

    def on(day: date) -> int:
        return remind_expiry(itsm, utcnow().replace(year=day.year, month=day.month,
                                                    day=day.day))

    assert on(ends - timedelta(days=91)) == 0
    assert on(ends - timedelta(days=90)) == 1
    assert on(ends - timedelta(days=60)) == 0  # the 90-day reminder went already
    assert on(ends - timedelta(days=29)) == 1
    assert on(ends - timedelta(days=7)) == 1
    assert on(ends - timedelta(days=6)) == 0
    assert on(ends + timedelta(days=1)) == 0  # ended: nothing to remind of
    assert reminders() == [(7, "rm@it.example"), (30, "rm@it.example"),
                           (90, "rm@it.example")]
    with itsm.Session() as session:
        payloads = session.scalars(select(Event.payload).where(
            Event.name == "mou.expiring")).all()
    assert {p["record"]["number"] for p in payloads} == {mou}
    assert sorted(p["days_left"] for p in payloads) == [7, 29, 90]


def designate(client, agent, agency: str, email: str) -> None:
    response = client.post(f"{API}/mou/delegates", headers=agent,
                           json={"agency": agency, "email": email})
    assert response.status_code == 201, response.json


def test_an_agencys_delegate_reads_drafts_comments_and_proposes_an_amendment(
        app, client, people, make_token, itsm):
    delegate = make_token("cio@dot.example", role="requester", agency="DOT")
    admin = make_token("boss@it.example", role="admin")
    other = make_token("cio@epa.example", role="requester", agency="EPA")
    active = dot_agreement(client, people["agent"])
    draft = client.post(f"{API}/mous", headers=people["agent"], json={
        "title": "DOT MOU 2027", "agency": "DOT", "kind": "mou"}).json["number"]
    # Before being designated: the agreement in force only, no draft, no comments.
    assert client.get(f"{API}/mous/{draft}", headers=delegate).status_code == 404
    assert client.get(f"{API}/mous/{active}", headers=delegate).status_code == 200
    assert client.post(f"{API}/mous/{active}/sections/4/comments", headers=delegate,
                       json={"body": "Laptops?"}).status_code == 404
    designate(client, people["agent"], "DOT", "cio@dot.example")
    designate(client, people["agent"], "EPA", "cio@epa.example")
    assert client.post(f"{API}/mou/delegates", headers=delegate, json={
        "agency": "DOT", "email": "pat@dot.example"}).status_code == 403
    bad = client.post(f"{API}/mou/delegates", headers=people["agent"], json={
        "agency": "DOT", "email": "eve@epa.example"})
    assert bad.status_code == 422 and "email" in bad.json["error"]["fields"]

    assert client.get(f"{API}/mous/{draft}", headers=delegate).json["state"] == "draft"
    assert client.get(f"{API}/mous/{draft}", headers=other).status_code == 404
    assert client.get(f"{API}/mous/{draft}", headers=people["dot"]).status_code == 404

    commented = client.post(f"{API}/mous/{draft}/sections/4/comments", headers=delegate,
                            json={"body": "Please add our 40 field tablets."})
    assert commented.status_code == 201, commented.json
    assert client.post(f"{API}/mous/{draft}/sections/4/comments", headers=other,
                       json={"body": "Hello"}).status_code == 404
    journal = client.get(f"{API}/mous/{draft}/journal", headers=people["agent"]).json["items"]
    assert any(e["body"].startswith("On 4 ") or "field tablets" in (e["body"] or "")
               for e in journal)

    # An amendment of the agreement in force: proposed, adopted, approved by another.
    section_4 = "Agency end-user services now include 40 field tablets."
    bad = client.post(f"{API}/mous/{active}/proposals", headers=delegate,
                      json={"summary": "Tablets", "sections": {"Z": "x"}})
    assert bad.status_code == 422
    proposed = client.post(f"{API}/mous/{active}/proposals", headers=delegate, json={
        "summary": "Add our field tablets", "sections": {"4": section_4}})
    assert proposed.status_code == 201, proposed.json
    pid = proposed.json["id"]
    assert client.get(f"{API}/mous/{active}/proposals", headers=other).status_code == 404
    assert client.post(f"{API}/mous/{active}/proposals/{pid}/adopt",
                       headers=delegate).status_code == 403
    adopted = client.post(f"{API}/mous/{active}/proposals/{pid}/adopt",
                          headers=people["agent"])
    assert adopted.status_code == 200, adopted.json
    assert adopted.json["state"] == "adopted" and adopted.json["version"] == 2
    again = client.post(f"{API}/mous/{active}/proposals/{pid}/adopt",
                        headers=people["agent"])
    assert again.status_code == 409
    decided = client.post(f"{API}/mous/{active}/versions/2/approve", headers=admin)
    assert decided.status_code == 200, decided.json
    text = client.get(f"{API}/mous/{active}/agreement", headers=delegate).json["sections"]
    assert next(s["body"] for s in text if s["key"] == "4") == section_4

    # The relationship manager heard of the proposal.
    itsm.outbox.fan_out()
    with itsm.Session() as session:
        told = session.execute(select(Delivery.recipient).join(
            Event, Event.id == Delivery.event_id).where(
            Event.name == "mou.amendment_requested")).scalars().all()
    assert "rm@it.example" in told

    # The standard template and their own compliance; not another agency's.
    assert client.get(f"{API}/mou/templates", headers=delegate).status_code == 200
    assert client.get(f"{API}/mou/templates", headers=people["dot"]).status_code == 404
    assert client.get(f"{API}/mou/compliance?agency=DOT", headers=delegate).status_code == 200
    assert client.get(f"{API}/mou/compliance?agency=EPA", headers=delegate).status_code == 403


def test_the_delegate_takes_part_through_the_portal_pages(app, client, people, make_token):
    make_token("cio@dot.example", role="requester", agency="DOT", password=PASSWORD)
    make_token("rae@it.example", role="agent", password=PASSWORD)
    active = dot_agreement(client, people["agent"])
    designate(client, people["agent"], "DOT", "cio@dot.example")
    csrf = sign_in(client, "cio@dot.example")
    mine = client.get("/mou/my").text
    assert "Taking part in our agreements" in mine and active in mine
    template = client.get("/mou/template")
    assert template.status_code == 200 and "The standard agreement" in template.text
    page = client.get(f"/mou/agreements/{active}/take-part")
    assert page.status_code == 200 and "Propose an amendment" in page.text
    empty = client.post(f"/mou/agreements/{active}/take-part/propose", data={
        "csrf_token": csrf, "section": "4", "summary": "", "text": "x"})
    assert empty.status_code == 422 and 'aria-invalid="true"' in empty.text
    sent = client.post(f"/mou/agreements/{active}/take-part/propose", data={
        "csrf_token": csrf, "section": "4", "summary": "Tablets",
        "text": "Field tablets are end-user devices."}, follow_redirects=True)
    assert "Your proposal is sent" in sent.text and "Tablets" in sent.text
    assert "Adopt" not in sent.text  # a delegate proposes, IT staff decide
    compliance = client.get("/mou/compliance?agency=EPA")
    assert compliance.status_code == 200 and "EPA" not in re.sub(r"<[^>]+>", "", compliance.text)
    client.post("/logout", data={"csrf_token": csrf})

    csrf = sign_in(client, "rae@it.example")
    staff = client.get(f"/mou/agreements/{active}/take-part").text
    proposal = re.search(r"/proposals/(\d+)/adopt", staff).group(1)
    adopted = client.post(f"/mou/agreements/{active}/proposals/{proposal}/adopt",
                          data={"csrf_token": csrf}, follow_redirects=True)
    assert "The proposal is adopted" in adopted.text and "(version 2)" in adopted.text
