"""Agreements with agencies as people use them: an MOU from the template, signed, active,
its targets driving the SLA clocks of that agency's incidents (and no other's), amended
with a diff, exported, and read by the agency alone."""

from __future__ import annotations

import re

import pytest
import sample_plugin
from sqlalchemy import select

import itsm.plugins.incident
import itsm.plugins.mou
from itsm.core.demo import ensure_group
from itsm.core.models import GroupMember, User
from itsm.core.sla_models import SlaClock
from itsm.testing import schema_drift

API = "/api/v1"
PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
GROUPS = ("Service Desk", "Network", "Applications")

DOT_TARGETS = [
    {"service": "", "priority": 3, "response_minutes": 60, "resolution_minutes": 480},
    {"service": "Traffic management", "priority": None, "response_minutes": 10,
     "resolution_minutes": 90, "support_hours": "24x7"},
    {"service": "", "priority": None, "response_minutes": 240, "resolution_minutes": 2400},
]
DOH_TARGETS = [
    {"service": "", "priority": 3, "response_minutes": 120, "resolution_minutes": 960,
     "compliance_percent": 90.0},
]


@pytest.fixture
def itsm_plugins():
    return [itsm.plugins.mou, itsm.plugins.incident, sample_plugin]


@pytest.fixture
def desk(app):
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        for name in GROUPS:
            ensure_group(session, name)
        session.commit()
    return state


@pytest.fixture
def people(make_token, desk):
    return {"agent": make_token("ann@example.org", role="agent"),
            "admin": make_token("boss@example.org", role="admin"),
            "dot": make_token("pat@dot.example.org", role="requester", agency="DOT"),
            "doh": make_token("sam@doh.example.org", role="requester", agency="DOH"),
            "epa": make_token("eve@epa.example.org", role="requester", agency="EPA")}


def agreement(client, headers, agency, targets, *, activate=True, title=None):
    """Create an MOU through the API, set its targets and contacts, sign and activate it."""
    created = client.post(f"{API}/mous", headers=headers, json={
        "title": title or f"{agency} MOU", "agency": agency, "kind": "mou"})
    assert created.status_code == 201, created.json
    number = created.json["number"]
    assert client.put(f"{API}/mous/{number}/targets", headers=headers,
                      json={"items": targets}).status_code == 200
    assert client.put(f"{API}/mous/{number}/contacts", headers=headers, json={"items": [
        {"role": "Technology business consultant", "name": f"{agency} Consultant",
         "email": f"rm@{agency.lower()}.example.org"},
        {"role": "Project lead", "name": "Lee Lead", "email": "lead@example.org"},
        {"role": "Director of service management", "name": "Dana Director"}]}
    ).status_code == 200
    if activate:
        move(client, headers, number, "submit")
        for side in ("provider", "agency"):
            assert client.post(f"{API}/mous/{number}/signatories", headers=headers, json={
                "side": side, "name": f"{side} signer", "signed_on": "2026-01-05"}
            ).status_code == 201
        move(client, headers, number, "approve")
        move(client, headers, number, "activate")
    return number


def move(client, headers, number, name, **fields):
    response = client.post(f"{API}/mous/{number}/transitions", headers=headers,
                           json={"name": name, "fields": fields})
    assert response.status_code == 200, response.json
    return response


def incident(client, headers, **data):
    response = client.post(f"{API}/incidents", headers=headers, json={
        "title": "Something broke", "impact": 2, "urgency": 2, **data})
    assert response.status_code == 201, response.json
    return response.json


def clocks(app, number):
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        from itsm.core.models import Record

        record_id = session.scalar(select(Record.id).where(Record.number == number))
        return {c.metric: (c.target_minutes, c.source, c.calendar) for c in session.scalars(
            select(SlaClock).where(SlaClock.record_id == record_id))}


# -- the agreement itself -------------------------------------------------------------------


def test_new_agreement_has_the_ten_sections_and_appendices_of_the_template(client, people):
    number = agreement(client, people["agent"], "DOT", DOT_TARGETS, activate=False)
    data = client.get(f"{API}/mous/{number}/agreement", headers=people["agent"]).json
    assert [s["key"] for s in data["sections"]] == [*map(str, range(1, 11)), *"ABCDEFG"]
    assert data["sections"][9]["title"] == "Changes to this Agreement"
    assert data["template_version"] == 1 and data["current_version"] == 1
    assert data["relationship_manager"]["name"] == "DOT Consultant"
    assert [c["role"] for c in data["escalation"]] == ["Project lead",
                                                        "Director of service management"]


