"""One spine every process refers to: a catalog service, the configuration items under
it and the agencies using it, as the processes see them through the reference contract.

A small provider of "configuration_item" (in this test) holds a three-level graph: a
server runs a database, an application depends on the database, and the application
is part of the catalog's business service "expenses", offered to DOT and DOH. A change
on the server reaches both agencies and the CAB rule for that service; an incident on
the database goes to the service's group with DOT's MOU target; renaming the service
changes nothing but its label.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.change as change_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.mou as mou_plugin
import itsm.plugins.transition_gate as gate_plugin
from itsm.core.demo import ensure_group
from itsm.core.models import Event, GroupMember, Link, Record, User, utcnow
from itsm.core.notify import EventMessage
from itsm.core.sla_models import SlaClock
from itsm.plugin import ImpactHit, Ref, ReferenceKind, reference_get
from itsm.plugins.change.models import CabRule
from itsm.plugins.transition_gate.models import EARLY_LIFE, ServiceTransition
from itsm.testing import make_plugin

API = "/api/v1"
PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
LOW = {"users_affected": "few", "complexity": "routine", "tested": "yes",
       "backout": "minutes"}

# The provider's graph: id -> label; UP: who depends on whom; the application is part of
# the business service (its catalog id, set once the catalog service exists).
ITEMS = {"srv-1": "Server fin-01", "db-1": "Expenses database", "app-1": "Expenses app"}
UP = {"srv-1": ["db-1"], "db-1": ["app-1"], "app-1": []}
PART_OF: dict[str, str] = {}


def _item(id_: str) -> Ref:
    return Ref("configuration_item", id_, ITEMS[id_])


def _get(session, id_):
    return _item(id_) if id_ in ITEMS else None


def _resolve(session, value):
    return _get(session, value) or next(
        (_item(i) for i, label in ITEMS.items() if label.lower() == value.lower()), None)


def _choices(session, actor, text, limit):
    return [_item(i) for i, label in ITEMS.items() if text.lower() in label.lower()][:limit]


def _impact(session, ids):
    hits, todo = [], [(i, (_item(i),)) for i in ids if i in ITEMS]
    while todo:
        current, path = todo.pop(0)
        for other in UP[current]:
            step = (*path, _item(other))
            hits.append(ImpactHit(step[-1], step))
            todo.append((other, step))
        if current in PART_OF:
            service = reference_get(session, "service", PART_OF[current])
            if service is not None:
                hits.append(ImpactHit(service, (*path, service)))
    return hits


cmdb_stub = make_plugin("ci_graph", itsm_reference_kinds=lambda: [ReferenceKind(
    "configuration_item", "Configuration item", get=_get, resolve=_resolve,
    choices=_choices, impact=_impact)])


@pytest.fixture
def itsm_plugins():
    return [catalog_plugin, change_plugin, incident_plugin, mou_plugin, gate_plugin,
            cmdb_stub]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.mou.notify_channels": ["log"],
            "plugins.change.notify_channels": ["log"]}


@pytest.fixture
def world(app, client, make_token):
    """People, groups, the catalog service with its resolver group and agencies, DOT's
    agreement with a target for the service, and a CAB rule for the service."""
    people = {"admin": make_token("admin@example.org", role="admin"),
              "owner": make_token("olivia@example.org", role="agent", password=PASSWORD),
              "pm": make_token("pm@example.org", role="agent"),
              "sm": make_token("sm@example.org", role="agent"),
              "dot": make_token("pat@dot.example.org", role="requester", agency="DOT"),
              "doh": make_token("sam@doh.example.org", role="requester", agency="DOH")}
    for email in ("carl@example.org", "mona@example.org"):
        make_token(email, role="agent")
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        finance = ensure_group(session, "Finance apps")
        cab = ensure_group(session, "Finance CAB")
        managers = ensure_group(session, "Change managers")
        users = {u.email: u.id for u in session.scalars(select(User))}
        session.add(GroupMember(group_id=cab.id, user_id=users["carl@example.org"]))
        session.add(GroupMember(group_id=managers.id, user_id=users["mona@example.org"]))
        session.add(CabRule(name="Expenses: the finance CAB", group_id=cab.id,
                            purpose="cab", quorum="any", change_types=[], risk_levels=[],
                            services=["expenses"], categories=[], active=True))
        session.commit()
        finance_id = finance.id
    made = client.post(f"{API}/catalog/services", headers=people["admin"], json={
        "slug": "expenses", "name": "Expense claims", "agencies": ["DOT", "DOH"],
        "resolver_group": "Finance apps"})
    assert made.status_code == 201, made.json
    PART_OF.clear()
    PART_OF["app-1"] = str(made.json["id"])
    mou = client.post(f"{API}/mous", headers=people["admin"], json={
        "title": "DOT MOU", "agency": "DOT", "kind": "mou"}).json["number"]
    client.put(f"{API}/mous/{mou}/targets", headers=people["admin"], json={"items": [
        {"service": "expenses", "response_minutes": 20, "resolution_minutes": 200},
        {"service": "", "response_minutes": 240, "resolution_minutes": 2400}]})
    client.put(f"{API}/mous/{mou}/contacts", headers=people["admin"], json={"items": [
        {"role": "Relationship manager", "name": "Rita", "email": "rm@dot.example.org"}]})
    for name in ("submit",):
        client.post(f"{API}/mous/{mou}/transitions", headers=people["admin"],
                    json={"name": name})
    for side in ("provider", "agency"):
        client.post(f"{API}/mous/{mou}/signatories", headers=people["admin"], json={
            "side": side, "name": f"{side} signer", "signed_on": "2026-01-05"})
    for name in ("approve", "activate"):
        moved = client.post(f"{API}/mous/{mou}/transitions", headers=people["admin"],
                            json={"name": name})
        assert moved.status_code == 200, moved.json
    return {"people": people, "service_id": str(made.json["id"]), "finance": finance_id,
            "mou": mou}


def clocks(app, number):
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        record_id = session.scalar(select(Record.id).where(Record.number == number))
        return {c.metric: (c.target_minutes, c.source) for c in session.scalars(
            select(SlaClock).where(SlaClock.record_id == record_id))}


def new_incident(client, headers, **fields):
    made = client.post(f"{API}/incidents", headers=headers, json={
        "title": "Expense claims fail to save", "impact": 2, "urgency": 2, "agency": "DOT",
        **fields})
    assert made.status_code == 201, made.json
    return made.json


def rename(client, world, **fields):
    renamed = client.patch(f"{API}/catalog/services/{world['service_id']}",
                           headers=world["people"]["admin"], json=fields)
    assert renamed.status_code == 200, renamed.json


def test_a_change_on_the_server_reaches_both_agencies_and_the_services_cab(
        app, client, world):
    owner, sid = world["people"]["owner"], world["service_id"]
    made = client.post(f"{API}/changes", headers=owner, json={
        "title": "Patch the finance server", "config_items": ["Server fin-01"],
        "reason": "Security fixes.", "implementation_plan": "Patch and reboot.",
        "backout_plan": "Restore the snapshot.", "test_plan": "Log in.",
        "planned_start": (utcnow() + timedelta(days=3)).isoformat(),
        "planned_end": (utcnow() + timedelta(days=3, hours=2)).isoformat()})
    assert made.status_code == 201, made.json
    number = made.json["number"]
    assert made.json["config_items"] == ["srv-1"]
    assert made.json["config_items_refs"][0]["label"] == "Server fin-01"
    impact = client.get(f"{API}/changes/{number}/overview", headers=owner).json["impact"]
    assert [s["id"] for s in impact["services"]] == [sid]
    assert impact["services"][0]["path"] == ["Server fin-01", "Expenses database",
                                             "Expenses app", "Expense claims"]
    assert sorted(a["label"] for a in impact["agencies"]) == ["Agency DOH", "Agency DOT"]
    for name, fields in (("submit", {}), ("assess", {"risk_answers": LOW})):
        moved = client.post(f"{API}/changes/{number}/transitions", headers=owner,
                            json={"name": name, "fields": fields})
        assert moved.status_code == 200, moved.json
    groups = [g["group"] for g in client.get(f"{API}/changes/{number}/overview",
                                             headers=owner).json["approval"]["groups"]]
    assert "Finance CAB" in groups
    # The change page shows the impact, with the path to each agency.
    token = TOKEN.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"email": "olivia@example.org", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    page = client.get(f"/changes/{number}").text
    assert "Agency DOH" in page and "Agency DOT" in page
    assert "Server fin-01 → Expenses database → Expenses app → Expense claims" in page
    # Approved: the affected agencies' relationship managers hear of it.
    state = app.extensions["itsm"]
    for email in ("carl@example.org", "mona@example.org"):
        with app.app_context(), state.unit_of_work(_actor(state, email)) as svc:
            from itsm.plugins.change import service as changes
            from itsm.plugins.change.models import Approval

            for approval in svc.session.scalars(select(Approval).where(
                    Approval.state == "pending")):
                if approval.approver_id == svc.actor.id:
                    changes.decide(svc, approval.id, "approve")
    with app.app_context(), state.Session() as session:
        decided = session.scalars(select(Event).where(Event.name == "change.decided")).all()
        approved = [e for e in decided if e.payload.get("decision") == "approved"]
        assert approved and set(approved[-1].payload["affected_agencies"]) >= {
            str(a) for a in _agency_ids(session)}
        recipients = mou_plugin.itsm_notification_recipients(EventMessage.of(approved[-1]),
                                                             session)
    assert "rm@dot.example.org" in {r.address for r in recipients}


def _actor(state, email):
    from itsm.core.auth import Actor

    with state.Session() as session:
        return Actor.of(session, session.scalar(select(User).where(User.email == email)))


def _agency_ids(session):
    from itsm.core.models import Agency

    return session.scalars(select(Agency.id).where(Agency.code.in_(("DOT", "DOH"))))


def test_an_incident_on_the_database_goes_to_the_services_group_with_the_mou_target(
        app, client, world):
    agent, sid = world["people"]["owner"], world["service_id"]
    incident = new_incident(client, agent, config_item="Expenses database",
                            category="software")
    assert incident["config_item"] == "db-1" and incident["affected_service"] == sid
    assert incident["affected_service_ref"]["label"] == "Expense claims"
    assert incident["group"] == "Finance apps"  # by service, before the category's group
    assert clocks(app, incident["number"])["response"][0] == 20
    answer = client.get(f"{API}/incidents/{incident['number']}/impact", headers=agent)
    assert answer.status_code == 200, answer.json
    impact = answer.json
    assert sorted(a["label"] for a in impact["agencies"]) == ["Agency DOH", "Agency DOT"]
    # A major incident's page lists the agencies it affects, with the path.
    major = new_incident(client, agent, config_item="db-1", major=True)
    token = TOKEN.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"email": "olivia@example.org", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    page = client.get(f"/incidents/{major['number']}/impact").text
    assert "Agency DOH" in page and "Expenses database → Expenses app → Expense claims" \
        in page
    record = client.get(f"/records/incidents/{major['number']}").text
    assert f"/incidents/{major['number']}/impact" in record


def test_renaming_the_service_changes_nothing_but_its_label(app, client, world):
    people, sid = world["people"], world["service_id"]
    # A transition for the service, open: the catalog may not set it live.
    trn = client.post(f"{API}/transitions", headers=people["pm"], json={
        "title": "Expense claims go operational", "project": "Finance 2027",
        "service": "expenses", "project_manager": "pm@example.org",
        "service_manager": "sm@example.org",
        "go_live_date": (utcnow().date() + timedelta(days=30)).isoformat()})
    assert trn.status_code == 201, trn.json
    rename(client, world, slug="expense-claims", name="Claims online")
    vetoed = client.patch(f"{API}/catalog/services/expense-claims",
                          headers=people["admin"], json={"status": "live"})
    assert vetoed.status_code == 409 and trn.json["number"] in \
        vetoed.json["error"]["reasons"][0]
    # The MOU target, named "expenses" when it was set, still applies by id.
    by_name = new_incident(client, people["owner"], affected_service="Claims online")
    assert by_name["affected_service"] == sid
    assert clocks(app, by_name["number"])["response"][0] == 20
    assert by_name["group"] == "Finance apps"
    # Early-life support follows the service by id: a transition live for it flags the
    # incidents of the renamed service.
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        row = session.scalar(select(ServiceTransition).where(
            ServiceTransition.number == trn.json["number"]))
        assert str(row.catalog_id) == sid
        row.state, row.gate_passed_at = "early_life", utcnow()
        row.support_until = utcnow() + timedelta(days=10)
        session.commit()
    rename(client, world, name="Expense claims (new)")
    flagged = new_incident(client, people["owner"], config_item="db-1")
    assert flagged["affected_service_ref"]["label"] == "Expense claims (new)"
    with app.app_context(), state.Session() as session:
        links = session.scalars(select(Link.kind).where(
            Link.target_id == session.scalar(select(Record.id).where(
                Record.number == flagged["number"])))).all()
    assert EARLY_LIFE.name in links
    # Only the label moved: the stored ids, the MOU target and the route hold.
    again = client.get(f"{API}/incidents/{by_name['number']}", headers=people["owner"]).json
    assert again["affected_service"] == sid
    assert again["affected_service_ref"]["label"] == "Expense claims (new)"
    assert clocks(app, flagged["number"])["response"][0] == 20


def test_a_merge_re_points_open_incidents_targets_and_transitions(app, client, world):
    from itsm.core.auth import Actor
    from itsm.plugin import reference_changed
    from itsm.plugins.mou.models import MouTarget

    people, sid = world["people"], world["service_id"]
    other = client.post(f"{API}/catalog/services", headers=people["admin"], json={
        "slug": "travel", "name": "Travel claims"}).json
    incident = new_incident(client, people["owner"], affected_service="expenses")
    trn = client.post(f"{API}/transitions", headers=people["pm"], json={
        "title": "Expenses go operational", "project": "Finance 2027", "service": "expenses",
        "project_manager": "pm@example.org", "service_manager": "sm@example.org",
        "go_live_date": (utcnow().date() + timedelta(days=30)).isoformat()}).json
    state = app.extensions["itsm"]
    with app.app_context(), state.unit_of_work(Actor.system()) as svc:
        gone = reference_get(svc.session, "service", sid)
        stays = reference_get(svc.session, "service", str(other["id"]))
        reference_changed(svc.session, gone, "merged", stays)
    moved = client.get(f"{API}/incidents/{incident['number']}", headers=people["owner"]).json
    assert moved["affected_service"] == str(other["id"])
    with app.app_context(), state.Session() as session:
        refs = set(session.scalars(select(MouTarget.service_ref).where(
            MouTarget.service != "")))
        row = session.scalar(select(ServiceTransition).where(
            ServiceTransition.number == trn["number"]))
    assert refs == {str(other["id"])} and str(row.catalog_id) == str(other["id"])
    vetoed = client.patch(f"{API}/catalog/services/travel", headers=people["admin"],
                          json={"status": "live"})
    assert vetoed.status_code == 409 and trn["number"] in vetoed.json["error"]["reasons"][0]
