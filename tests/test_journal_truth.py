"""The journal is the truth: replaying a record's journal from empty gives the stored
record, field by field, for every built-in record type after a life of work on it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from every_plugin import builtin_plugins, load_demo
from sqlalchemy import func, select

from itsm.core.auth import Actor
from itsm.core.models import JournalEntry, Record, User, utcnow
from itsm.core.records import replay_values

AGENT, RESOLVER, PAT = "agent@demo.invalid", "resolver@demo.invalid", "pat@dot.demo.invalid"


@pytest.fixture
def itsm_plugins():
    return builtin_plugins()


@pytest.fixture
def demo(itsm, runner):
    """Every plugin's demo data: records of every type, each through its own plugin's
    operations (agreements signed and amended, transitions accepted and gone live ...)."""
    load_demo(runner)
    return itsm


def as_user(itsm, email):
    """A unit of work acting as the demo user ``email``."""
    with itsm.Session() as session:
        user = session.scalar(select(User).where(User.email == email))
        actor = Actor.of(session, user)
    return itsm.unit_of_work(actor)


def mismatches(itsm) -> dict[str, dict]:
    """Every record whose journal, replayed from empty, disagrees with what is stored:
    ``{number: {field: (replayed, stored)}}``."""
    out = {}
    with itsm.unit_of_work(Actor.system()) as service:
        session = service.session
        for record in session.scalars(select(Record).order_by(Record.id)):
            entries = session.scalars(select(JournalEntry).where(
                JournalEntry.record_id == record.id).order_by(JournalEntry.id)).all()
            replayed = replay_values(entries)
            stored = service.public_values(record)
            wrong = {k: (replayed.get(k), v) for k, v in stored.items()
                     if replayed.get(k) != v}
            if wrong:
                out[record.number] = wrong
    return out


def lived_types(itsm) -> set[str]:
    """The types of which a record has a journal of at least three entries."""
    with itsm.Session() as session:
        busy = select(JournalEntry.record_id).group_by(JournalEntry.record_id).having(
            func.count() >= 3)
        return set(session.scalars(select(Record.type).where(Record.id.in_(busy))))


def test_a_network_incident_is_routed_to_network_and_its_created_entry_says_so(
        client, demo, make_token):
    headers = make_token(AGENT)
    created = client.post("/api/v1/incidents", headers=headers, json={
        "title": "VPN down in building B", "description": "No tunnel since 8:00",
        "category": "network", "impact": 2, "urgency": 2})
    assert created.status_code == 201, created.json
    assert created.json["group"] == "Network"
    journal = client.get(f"/api/v1/incidents/{created.json['number']}/journal",
                         headers=headers).json["items"]
    assert journal[0]["kind"] == "created"
    assert journal[0]["data"]["group"] == "Network"


def test_a_requesters_incident_journals_its_channel_routing_and_resolution_times(demo):
    with as_user(demo, PAT) as pat:
        incident = pat.create("incident", {"title": "Cannot reach the intranet",
                                           "description": "Since the move to floor 3.",
                                           "category": "network"})
        number = incident.number
        created = pat.journal(incident)[0].data
    assert (created["channel"], created["group"]) == ("portal", "Network")
    with as_user(demo, AGENT) as agent:
        incident = agent.get(number)
        agent.update(incident, {"impact": 1, "urgency": 2, "assignee": AGENT})
        agent.transition(incident, "start")
        agent.comment(incident, "Checking the floor switch.", public=False)
        agent.transition(incident, "hold", {"hold_kind": "supplier",
                                            "hold_reason": "switch replaced by the vendor"})
        agent.transition(incident, "resume")
        agent.transition(incident, "resolve", {"resolution_code": "solved",
                                               "resolution_notes": "Port re-enabled."})
    with as_user(demo, PAT) as pat:
        incident = pat.get(number)
        pat.comment(incident, "Still down for my colleague.")
        pat.transition(incident, "reopen")
    with as_user(demo, AGENT) as agent:
        incident = agent.get(number)
        entry = agent.journal(incident)[-1]
        assert entry.data["changes"]["reopen_count"] == [0, 1]
        assert entry.data["changes"]["resolved_at"][1] is None
        agent.transition(incident, "resolve", {"resolution_code": "solved",
                                               "resolution_notes": "Second port too."})
        assert agent.journal(incident)[-1].data["changes"]["resolved_at"][1] is not None
    demo.app.test_client().post(  # the requester rates, then confirms
        f"/api/v1/incidents/{number}/satisfaction", json={"rating": 4},
        headers=_token(demo, PAT))
    with as_user(demo, PAT) as pat:
        pat.transition(pat.get(number), "close")
    assert mismatches(demo) == {}


def _token(itsm, email):
    from itsm.core import auth

    with itsm.Session() as session:
        user = session.scalar(select(User).where(User.email == email))
        _, secret = auth.create_token(session, user, name="journal truth")
        session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_problems_articles_changes_requests_and_agreements_replay_after_their_lives(demo):
    from itsm.plugins.catalog.models import FulfillmentTask, Offering
    from itsm.plugins.mou import service as agreements
    from itsm.plugins.mou.models import Mou

    with as_user(demo, AGENT) as agent:
        problem = agent.create("problem", {"title": "Printers stall after updates",
                                           "category": "hardware"})
        agent.transition(problem, "investigate", {"assignee": RESOLVER})
        agent.transition(problem, "record_known_error", {
            "root_cause": "The driver update resets the spooler.",
            "workaround": "Restart the spooler after the update."})
        agent.transition(problem, "resolve", {"resolution": "Fixed driver 2.4 deployed."})

        article = agent.create("article", {"title": "Restart the print spooler",
                                           "description": "Open services.msc ..."})
        agent.update(article, {"description": "Open services.msc, find Print Spooler ..."})
        agent.transition(article, "submit")
        agent.transition(article, "publish")
        agent.transition(article, "retire")
        agent.transition(article, "restore")

        start = utcnow() + timedelta(days=3)
        change = agent.create("change", {
            "title": "Renew the portal certificate", "template": "tls-certificate-renewal",
            "planned_start": start.isoformat(),
            "planned_end": (start + timedelta(hours=1)).isoformat()})
        agent.update(change, {"config_items": ["srv-app-01"]})
        agent.transition(change, "schedule")
        agent.transition(change, "implement")
        agent.comment(change, "Certificate installed on both nodes.")
        agent.transition(change, "complete")

        mou = agent.session.scalar(select(Mou).where(Mou.state == "active", Mou.kind == "mou")
                                   .order_by(Mou.id).limit(1))
        proposed = agreements.propose(agent, mou, {"summary": "Faster P1 response",
                                                   "sections": {"1": "Purpose, revised."}})
        mou_number, version = mou.number, proposed.number
    with as_user(demo, "admin@demo.invalid") if _exists(demo, "admin@demo.invalid") \
            else demo.unit_of_work(Actor.system()) as admin:
        agreements.decide(admin, admin.get(mou_number), version, approve=True)

    with as_user(demo, PAT) as pat:
        offering = next((o for o in pat.session.scalars(select(Offering).where(  # JSON: no
            Offering.approval == "none", Offering.active.is_(True))  # = on PostgreSQL
            .order_by(Offering.id)) if o.tasks), None)
        assert offering is not None, "the demo catalog has an offering without approval"
        answers = {f["name"]: _answer(f) for f in offering.form if f.get("required")}
        request = pat.create("request", {"title": offering.name, "offering_id": offering.id,
                                         "answers": answers})
        request_number = request.number
    with as_user(demo, AGENT) as agent:
        request = agent.get(request_number)
        for _ in range(5):  # tasks open step by step
            tasks = agent.session.scalars(select(FulfillmentTask).where(
                FulfillmentTask.request_id == request.id,
                FulfillmentTask.state.in_(("open", "in_progress")))).all()
            for task in tasks:
                agent.transition(task, "complete")
        assert request.state == "fulfilled"

    client, headers = demo.app.test_client(), _token(demo, AGENT)
    major = client.post("/api/v1/incidents", headers=headers, json={
        "title": "VPN down for every agency", "impact": 1, "urgency": 1, "major": True,
        "category": "network"}).json["number"]
    for name, fields in (("start", {}), ("resolve", {"resolution_code": "solved",
                                                     "resolution_notes": "Failover."})):
        moved = client.post(f"/api/v1/incidents/{major}/transitions", headers=headers,
                            json={"name": name, "fields": fields})
        assert moved.status_code == 200, moved.json
    opened = client.post(f"/api/v1/incidents/{major}/review", headers=headers)
    assert opened.status_code == 201, opened.json
    with as_user(demo, AGENT) as agent:
        review = agent.get(opened.json["number"])
        agent.update(review, {"lessons": "Test the failover monthly."})
        agent.transition(review, "complete", {"root_cause": "A full disk on the primary.",
                                              "actions": "Disk alerts at 80 %."})

    assert mismatches(demo) == {}
    assert {rt.name for rt in demo.types} <= lived_types(demo)


def _exists(itsm, email):
    with itsm.Session() as session:
        return session.scalar(select(User.id).where(User.email == email)) is not None


def _answer(field):
    kind = field.get("type")
    if kind == "choice":
        return field["choices"][0]
    if kind == "date":
        return (utcnow() + timedelta(days=10)).date().isoformat()
    if kind == "number":
        return 1
    if kind == "checkbox":
        return True
    return "For the new colleague on floor 3."


def test_every_demo_record_replays_to_what_is_stored(demo):
    assert mismatches(demo) == {}


def test_imported_incidents_are_routed_before_their_created_entry(itsm):
    import io
    import json

    from itsm.core.bulk import BulkImporter, read_json_lines
    from itsm.core.demo import ensure_group

    with itsm.Session() as session:
        ensure_group(session, "Network", "LAN, WAN, VPN and firewalls.")
        session.commit()
    lines = "\n".join(json.dumps({"title": f"Switch {n} down", "category": "network"})
                      for n in range(3))
    BulkImporter(itsm, "incident").run(read_json_lines(io.StringIO(lines)))
    with itsm.unit_of_work(Actor.system()) as service:
        imported = service.session.scalars(select(Record).order_by(Record.id)).all()
        assert [service.public_values(r)["group"] for r in imported] == ["Network"] * 3
        assert service.journal(imported[0])[0].data["group"] == "Network"
    assert mismatches(itsm) == {}