def test_agreement_needs_an_agency_and_valid_targets(client, people):
    no_agency = client.post(f"{API}/mous", headers=people["agent"],
                            json={"title": "Nobody's MOU", "kind": "mou"})
    assert no_agency.status_code == 422 and "agency" in no_agency.json["error"]["fields"]
    number = agreement(client, people["agent"], "DOT", DOT_TARGETS, activate=False)
    bad = client.put(f"{API}/mous/{number}/targets", headers=people["agent"],
                     json={"items": [{"priority": 9, "response_minutes": -1}]})
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]["0"]) == {"priority", "response_minutes"}
    assert client.put(f"{API}/mous/{number}/targets", headers=people["agent"],
                      json=[1]).status_code == 422
    ola = client.post(f"{API}/mous", headers=people["agent"], json={
        "title": "OLA", "kind": "ola", "provider_group": "Nope", "customer_group": "Network"})
    assert ola.status_code == 422 and "provider_group" in ola.json["error"]["fields"]


def test_approval_needs_a_named_signatory_of_each_side(client, people):
    number = agreement(client, people["agent"], "DOT", DOT_TARGETS, activate=False)
    move(client, people["agent"], number, "submit")
    client.post(f"{API}/mous/{number}/signatories", headers=people["agent"],
                json={"side": "provider", "name": "Morgan Director"})
    refused = client.post(f"{API}/mous/{number}/transitions", headers=people["agent"],
                          json={"name": "approve"})
    assert refused.status_code == 409
    assert "missing: agency" in refused.json["error"]["reasons"][0]
    client.post(f"{API}/mous/{number}/signatories", headers=people["agent"],
                json={"side": "agency", "name": "Chris CIO", "title": "CIO"})
    assert move(client, people["agent"], number, "approve").json["state"] == "approved"
    versions = client.get(f"{API}/mous/{number}/versions", headers=people["agent"]).json
    assert versions["items"][0]["status"] == "approved"
    assert versions["items"][0]["approved_by"] == "ann@example.org"


def test_signatures_cover_the_text_and_an_edit_after_them_needs_new_ones(client, people):
    agent = people["agent"]
    number = agreement(client, agent, "DOT", DOT_TARGETS, activate=False)
    move(client, agent, number, "submit")
    for side in ("provider", "agency"):
        assert client.post(f"{API}/mous/{number}/signatories", headers=agent, json={
            "side": side, "name": f"{side} signer"}).status_code == 201
    looser = [{**DOT_TARGETS[0], "response_minutes": 600}, *DOT_TARGETS[1:]]
    assert client.put(f"{API}/mous/{number}/targets", headers=agent,
                      json={"items": looser}).status_code == 200
    assert client.put(f"{API}/mous/{number}/sections", headers=agent,
                      json={"sections": {"9": "Nothing is confidential."}}).status_code == 200
    data = client.get(f"{API}/mous/{number}/agreement", headers=agent).json
    assert data["current_version"] == 2
    assert data["sections"][8]["body"] == "Nothing is confidential."
    journal = str(client.get(f"{API}/mous/{number}/journal", headers=agent).json)
    assert "signatures of version 1 superseded: targets changed" in journal
    refused = client.post(f"{API}/mous/{number}/transitions", headers=agent,
                          json={"name": "approve"})
    assert refused.status_code == 409, refused.json
    assert "version 2 first (missing: provider, agency)" in refused.json["error"]["reasons"][0]
    versions = client.get(f"{API}/mous/{number}/versions", headers=agent).json["items"]
    assert [(v["number"], v["status"]) for v in versions] == [(1, "superseded"),
                                                              (2, "draft")]
    # Both sign version 2 as it is: it is approved with the looser target it shows.
    for side in ("provider", "agency"):
        client.post(f"{API}/mous/{number}/signatories", headers=agent,
                    json={"side": side, "name": f"{side} signer"})
    assert move(client, agent, number, "approve").json["state"] == "approved"
    approved = client.get(f"{API}/mous/{number}/agreement", headers=agent).json
    assert 600 in [t["response_minutes"] for t in approved["targets"]]


def test_approval_refuses_signatures_of_other_content(app, client, people):
    # The digest, not the edit rules alone: content changed behind the service (a restore,
    # a database fix) is not approved on the old signatures.
    from itsm.plugins.mou.models import MouTarget

    agent = people["agent"]
    number = agreement(client, agent, "DOT", DOT_TARGETS, activate=False)
    move(client, agent, number, "submit")
    for side in ("provider", "agency"):
        client.post(f"{API}/mous/{number}/signatories", headers=agent,
                    json={"side": side, "name": f"{side} signer"})
    with app.app_context(), app.extensions["itsm"].Session() as session:
        target = session.scalars(select(MouTarget).where(MouTarget.response_minutes == 60)
                                 ).first()
        target.response_minutes = 600
        session.commit()
    refused = client.post(f"{API}/mous/{number}/transitions", headers=agent,
                          json={"name": "approve"})
    assert refused.status_code == 409
    assert "targets changed since" in refused.json["error"]["reasons"][0]


