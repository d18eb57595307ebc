"""The agency's agreement at work: automatic escalation follows it (a DOT incident whose
target is breached goes to DOT's MOU escalation path, level by level at the stated times,
while an EPA incident, no agreement, goes to the install's list), and its relationship
manager is reminded 90, 30 and 7 days before it ends."""

from __future__ import annotations

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
