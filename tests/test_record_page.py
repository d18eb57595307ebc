"""The record page for staff, as an agent uses it: what matters first, labels instead of
codes, one activity stream, pickers, "Assign to me", and destructive moves asked first."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select
from test_catalog import CATALOG

import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.incident as incident_plugin
from itsm.core import auth
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.models import GroupMember, User

PASSWORD = "long enough secret"
INCIDENTS = "/api/v1/incidents"
META_TOKEN = re.compile(r'name="csrf-token" content="([^"]+)"')


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, catalog_plugin]


@pytest.fixture
def people(itsm):
    with itsm.Session() as session:
        ensure_agency(session, "DOT", "Department of Transport")
        ensure_agency(session, "EPA", "Environment")
        desk = ensure_group(session, "Service Desk")
        ensure_group(session, "Network")
        for email, role, agency, name in (
                ("pat@dot.example", "requester", "DOT", "Pat Morgan"),
                ("boss@dot.example", "requester", "DOT", "Bo Boss"),
                ("alex@it.example", "agent", None, "Alex Kim"),
                ("nina@it.example", "agent", None, "Nina Ode"),
                ("olga@it.example", "agent", None, "Olga Out")):
            user = auth.create_user(session, email, role=role, agency=agency,
                                    password=PASSWORD, name=name)
            if email == "pat@dot.example":
                user.phone = "+1 555 0100"
        session.flush()
        for email in ("alex@it.example", "nina@it.example"):
            user = session.scalar(select(User).where(User.email == email))
            session.add(GroupMember(group_id=desk.id, user_id=user.id))
        session.commit()
    return itsm


def browser(app, email):
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    client.csrf = META_TOKEN.search(client.get("/home").text).group(1)
    return client


def send(client, path, **data):
    return client.post(path, data={**data, "csrf_token": client.csrf})


def incident(client, make_token, **fields) -> str:
    pat = make_token("pat@dot.example")
    number = client.post(INCIDENTS, json={"title": "VPN drops every hour", **fields},
                         headers=pat).json["number"]
    return number


def test_header_shows_people_by_name_with_contact_and_hides_empty_fields(
        app, client, people, make_token):
    number = incident(client, make_token, category="hardware", subcategory="laptop")
    agent = make_token("alex@it.example")
    changed = client.patch(f"{INCIDENTS}/{number}", json={
        "group": "Service Desk", "channel": "walk_in", "assignee": "nina@it.example"},
        headers=agent)
    assert changed.status_code == 200, changed.json
    page = browser(app, "alex@it.example").get(f"/records/incidents/{number}").text
    facts = page[page.index('class="card record-facts"'):page.index('class="detail"')]
    for shown in ("Pat Morgan", "Department of Transport", "mailto:pat@dot.example",
                  "+1 555 0100", "Service Desk", "Nina Ode", "Priority", "5 – Planning"):
        assert shown in facts, shown
    details = page[page.index('id="details-title"'):page.index('id="activity"')]
    assert "Walk-in" in details and "walk_in" not in details
    assert "Hardware" in details and "Laptop" in details
    assert "Workaround" not in details and "Resolution" not in details  # empty: hidden
    assert "Hold reason" not in details
    assert "Nina Ode" in page[page.index('id="activity"'):]  # the change, by name


def test_resolution_code_and_impact_are_labelled_choices_and_shown_as_labels(
        app, client, people, make_token):
    number = incident(client, make_token)
    agent = browser(app, "alex@it.example")
    page = agent.get(f"/records/incidents/{number}").text
    assert '<option value="not_reproducible">Not reproducible</option>' in page
    send(agent, f"/records/incidents/{number}/transition", name="resolve",
         resolution_code="not_reproducible", resolution_notes="Could not see it fail.")
    page = agent.get(f"/records/incidents/{number}").text
    assert "Not reproducible" in page and ">not_reproducible<" not in page
    form = agent.get(f"/records/incidents/{number}/edit").text
    assert '<option value="1">1 – Widespread</option>' in form
    assert '<option value="3" selected>3 – Can wait</option>' in form
    assert '<optgroup label="Network">' in form and '<option value="vpn">VPN</option>' in form


def test_assign_to_me_and_the_assignee_picker_lists_the_groups_members(
        app, client, people, make_token):
    number = incident(client, make_token)
    client.patch(f"{INCIDENTS}/{number}", json={"group": "Service Desk"},
                 headers=make_token("alex@it.example"))
    agent = browser(app, "alex@it.example")
    assert "Assign to me" in agent.get(f"/records/incidents/{number}").text
    moved = send(agent, f"/records/incidents/{number}/assign-to-me")
    assert moved.status_code == 302
    page = agent.get(moved.headers["Location"]).text
    assert "is now assigned to you" in page and "Assign to me" not in page
    form = agent.get(f"/records/incidents/{number}/edit").text
    picker = form[form.index('id="f-assignee-list"'):]
    picker = picker[:picker.index("</datalist>")]
    assert '<option value="nina@it.example">Nina Ode &lt;nina@it.example&gt;</option>' in picker
    assert "olga@it.example" not in picker  # not a member of the record's group
    assert '<option value="Service Desk" selected>Service Desk</option>' in form
    assert 'Department of Transport</option>' in form


def test_cancel_is_never_primary_and_asks_first(app, client, people, make_token):
    number = incident(client, make_token)
    agent = browser(app, "alex@it.example")
    page = agent.get(f"/records/incidents/{number}").text
    moves = page[page.index('id="workflow-title"'):page.index('id="details-title"')]
    first = re.search(r"<button type=\"submit\"( class=\"secondary\")?>([^<]+)</button>", moves)
    assert first.group(1) is None and first.group(2) == "Start work"  # the primary one
    assert ">Cancel</button>" not in moves
    assert f'href="/records/incidents/{number}/transition/cancel">Cancel…</a>' in moves
    # Posted straight (a bookmarked form, no script): sent to the confirmation step.
    straight = send(agent, f"/records/incidents/{number}/transition", name="cancel")
    assert straight.headers["Location"].endswith(f"/records/incidents/{number}"
                                                 "/transition/cancel")
    assert client.get(f"{INCIDENTS}/{number}",
                      headers=make_token("alex@it.example")).json["state"] == "new"
    ask = agent.get(f"/records/incidents/{number}/transition/cancel").text
    assert "Cancel " + number + "?" in ask and "Yes, cancel" in ask and "No, go back" in ask
    done = send(agent, f"/records/incidents/{number}/transition", name="cancel",
                confirmed="yes")
    assert "the state is now Cancelled" in agent.get(done.headers["Location"]).text


def test_the_pickers_type_ahead_is_json_and_kept_to_staff(app, client, people, make_token):
    number = incident(client, make_token)
    agent = browser(app, "alex@it.example")
    found = agent.get("/records/incidents/choices/assignee?q=nin").json["items"]
    assert found == [{"value": "nina@it.example", "label": "Nina Ode <nina@it.example>"}]
    groups = agent.get(f"/records/incidents/choices/assignee?record={number}").json["items"]
    assert {g["value"] for g in groups} >= {"nina@it.example"}
    labels = agent.get("/records/incidents/choices/channel?q=walk").json["items"]
    assert labels == [{"value": "walk_in", "label": "Walk-in"}]
    unknown = agent.get("/records/incidents/choices/nothing")
    assert unknown.status_code == 422 and "field" in unknown.json["error"]["fields"]
    requester = browser(app, "pat@dot.example").get("/records/incidents/choices/assignee")
    assert requester.status_code == 422


@pytest.fixture
def catalog(runner, people, tmp_path):
    path = tmp_path / "catalog.json"
    data = {**CATALOG, "approvers": [{"agency": "DOT", "user": "boss@dot.example"},
                                     {"agency": "DOT", "user": "nina@it.example"}]}
    path.write_text(json.dumps(data))
    result = runner.invoke(["catalog", "import", str(path)])
    assert result.exit_code == 0, result.output


def laptop_request(client, make_token) -> str:
    pat = make_token("pat@dot.example")
    oid = client.get("/api/v1/catalog/services/laptop", headers=pat).json["offerings"][0]["id"]
    return client.post(f"/api/v1/catalog/offerings/{oid}/requests", headers=pat, json={
        "answers": {"model": "Power user", "quantity": 2}}).json["number"]


def test_a_request_shows_its_offering_by_name_and_answers_as_a_table(
        app, client, catalog, make_token):
    number = laptop_request(client, make_token)
    page = browser(app, "alex@it.example").get(f"/records/requests/{number}").text
    assert "Order a laptop" in page and "Offering id" not in page
    assert '<th scope="row">Model</th><td class="text">Power user</td>' in page
    assert '<th scope="row">How many</th><td class="text">2</td>' in page
    assert "{&#39;" not in page and "{'" not in page  # never a Python dict
    assert "A manager of the requester&#39;s agency" in page


def test_an_approver_may_not_cancel_someone_elses_request(app, client, catalog, make_token):
    number = laptop_request(client, make_token)
    nina = make_token("nina@it.example")
    offered = {t["name"]: t for t in client.get(
        f"/api/v1/requests/{number}/transitions", headers=nina).json["items"]}
    assert offered["cancel"]["allowed"] is False
    refused = client.post(f"/api/v1/requests/{number}/transitions", json={"name": "cancel"},
                          headers=nina)
    assert refused.status_code == 409
    portal = browser(app, "nina@it.example").get(f"/portal/requests/{number}").text
    assert "Cancel this request" not in portal
    staff_page = browser(app, "nina@it.example").get(f"/records/requests/{number}").text
    assert "Cancel" not in staff_page[staff_page.index('id="workflow-title"'):
                                      staff_page.index('id="activity"')]
    assert "Approve" in portal
    # The requester still cancels her own.
    pat = make_token("pat@dot.example")
    assert client.post(f"/api/v1/requests/{number}/transitions", json={"name": "cancel"},
                       headers=pat).status_code == 200


def test_a_person_typed_by_name_is_found_and_an_unknown_one_gets_a_field_message(
        app, client, people, make_token):
    number = incident(client, make_token)
    client.patch(f"{INCIDENTS}/{number}", json={"group": "Service Desk"},
                 headers=make_token("alex@it.example"))
    agent = browser(app, "alex@it.example")
    form = agent.get(f"/records/incidents/{number}/edit").text
    version = re.search(r'name="version" value="(\d+)"', form).group(1)
    fields = {"title": "VPN drops every hour", "requester": "pat@dot.example",
              "agency": "DOT", "group": "Service Desk", "version": version}
    saved = send(agent, f"/records/incidents/{number}/edit", **fields, assignee="nina ode")
    assert saved.status_code == 302
    assert "Nina Ode" in agent.get(saved.headers["Location"]).text
    version = str(int(version) + 1)
    bad = send(agent, f"/records/incidents/{number}/edit",
               **{**fields, "version": version}, assignee="Nobody Here")
    assert bad.status_code == 422
    assert 'id="f-assignee-error"' in bad.text and 'value="Nobody Here"' in bad.text