# -- SLA policy -----------------------------------------------------------------------------


def test_same_priority_gets_different_targets_by_agency(app, client, people):
    dot = agreement(client, people["agent"], "DOT", DOT_TARGETS)
    doh = agreement(client, people["agent"], "DOH", DOH_TARGETS)
    draft = agreement(client, people["agent"], "EPA", [
        {"priority": 3, "response_minutes": 5, "resolution_minutes": 5}], activate=False)
    at_dot = incident(client, people["dot"])
    at_doh = incident(client, people["doh"])
    at_epa = incident(client, people["epa"])
    assert at_dot["priority"] == at_doh["priority"] == at_epa["priority"] == 3
    assert clocks(app, at_dot["number"])["response"][:2] == (60, f"{dot} any service P3")
    assert clocks(app, at_doh["number"])["response"][:2] == (120, f"{doh} any service P3")
    assert clocks(app, at_doh["number"])["resolution"][0] == 960
    epa = clocks(app, at_epa["number"])["response"]
    assert draft not in epa[1] and epa[1] == "default policy"  # a draft sets nothing


def test_most_specific_target_wins_and_sets_the_calendar(app, client, people):
    agreement(client, people["agent"], "DOT", DOT_TARGETS)
    traffic = incident(client, people["agent"], agency="DOT",
                       affected_service="Traffic management")
    assert clocks(app, traffic["number"])["resolution"][0] == 90
    assert clocks(app, traffic["number"])["resolution"][2] == "24x7"
    urgent = incident(client, people["dot"], impact=1, urgency=1)
    assert urgent["priority"] != 3
    assert clocks(app, urgent["number"])["response"][0] == 240  # the catch-all target


def test_agreement_wins_over_later_policies(app):
    """tryfirst: the agency's agreement is asked before any other plugin's policy."""
    hook = app.extensions["itsm"].hook.itsm_sla_policy
    called_first = hook.get_hookimpls()[-1]
    assert called_first.plugin_name == "mou" and called_first.opts["tryfirst"]


def test_ola_targets_apply_to_tickets_one_group_assigns_another(app, client, people,
                                                                 make_token):
    admin = people["admin"]
    ola = client.post(f"{API}/mous", headers=admin, json={
        "title": "Desk to Network", "kind": "ola", "provider_group": "Network",
        "customer_group": "Service Desk", "ola_types": "ticket"}).json["number"]
    client.put(f"{API}/mous/{ola}/targets", headers=admin, json={"items": [
        {"response_minutes": 30, "resolution_minutes": 45}]})
    move(client, admin, ola, "submit")
    for side in ("provider", "agency"):
        client.post(f"{API}/mous/{ola}/signatories", headers=admin,
                    json={"side": side, "name": "Lead"})
    move(client, admin, ola, "approve")
    move(client, admin, ola, "activate")
    desk_agent = make_token("dee@example.org", role="agent")
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        user = session.scalar(select(User).where(User.email == "dee@example.org"))
        desk_id = ensure_group(session, "Service Desk").id
        session.add(GroupMember(group_id=desk_id, user_id=user.id))
        session.commit()
    routed = client.post(f"{API}/tickets", headers=desk_agent, json={
        "title": "Open port 443", "group": "Network"}).json["number"]
    unrouted = client.post(f"{API}/tickets", headers=desk_agent, json={
        "title": "Own work", "group": "Applications"}).json["number"]
    assert clocks(app, routed)["resolution"][:2] == (45, f"{ola} any service P*")
    assert clocks(app, unrouted)["resolution"][1] == "default policy"
    # Routed later: opened in the desk's queue, then handed to the network team.
    handed = client.post(f"{API}/tickets", headers=admin, json={
        "title": "Firewall rule", "group": "Service Desk"}).json["number"]
    assert clocks(app, handed)["resolution"][1] == "default policy"
    assert client.patch(f"{API}/tickets/{handed}", headers=admin,
                        json={"group": "Network"}).status_code == 200
    assert clocks(app, handed)["resolution"][:2] == (45, f"{ola} any service P*")


# -- amendments -----------------------------------------------------------------------------


