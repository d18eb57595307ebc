"""The service catalog as people use it: find a service, request it with a bad field and
then a good one, approvals and tasks complete it, feedback reaches the review queue, the
technical catalog stays with IT staff, SLA targets come from the offering."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

import itsm.plugins.catalog as catalog_plugin
from itsm.core import auth
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.models import GroupMember, User
from itsm.core.sla_models import SlaClock
from itsm.testing import schema_drift

API = "/api/v1/catalog"
PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

CATALOG = {
    "categories": [{"name": "Devices", "description": "Laptops and phones."},
                   {"name": "Network", "description": "Connections."}],
    "services": [
        {"slug": "laptop", "name": "Laptop", "category": "Devices", "status": "live",
         "summary": "A managed laptop, replaced every four years.", "price": "38.00",
         "rate_unit": "per laptop", "billing_period": "monthly",
         "faq_url": "https://help.example.org/faq/laptop",
         "offerings": [{
             "code": "new", "name": "Order a laptop", "approval": "manager",
             "task_order": "sequential", "response_minutes": 60, "resolution_minutes": 2400,
             "tasks": [{"title": "Order the hardware", "group": "Service Desk"},
                       {"title": "Install and deliver", "group": "Service Desk"}],
             "form": [
                 {"name": "model", "label": "Model", "type": "choice", "required": True,
                  "choices": ["Standard", "Power user"]},
                 {"name": "quantity", "label": "How many", "type": "integer",
                  "required": True},
                 {"name": "needed_by", "label": "Needed by", "type": "date"}]}]},
        {"slug": "vpn", "name": "Remote access (VPN)", "category": "Network",
         "status": "live", "summary": "Work from home as in the office.",
         "offerings": [{"code": "access", "name": "Request remote access",
                        "task_order": "parallel", "response_minutes": 15,
                        "resolution_minutes": 240,
                        "tasks": [{"title": "Enable the profile", "group": "Network"},
                                  {"title": "Send the guide", "group": "Service Desk"}],
                        "form": [{"name": "reason", "label": "Why", "type": "text",
                                  "required": True}]}]},
        {"slug": "gis", "name": "Maps (GIS)", "category": "Devices", "status": "live",
         "summary": "Maps for planners.", "agencies": ["EPA"]},
        {"slug": "db-hosting", "name": "Database hosting", "status": "in_transition",
         "summary": "Managed databases."},
    ],
    "approvers": [{"agency": "DOT", "user": "boss@dot.example"}],
}


@pytest.fixture
def itsm_plugins():
    return [catalog_plugin]


@pytest.fixture
def people(app):
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        for code in ("DOT", "EPA"):
            ensure_agency(session, code, f"Agency {code}")
        desk = ensure_group(session, "Service Desk")
        net = ensure_group(session, "Network")
        for email, role, agency in (("pat@dot.example", "requester", "DOT"),
                                    ("boss@dot.example", "requester", "DOT"),
                                    ("sam@epa.example", "requester", "EPA"),
                                    ("alex@it.example", "agent", None),
                                    ("nina@it.example", "agent", None)):
            auth.create_user(session, email, role=role, agency=agency, password=PASSWORD)
        alex = session.scalar(select(User).where(User.email == "alex@it.example"))
        nina = session.scalar(select(User).where(User.email == "nina@it.example"))
        session.add(GroupMember(group_id=desk.id, user_id=alex.id))
        session.add(GroupMember(group_id=net.id, user_id=nina.id))
        session.commit()
    return state


@pytest.fixture
def loaded(runner, people, tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    result = runner.invoke(["catalog", "import", str(path)])
    assert result.exit_code == 0, result.output
    return result


def tokens(make_token):
    return {name: make_token(email) for name, email in (
        ("pat", "pat@dot.example"), ("boss", "boss@dot.example"), ("sam", "sam@epa.example"),
        ("alex", "alex@it.example"), ("nina", "nina@it.example"))}


def sign_in(client, email):
    token = TOKEN.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302


def post(client, path, data):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**data, "csrf_token": token})


def offering_id(client, headers, slug):
    return client.get(f"{API}/services/{slug}", headers=headers).json["offerings"][0]["id"]


def transition(client, headers, collection, number, name):
    return client.post(f"/api/v1/{collection}/{number}/transitions", headers=headers,
                       json={"name": name})


def test_newcomer_finds_a_service_by_search_and_by_category(client, loaded, make_token):
    t = tokens(make_token)
    found = client.get(f"{API}/services?q=laptop", headers=t["pat"]).json["items"]
    assert [s["slug"] for s in found] == ["laptop"]
    assert client.get(f"{API}/services?q=remote%20home", headers=t["pat"]).json["items"][0][
        "slug"] == "vpn"
    assert client.get(f"{API}/services?q=100%25", headers=t["pat"]).json["items"] == []
    categories = client.get(f"{API}/categories", headers=t["pat"]).json["items"]
    devices = next(c for c in categories if c["name"] == "Devices")
    assert devices["services"] == 1  # GIS is for EPA only
    in_devices = client.get(f"{API}/services?category={devices['id']}", headers=t["pat"])
    assert [s["slug"] for s in in_devices.json["items"]] == ["laptop"]
    sign_in(client, "pat@dot.example")
    page = client.get("/portal/catalog?q=laptop")
    assert page.status_code == 200 and "Laptop" in page.text
    page = client.get(f"/portal/catalog?category={devices['id']}")
    assert "Laptop" in page.text and "Maps (GIS)" not in page.text
    assert "Laptop" in client.get("/portal/catalog/services/laptop").text


def test_only_live_services_and_the_agencys_own_show(client, loaded, make_token):
    t = tokens(make_token)
    slugs = {s["slug"] for s in client.get(f"{API}/services", headers=t["pat"]).json["items"]}
    assert slugs == {"laptop", "vpn"}
    assert client.get(f"{API}/services/db-hosting", headers=t["pat"]).status_code == 404
    assert client.get(f"{API}/services/gis", headers=t["pat"]).status_code == 404
    epa = {s["slug"] for s in client.get(f"{API}/services", headers=t["sam"]).json["items"]}
    assert epa == {"laptop", "vpn", "gis"}
    by_agency = client.get(f"{API}/services?agency=EPA", headers=t["alex"]).json["items"]
    assert "gis" in {s["slug"] for s in by_agency}
    sign_in(client, "pat@dot.example")
    assert client.get("/portal/catalog/agencies/EPA").status_code == 404
    assert "Laptop" in client.get("/portal/catalog/agencies/DOT").text


def test_a_bad_field_is_refused_with_its_message_then_a_good_request_goes(client, loaded,
                                                                           make_token):
    t = tokens(make_token)
    oid = offering_id(client, t["pat"], "laptop")
    bad = client.post(f"{API}/offerings/{oid}/requests", headers=t["pat"],
                      json={"answers": {"model": "Gold", "quantity": "many"}})
    assert bad.status_code == 422
    fields = bad.json["error"]["fields"]["answers"]
    assert set(fields) == {"model", "quantity"}
    generic = client.post("/api/v1/requests", headers=t["pat"], json={
        "title": "Laptop", "offering_id": oid, "answers": {"model": "Standard"}})
    assert generic.status_code == 422
    assert "quantity" in generic.json["error"]["fields"]["answers"]
    good = client.post(f"{API}/offerings/{oid}/requests", headers=t["pat"],
                       json={"answers": {"model": "Standard", "quantity": 2,
                                         "needed_by": "2030-01-07"}})
    assert good.status_code == 201, good.json
    assert good.json["number"].startswith("REQ") and good.json["state"] == "submitted"
    assert good.json["answers"] == {"model": "Standard", "quantity": 2,
                                    "needed_by": "2030-01-07"}


def test_portal_form_shows_the_error_inline_and_keeps_the_values(client, loaded):
    sign_in(client, "pat@dot.example")
    service = client.get("/portal/catalog/services/laptop").text
    path = re.search(r'href="(/portal/catalog/services/laptop/offerings/\d+)"', service).group(1)
    page = client.get(path)
    assert 'name="quantity"' in page.text and "Power user" in page.text
    bad = post(client, path, {"model": "Power user", "quantity": "lots", "note": "Urgent"})
    assert bad.status_code == 422
    assert 'id="e-quantity"' in bad.text and "Not a valid integer" in bad.text
    assert '<option value="Power user" selected>' in bad.text and "Urgent" in bad.text
    good = post(client, path, {"model": "Power user", "quantity": "1"})
    assert good.status_code == 302
    number = good.headers["Location"].rsplit("/", 1)[-1]
    mine = client.get("/portal/requests").text
    assert number in mine and "Waiting for approval" in mine


def test_manager_approves_and_sequential_tasks_complete_the_request(client, loaded,
                                                                    make_token):
    t = tokens(make_token)
    oid = offering_id(client, t["pat"], "laptop")
    number = client.post(f"{API}/offerings/{oid}/requests", headers=t["pat"], json={
        "answers": {"model": "Standard", "quantity": 1}}).json["number"]
    assert transition(client, t["pat"], "requests", number, "approve").status_code == 409
    assert transition(client, t["alex"], "requests", number, "approve").status_code == 409
    waiting = client.get(f"{API}/approvals", headers=t["boss"]).json["items"]
    assert [r["number"] for r in waiting] == [number]
    approved = transition(client, t["boss"], "requests", number, "approve")
    assert approved.status_code == 200, approved.json
    assert approved.json["state"] == "in_fulfillment"
    assert approved.json["decided_by"] == "boss@dot.example"
    tasks = client.get("/api/v1/tasks?sort=number", headers=t["alex"]).json["items"]
    assert [x["state"] for x in tasks] == ["open", "pending"]
    assert all(x["group"] == "Service Desk" for x in tasks)
    assert client.get(f"/api/v1/tasks/{tasks[0]['number']}", headers=t["pat"]).status_code \
        in (403, 404)
    assert transition(client, t["nina"], "tasks", tasks[0]["number"], "complete") \
        .status_code in (403, 409)
    assert transition(client, t["alex"], "tasks", tasks[0]["number"], "complete") \
        .status_code == 200
    second = client.get(f"/api/v1/tasks/{tasks[1]['number']}", headers=t["alex"]).json
    assert second["state"] == "open"
    assert client.get(f"/api/v1/requests/{number}", headers=t["pat"]).json["state"] == \
        "in_fulfillment"
    transition(client, t["alex"], "tasks", tasks[1]["number"], "start")
    transition(client, t["alex"], "tasks", tasks[1]["number"], "complete")
    done = client.get(f"/api/v1/requests/{number}", headers=t["pat"]).json
    assert done["state"] == "fulfilled" and done["fulfilled_at"]
    journal = client.get(f"/api/v1/requests/{number}/journal", headers=t["pat"]).json
    assert any("fulfilled" in (e.get("body") or "") for e in journal["items"])


def test_a_request_changed_after_its_approval_is_not_fulfilled(app, client, loaded,
                                                               make_token):
    # The answers are fixed once submitted through the service; the approval's digest
    # also stops answers changed behind it (a restore, a database fix) from being
    # fulfilled on the old approval.
    from itsm.plugins.catalog.models import ServiceRequest

    t = tokens(make_token)
    oid = offering_id(client, t["pat"], "laptop")
    number = client.post(f"{API}/offerings/{oid}/requests", headers=t["pat"], json={
        "answers": {"model": "Standard", "quantity": 1}}).json["number"]
    assert transition(client, t["boss"], "requests", number, "approve").status_code == 200
    with app.app_context(), app.extensions["itsm"].Session() as session:
        request = session.scalar(select(ServiceRequest).where(
            ServiceRequest.number == number))
        request.answers = {**request.answers, "quantity": 40}
        session.commit()
    tasks = client.get("/api/v1/tasks?sort=number", headers=t["alex"]).json["items"]
    assert transition(client, t["alex"], "tasks", tasks[0]["number"], "complete") \
        .status_code == 200
    transition(client, t["alex"], "tasks", tasks[1]["number"], "start")
    refused = transition(client, t["alex"], "tasks", tasks[1]["number"], "complete")
    assert refused.status_code == 409
    assert f"{number} differs from what boss@dot.example approved: answers changed since" \
        in " ".join(refused.json["error"]["reasons"])
    assert client.get(f"/api/v1/requests/{number}", headers=t["pat"]).json["state"] == \
        "in_fulfillment"


def test_parallel_tasks_open_together_and_cancel_stops_them(client, loaded, make_token):
    t = tokens(make_token)
    oid = offering_id(client, t["pat"], "vpn")
    created = client.post(f"{API}/offerings/{oid}/requests", headers=t["pat"],
                          json={"answers": {"reason": "Working from home on Fridays"}})
    assert created.json["state"] == "in_fulfillment"  # no approval needed
    tasks = client.get("/api/v1/tasks", headers=t["alex"]).json["items"]
    assert sorted(x["state"] for x in tasks) == ["open", "open"]
    assert {x["group"] for x in tasks} == {"Network", "Service Desk"}
    cancelled = transition(client, t["pat"], "requests", created.json["number"], "cancel")
    assert cancelled.json["state"] == "cancelled"
    tasks = client.get("/api/v1/tasks", headers=t["alex"]).json["items"]
    assert {x["state"] for x in tasks} == {"cancelled"}


def test_sla_targets_come_from_the_offering(app, client, loaded, make_token):
    t = tokens(make_token)
    oid = offering_id(client, t["pat"], "vpn")
    number = client.post(f"{API}/offerings/{oid}/requests", headers=t["pat"],
                         json={"answers": {"reason": "Travel"}}).json["number"]
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        from itsm.core.models import Record

        record_id = session.scalar(select(Record.id).where(Record.number == number))
        clocks = {c.metric: c for c in session.scalars(
            select(SlaClock).where(SlaClock.record_id == record_id))}
    assert clocks["resolution"].target_minutes == 240
    assert clocks["response"].target_minutes == 15
    assert clocks["resolution"].source == f"catalog offering {oid}"


def test_feedback_reaches_the_review_queue_and_the_answer_the_user(client, loaded,
                                                                   make_token):
    t = tokens(make_token)
    sign_in(client, "pat@dot.example")
    empty = post(client, "/portal/catalog/services/laptop/feedback", {"kind": "problem",
                                                                       "body": ""})
    assert empty.status_code == 422 and "Your feedback could not be sent" in empty.text
    sent = post(client, "/portal/catalog/services/laptop/feedback", {
        "kind": "problem", "body": "The price shown is last year's."})
    assert sent.status_code == 302
    assert client.get(f"{API}/feedback", headers=t["pat"]).status_code == 403
    queue = client.get(f"{API}/feedback?state=new", headers=t["alex"]).json["items"]
    assert [(f["kind"], f["author"]) for f in queue] == [("problem", "pat@dot.example")]
    refused = client.patch(f"{API}/feedback/{queue[0]['id']}", headers=t["alex"],
                           json={"state": "done"})
    assert refused.status_code == 422 and "answer" in refused.json["error"]["fields"]
    answered = client.patch(f"{API}/feedback/{queue[0]['id']}", headers=t["alex"],
                            json={"state": "done", "answer": "Fixed, thank you."})
    assert answered.json["state"] == "done"
    mine = client.get(f"{API}/feedback/mine", headers=t["pat"]).json["items"]
    assert mine[0]["answer"] == "Fixed, thank you."
    assert "Fixed, thank you." in client.get("/portal/catalog/services/laptop/feedback").text


def test_technical_catalog_is_hidden_from_end_users(client, loaded, make_token):
    t = tokens(make_token)
    created = client.post(f"{API}/services/laptop/documents", headers=t["alex"], json={
        "title": "Laptop imaging runbook", "kind": "runbook", "review_due": "2020-01-01",
        "body": "1. Boot from the network."})
    assert created.status_code == 201, created.json
    doc = created.json["id"]
    v2 = client.post(f"{API}/documents/{doc}/versions", headers=t["alex"],
                     json={"body": "1. Boot from USB.", "note": "new image server"})
    assert v2.json["version"] == 2 and v2.json["body"] == "1. Boot from USB."
    overdue = client.get(f"{API}/documents/overdue", headers=t["alex"]).json["items"]
    assert [d["id"] for d in overdue] == [doc]
    for path in (f"{API}/documents", f"{API}/documents/{doc}", f"{API}/documents/overdue"):
        assert client.get(path, headers=t["pat"]).status_code == 403
    assert client.post(f"{API}/services/laptop/documents", headers=t["pat"], json={
        "title": "x", "body": "y"}).status_code == 403
    sign_in(client, "pat@dot.example")
    assert client.get("/catalog/technical").status_code == 403
    assert client.get(f"/catalog/technical/documents/{doc}").status_code == 403


def test_an_empty_category_takes_a_service_out_of_its_category(client, loaded, make_token):
    manager = make_token("sm@it.example", role="service_manager")
    cleared = client.patch(f"{API}/services/laptop", headers=manager, json={"category": ""})
    assert cleared.status_code == 200, cleared.json  # was a 500 on PostgreSQL
    assert cleared.json["category"] in (None, "")
    made = client.post(f"{API}/services", headers=manager, json={
        "slug": "plotter", "name": "Plotter", "category": ""})
    assert made.status_code == 201, made.json


def test_service_goes_live_through_the_api_for_a_transition_gate(client, loaded, make_token):
    t = tokens(make_token)
    manager = make_token("sm@it.example", role="service_manager")
    assert client.patch(f"{API}/services/db-hosting", headers=t["alex"],
                        json={"status": "live"}).status_code == 403
    assert client.patch(f"{API}/services/db-hosting", headers=manager,
                        json={"status": "launched"}).status_code == 422
    live = client.patch(f"{API}/services/db-hosting", headers=manager, json={"status": "live"})
    assert live.json["status"] == "live"
    assert "db-hosting" in {s["slug"] for s in client.get(f"{API}/services",
                                                          headers=t["pat"]).json["items"]}


def test_bad_offering_definitions_are_422_never_500(client, loaded, make_token):
    manager = make_token("sm@it.example", role="service_manager")
    bad = client.post(f"{API}/services/laptop/offerings", headers=manager, json={
        "code": "odd", "name": "Odd", "form": [{"name": "Bad Name", "label": "x",
                                                "type": "colour"}]})
    assert bad.status_code == 422 and "form" in bad.json["error"]["fields"]
    no_choices = client.post(f"{API}/services/laptop/offerings", headers=manager, json={
        "code": "odd", "name": "Odd", "form": [{"name": "pick", "label": "Pick",
                                                "type": "choice"}]})
    assert no_choices.status_code == 422
    assert client.post(f"{API}/services", headers=manager, json={"slug": "Bad slug"}) \
        .status_code == 422


def test_import_is_all_or_nothing_and_export_round_trips(runner, people, tmp_path):
    broken = {"services": [{"slug": "ok-one", "name": "OK"},
                           {"slug": "bad", "name": "Bad", "status": "sunset"}]}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = runner.invoke(["catalog", "import", str(path)])
    assert result.exit_code == 1
    assert "services[1] (bad)" in result.output and "Traceback" not in result.output
    assert "ok-one" not in runner.invoke(["catalog", "services"]).output
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("services: [unclosed")
    result = runner.invoke(["catalog", "import", str(garbage)])
    assert result.exit_code == 1 and "not valid YAML" in result.output
    yaml_file = tmp_path / "catalog.yaml"
    import yaml

    yaml_file.write_text(yaml.safe_dump(CATALOG))
    result = runner.invoke(["catalog", "import", str(yaml_file)])
    assert result.exit_code == 0, result.output
    assert "services 4/4" in result.output and "4 services" in result.output
    exported = runner.invoke(["catalog", "export", "--format", "yaml"])
    assert exported.exit_code == 0
    again = yaml.safe_load(exported.output)
    assert {s["slug"] for s in again["services"]} == {"laptop", "vpn", "gis", "db-hosting"}
    assert again["approvers"] == [{"agency": "DOT", "user": "boss@dot.example"}]
    as_json = json.loads(runner.invoke(["catalog", "export"]).output)
    assert any(s["offerings"] for s in as_json["services"])


def test_reports_count_requests_fulfilment_and_feedback(client, runner, loaded, make_token):
    t = tokens(make_token)
    oid = offering_id(client, t["pat"], "vpn")
    number = client.post(f"{API}/offerings/{oid}/requests", headers=t["pat"],
                         json={"answers": {"reason": "Travel"}}).json["number"]
    for task in client.get("/api/v1/tasks", headers=t["alex"]).json["items"]:
        who = t["nina"] if task["group"] == "Network" else t["alex"]
        assert transition(client, who, "tasks", task["number"], "complete").status_code == 200
    assert client.get(f"/api/v1/requests/{number}", headers=t["pat"]).json["state"] == \
        "fulfilled"
    client.post(f"{API}/services/vpn/feedback", headers=t["pat"],
                json={"kind": "suggestion", "body": "Add a setup video."})
    report = client.get(f"{API}/reports/summary?days=30", headers=t["alex"]).json
    assert report["by_service"] == [{"service": "Remote access (VPN)", "requests": 1}]
    assert report["by_agency"] == [{"agency": "DOT", "requests": 1}]
    assert report["fulfilment"][0]["within_target"] == 1
    assert report["feedback"]["by_state"]["new"] == 1
    assert client.get(f"{API}/reports/summary", headers=t["pat"]).status_code == 403
    assert client.get(f"{API}/reports/summary?days=x", headers=t["alex"]).status_code == 422
    text = runner.invoke(["catalog", "report"])
    assert text.exit_code == 0 and "Remote access (VPN)" in text.output


def test_demo_data_and_defaults(app, runner):
    assert runner.invoke(["demo"]).exit_code == 0
    listed = runner.invoke(["catalog", "services", "--json"])
    services = json.loads(listed.output)
    assert len(services) == 20
    assert sum(s["status"] == "live" for s in services) == 19
    state = app.extensions["itsm"]
    with app.app_context():
        from itsm.core.demo import DemoContext

        for _ in range(2):  # idempotent
            with state.Session() as session:
                catalog_plugin.itsm_install_defaults(DemoContext(state, session))
                session.commit()


def test_migration_creates_exactly_what_the_models_describe(app):
    tables = ["catalog_category", "catalog_service", "catalog_service_agency",
              "catalog_offering", "catalog_approver", "catalog_feedback", "catalog_document",
              "catalog_document_version", "catalog_request", "catalog_task"]
    assert schema_drift(app.extensions["itsm"].engine, tables) == []


def test_a_request_waiting_for_approval_reaches_its_approvers_inbox(app, client, loaded,
                                                                    make_token):
    t = tokens(make_token)
    oid = offering_id(client, t["pat"], "laptop")
    number = client.post(f"{API}/offerings/{oid}/requests", headers=t["pat"], json={
        "answers": {"model": "Standard", "quantity": 1}}).json["number"]
    with app.app_context():
        app.extensions["itsm"].outbox.drain()
    waiting = client.get("/api/v1/notifications", headers=t["boss"]).json["items"]
    assert [(n["kind"], n["record"]["number"]) for n in waiting] == [("approval", number)]
    for other in ("pat", "sam", "alex"):  # the requester, another agency, not an approver
        assert client.get("/api/v1/notifications", headers=t[other]).json["items"] == []