def test_amendment_is_a_new_version_with_a_diff_approved_by_someone_else(app, client,
                                                                           people):
    agent, admin = people["agent"], people["admin"]
    number = agreement(client, agent, "DOT", DOT_TARGETS)
    direct = client.put(f"{API}/mous/{number}/targets", headers=agent,
                        json={"items": DOH_TARGETS})
    assert direct.status_code == 409  # an active agreement changes by amendment only
    proposed = client.post(f"{API}/mous/{number}/versions", headers=agent, json={
        "summary": "Faster response for P3",
        "sections": {"5": "Call the relationship manager first."},
        "targets": [{**DOT_TARGETS[0], "response_minutes": 30}, *DOT_TARGETS[1:]]})
    assert proposed.status_code == 201, proposed.json
    version = proposed.json
    assert version["number"] == 2 and version["status"] == "proposed"
    assert "+Call the relationship manager first." in version["diff"]
    assert "-- any service P3: response 60 min" in version["diff"]
    assert "+- any service P3: response 30 min" in version["diff"]
    # Still version 1 in force until approved, and never by its proposer.
    assert clocks(app, incident(client, people["dot"])["number"])["response"][0] == 60
    own = client.post(f"{API}/mous/{number}/versions/2/approve", headers=agent)
    assert own.status_code == 403
    approved = client.post(f"{API}/mous/{number}/versions/2/approve", headers=admin)
    assert approved.status_code == 200 and approved.json["approved_by"] == "boss@example.org"
    data = client.get(f"{API}/mous/{number}/agreement", headers=agent).json
    assert data["current_version"] == 2
    assert data["sections"][4]["body"] == "Call the relationship manager first."
    assert clocks(app, incident(client, people["dot"])["number"])["response"][0] == 30
    again = client.post(f"{API}/mous/{number}/versions/2/approve", headers=admin)
    assert again.status_code == 409
    nothing = client.post(f"{API}/mous/{number}/versions", headers=agent,
                          json={"summary": "no change"})
    assert nothing.status_code == 422
    mine = client.post(f"{API}/mous/{number}/versions", headers=admin, json={
        "summary": "Shorter confidentiality", "sections": {"9": "Keep it quiet."}})
    assert mine.json["number"] == 3
    four_eyes = client.post(f"{API}/mous/{number}/versions/3/approve", headers=admin)
    assert four_eyes.status_code == 409
    assert four_eyes.json["error"]["reasons"] == ["boss@example.org proposed version 3"]


def test_new_template_version_is_used_by_new_agreements_only(client, people):
    old = agreement(client, people["agent"], "DOT", DOT_TARGETS, activate=False)
    sections = client.get(f"{API}/mou/templates", headers=people["admin"]).json["items"][0]
    changed = [dict(s) for s in sections["sections"]]
    changed[8]["body"] = "Strictly confidential."
    assert client.post(f"{API}/mou/templates", headers=people["agent"],
                       json={"sections": changed}).status_code == 403
    assert client.post(f"{API}/mou/templates", headers=people["admin"],
                       json={"sections": changed[:3]}).status_code == 422
    published = client.post(f"{API}/mou/templates", headers=people["admin"],
                            json={"sections": changed, "note": "tighter section 9"})
    assert published.status_code == 201 and published.json["version"] == 2
    new = agreement(client, people["agent"], "DOH", DOH_TARGETS, activate=False)
    got = {n: client.get(f"{API}/mous/{n}/agreement", headers=people["agent"]).json
           for n in (old, new)}
    assert got[old]["template_version"] == 1 and got[new]["template_version"] == 2
    assert got[new]["sections"][8]["body"] == "Strictly confidential."


# -- what each agency sees ------------------------------------------------------------------


def test_agency_never_sees_another_agencys_agreement(client, people):
    dot = agreement(client, people["agent"], "DOT", DOT_TARGETS, title="Roads agreement")
    doh = agreement(client, people["agent"], "DOH", DOH_TARGETS, title="Health agreement")
    dot_draft = agreement(client, people["agent"], "DOT", DOT_TARGETS, activate=False,
                          title="Roads agreement next year")
    pat = people["dot"]
    listed = client.get(f"{API}/mous", headers=pat).json["items"]
    assert [m["number"] for m in listed] == [dot]
    searched = client.get(f"{API}/mous?q=agreement", headers=pat).json["items"]
    assert [m["number"] for m in searched] == [dot]
    for path in (f"/mous/{doh}", f"/mous/{doh}/agreement", f"/mous/{doh}/document",
                 f"/mous/{doh}/targets", f"/mous/{dot_draft}", f"/mous/{doh}/versions"):
        assert client.get(API + path, headers=pat).status_code == 404, path
    assert client.get(f"{API}/mou/mine", headers=pat).json["number"] == dot
    assert client.get(f"{API}/mou/mine", headers=people["epa"]).status_code == 404
    assert client.put(f"{API}/mous/{dot}/contacts", headers=pat,
                      json={"items": []}).status_code == 403
    assert client.post(f"{API}/mous", headers=pat,
                       json={"title": "Mine", "agency": "DOT"}).status_code == 403
    assert client.get(f"{API}/mou/compliance?agency=DOT", headers=pat).status_code == 403
    assert client.get(f"{API}/mou/templates", headers=pat).status_code == 404


def sign_in(client, app, email, role="agent", agency=None):
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        from itsm.core import auth

        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            auth.create_user(session, email, role=role, agency=agency, password=PASSWORD)
        else:
            user.password_hash = auth.hash_password(PASSWORD)
        session.commit()
    token = TOKEN.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302


def test_portal_shows_the_agency_its_manager_and_escalation_path(app, client, people):
    dot = agreement(client, people["agent"], "DOT", DOT_TARGETS)
    doh = agreement(client, people["agent"], "DOH", DOH_TARGETS)
    sign_in(client, app, "pat@dot.example.org")
    page = client.get("/mou/my")
    assert page.status_code == 200
    text = page.text
    assert "DOT Consultant" in text and "DOH Consultant" not in text
    assert text.index("Lee Lead") < text.index("Dana Director")
    assert client.get(f"/mou/agreements/{dot}").status_code == 200
    assert client.get(f"/mou/agreements/{doh}").status_code == 404
    inc = incident(client, people["dot"])["number"]
    detail = client.get(f"/records/incidents/{inc}").text
    assert "Relationship manager: DOT Consultant" in detail


# -- export -----------------------------------------------------------------------------------


def test_agreement_exports_as_markdown_and_html_with_every_section(client, people, runner):
    number = agreement(client, people["agent"], "DOT", DOT_TARGETS)
    markdown = client.get(f"{API}/mous/{number}/document", headers=people["agent"])
    assert markdown.mimetype == "text/markdown"
    headings = [line for line in markdown.text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## 1. Purpose" and headings[9] == "## 10. Changes to this Agreement"
    assert [h.split(":")[0] for h in headings[10:17]] == [
        f"## Appendix {letter}" for letter in "ABCDEFG"]
    assert "| Traffic management | Any | 10 min | 1 h 30 min |" in markdown.text
    appendix_a = markdown.text.split("## Appendix A")[1].split("\n## ")[0]
    assert "| Traffic management |" in appendix_a and "nothing agreed" not in appendix_a
    html = client.get(f"{API}/mous/{number}/document?format=html", headers=people["agent"])
    assert html.mimetype == "text/html" and "Confidentiality Statement" in html.text
    assert "<script" not in html.text
    assert client.get(f"{API}/mous/{number}/document?format=pdf",
                      headers=people["agent"]).status_code == 422
    cli = runner.invoke(["mou", "export", number])
    assert cli.exit_code == 0 and cli.output.startswith(f"# {number}")
    missing = runner.invoke(["mou", "export", "MOU9999999"])
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1


def test_migration_creates_exactly_what_the_models_describe(app):
    tables = ["mou", "mou_template", "mou_version", "mou_section", "mou_target",
              "mou_signatory", "mou_contact", "mou_alert"]
    assert schema_drift(app.extensions["itsm"].engine, tables) == []


def test_staff_pages_list_agreements_and_print_one_with_its_amendments(app, client, people):
    number = agreement(client, people["agent"], "DOT", DOT_TARGETS)
    client.post(f"{API}/mous/{number}/versions", headers=people["agent"], json={
        "summary": "New purpose", "sections": {"1": "A clearer purpose."}})
    sign_in(client, app, "ann@example.org")
    listed = client.get("/mou/")
    assert listed.status_code == 200 and number in listed.text
    # The agency by name, and each cell labelled for the stacked phone layout.
    assert '<td data-label="Parties">Agency DOT</td>' in listed.text
    page = client.get(f"/mou/agreements/{number}")
    assert page.status_code == 200
    assert "Version 2 (proposed)" in page.text and "+A clearer purpose." in page.text
    assert "Content-Security-Policy" in page.headers
    assert re.search(r"<script\b(?![^>]*\bsrc=)", page.text) is None  # no inline script
    assert client.get(f"/records/mous/{number}").status_code == 200
    download = client.get(f"/mou/agreements/{number}.md")
    assert download.mimetype == "text/markdown" and "## 9. Confidentiality" in download.text
    assert client.get("/mou/agreements/MOU0099999").status_code == 404
