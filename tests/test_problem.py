"""Problem management: problems collect incidents, become known errors, feed suggestions
and trends. The sample "tickets" plugin plays the incident type (``incident_type =
"ticket"``), so these tests need no other built-in plugin."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import sample_plugin
from sqlalchemy import inspect, select, update

import itsm.plugins.problem
from itsm.core.models import Event, JournalEntry, Record, utcnow
from itsm.testing import schema_drift

PASSWORD = "long enough secret"
WORKAROUND = "Open shared calendars in Outlook on the web until the add-in is fixed."


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, itsm.plugins.problem]


@pytest.fixture
def problem_settings():
    """Settings of the problem plugin; a test parametrizes it to change one."""
    return {}


@pytest.fixture
def itsm_config(itsm_config, problem_settings):
    return {**itsm_config, "plugins.problem.incident_type": "ticket",
            "plugins.problem.trend_fields": ["category", "affected_service"],
            **{f"plugins.problem.{k}": v for k, v in problem_settings.items()}}


@pytest.fixture
def agent(make_token):
    return make_token("agent@example.org", role="agent", password=PASSWORD)


@pytest.fixture
def pat(make_token):
    return make_token("pat@dot.example.org", role="requester", agency="DOT", password=PASSWORD)


def open_problem(client, headers, **fields):
    body = {"title": "Outlook crashes on shared calendars", "category": "email",
            "affected_service": "E-mail", **fields}
    response = client.post("/api/v1/problems", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def open_ticket(client, headers, title="Outlook crashes", **fields):
    response = client.post("/api/v1/tickets", json={"title": title, **fields},
                           headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def run(client, headers, number, name, **fields):
    return client.post(f"/api/v1/problems/{number}/transitions", headers=headers,
                       json={"name": name, "fields": fields})


def known_error(client, headers, **fields):
    problem = open_problem(client, headers, **fields)
    made = run(client, headers, problem["number"], "record_known_error",
               root_cause="Calendar add-in 2.3 breaks delegated mailboxes.",
               workaround=WORKAROUND)
    assert made.status_code == 200, made.json
    return made.json


def link(client, headers, problem, incident):
    return client.post(f"/api/v1/problems/{problem}/incidents", json={"incident": incident},
                       headers=headers)


def sign_in(client, email="agent@example.org"):
    token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302


# -- workflow ---------------------------------------------------------------------------------


def test_problem_becomes_a_known_error_only_with_root_cause_and_workaround(client, agent):
    problem = open_problem(client, agent)
    number = problem["number"]
    assert number.startswith("PRB") and problem["state"] == "new"
    assert problem["known_error_at"] is None

    refused = run(client, agent, number, "record_known_error", root_cause="add-in")
    assert refused.status_code == 409
    assert refused.json["error"]["reasons"] == [
        "workaround is required to record known error"]

    started = run(client, agent, number, "investigate", root_cause="Looking at the add-in.")
    assert started.json["state"] == "under_investigation"
    made = run(client, agent, number, "record_known_error", workaround=WORKAROUND)
    assert made.status_code == 200, made.json
    assert (made.json["state"], made.json["state_label"]) == ("known_error", "Known error")
    assert made.json["known_error_at"] is not None

    unresolved = run(client, agent, number, "resolve")
    assert unresolved.json["error"]["reasons"] == ["resolution is required to resolve"]
    resolved = run(client, agent, number, "resolve", resolution="Add-in 2.4 rolled out.")
    assert resolved.json["state"] == "resolved"
    closed = run(client, agent, number, "close")
    assert closed.json["state"] == "closed" and closed.json["closed_at"] is not None


def test_invalid_problem_fields_answer_422_with_field_messages(client, agent):
    response = client.post("/api/v1/problems", headers=agent,
                           json={"title": "x", "category": "c" * 101, "known_error_at": "now"})
    assert response.status_code == 422
    assert set(response.json["error"]["fields"]) == {"category", "known_error_at"}


def test_requester_can_neither_open_nor_read_problems(client, agent, pat):
    number = open_problem(client, agent)["number"]
    assert client.post("/api/v1/problems", json={"title": "mine"}, headers=pat) \
        .status_code == 403
    assert client.get(f"/api/v1/problems/{number}", headers=pat).status_code == 404
    assert client.get("/api/v1/known-errors", headers=pat).status_code == 403
    assert client.get(f"/api/v1/problems/{number}/incidents", headers=pat).status_code == 404


# -- linked incidents and resolution ------------------------------------------------------------


def test_problem_collects_incidents_and_becomes_a_known_error(client, agent):
    problem = open_problem(client, agent)["number"]
    first = open_ticket(client, agent)["number"]
    second = open_ticket(client, agent, title="Calendar closes Outlook")["number"]

    assert link(client, agent, problem, first).status_code == 201
    linked = link(client, agent, problem, second.lower())
    assert linked.status_code == 201, linked.json
    assert [i["number"] for i in linked.json["items"]] == [first, second]
    listed = client.get(f"/api/v1/problems/{problem}/incidents", headers=agent).json
    assert listed == linked.json

    links = client.get(f"/api/v1/tickets/{first}/links", headers=agent).json["items"]
    assert [(x["label"], x["record"]["number"]) for x in links] == [("has problem", problem)]

    made = run(client, agent, problem, "record_known_error", root_cause="add-in",
               workaround=WORKAROUND)
    assert made.json["state"] == "known_error"


def test_linking_refuses_what_is_not_an_incident(client, agent):
    problem = open_problem(client, agent)["number"]
    other = open_problem(client, agent, title="Another")["number"]
    ticket = open_ticket(client, agent)["number"]
    cases = [({"incident": other}, 422, "incident"), ({"incident": "TCK9999999"}, 422, "target"),
             ({}, 422, "incident"), ({"incident": ticket, "extra": 1}, 422, "extra"),
             ({"incident": 42}, 422, "incident")]
    for body, status, field in cases:
        response = client.post(f"/api/v1/problems/{problem}/incidents", json=body,
                               headers=agent)
        assert response.status_code == status, (body, response.json)
        assert field in response.json["error"]["fields"], (body, response.json)
    assert link(client, agent, problem, ticket).status_code == 201
    assert link(client, agent, problem, ticket).status_code == 409
    assert link(client, agent, "PRB0099999", ticket).status_code == 404
    not_json = client.post(f"/api/v1/problems/{problem}/incidents", data="x", headers=agent)
    assert not_json.status_code in (415, 422)


def test_resolving_a_problem_comments_on_its_open_linked_incidents(app, client, agent, pat):
    problem = known_error(client, agent)["number"]
    reported = open_ticket(client, pat, title="Outlook closes")["number"]
    done = open_ticket(client, agent, title="Outlook crash, solved")["number"]
    unrelated = open_ticket(client, agent, title="Printer jam")["number"]
    for number in (reported, done):
        assert link(client, agent, problem, number).status_code == 201
    client.post(f"/api/v1/tickets/{done}/transitions", headers=agent, json={"name": "cancel"})

    resolved = run(client, agent, problem, "resolve", resolution="Add-in 2.4 deployed.")
    assert resolved.status_code == 200, resolved.json

    comments = client.get(f"/api/v1/tickets/{reported}/comments", headers=pat).json["items"]
    assert len(comments) == 1
    assert f"problem {problem}" in comments[0]["body"]
    assert "Add-in 2.4 deployed." in comments[0]["body"]
    itsm_state = app.extensions["itsm"]
    with itsm_state.Session() as session:
        def entries(number):
            return session.execute(
                select(JournalEntry.kind, JournalEntry.public, JournalEntry.actor_id)
                .join(Record, Record.id == JournalEntry.record_id)
                .where(Record.number == number, JournalEntry.kind == "commented")).all()

        assert entries(reported) == [("commented", True, None)]  # by the system, public
        assert entries(done) == [] and entries(unrelated) == []
        events = session.scalars(select(Event.name).join(Record, Record.id == Event.record_id)
                                 .where(Record.number == reported)).all()
        assert "record.commented" in events  # the requester hears of it via the outbox


# -- known error database and suggestions ------------------------------------------------------


def test_known_error_database_lists_and_searches_workarounds(client, agent):
    known = known_error(client, agent)["number"]
    open_problem(client, agent, title="Printer queue stalls")  # not a known error yet

    everything = client.get("/api/v1/known-errors", headers=agent).json["items"]
    assert [(k["number"], k["workaround"]) for k in everything] == [(known, WORKAROUND)]
    assert everything[0]["url"] == f"/records/problems/{known}"
    for q, found in [("outlook", [known]), ("web", [known]), ("delegated", [known]),
                     ("printer", []), ("outlook printer", []), ("outlook web", [known]),
                     ("%", [known]),
                     ('"; DROP TABLE problem; --', [])]:
        items = client.get("/api/v1/known-errors", query_string={"q": q},
                           headers=agent).json["items"]
        assert [k["number"] for k in items] == found, q
    fixed_at_once = open_problem(client, agent, title="Outlook add-in typo")["number"]
    run(client, agent, fixed_at_once, "investigate")
    assert run(client, agent, fixed_at_once, "resolve", resolution="typo fixed") \
        .status_code == 200
    listed = client.get("/api/v1/known-errors?q=outlook", headers=agent).json["items"]
    assert [k["number"] for k in listed] == [known]  # no workaround was ever documented
    bad = client.get("/api/v1/known-errors?limit=0", headers=agent)
    assert bad.status_code == 422 and "limit" in bad.json["error"]["fields"]


def test_new_ticket_suggests_the_matching_known_error_with_its_workaround(client, agent):
    known = known_error(client, agent)["number"]
    open_problem(client, agent, title="Outlook slow to start")  # not a known error: left out

    created = open_ticket(client, agent, title="Outlook crashes when I open a calendar")
    assert [(s["number"], s["kind"], s["summary"], s["url"])
            for s in created["suggestions"]] == [
        (known, "Known error", WORKAROUND, f"/records/problems/{known}")]
    unrelated = open_ticket(client, agent, title="Badge reader broken")
    assert unrelated["suggestions"] == []


def test_requesters_get_no_workarounds_by_default(client, agent, pat):
    known_error(client, agent)
    created = open_ticket(client, pat, title="Outlook crashes on my calendar")
    assert created["suggestions"] == []


@pytest.mark.parametrize("problem_settings", [{"public_workarounds": True}])
def test_public_workarounds_reach_requesters_of_the_same_agency_only(client, make_token):
    agent = make_token("agent@example.org", role="agent")
    pat = make_token("pat@dot.example.org", role="requester", agency="DOT")
    sam = make_token("sam@doh.example.org", role="requester", agency="DOH")
    shared = known_error(client, agent, title="Outlook crashes on calendars")["number"]
    dot_only = known_error(client, agent, title="Outlook crashes for DOT calendars",
                           agency="DOT")["number"]

    for_pat = open_ticket(client, pat, title="Outlook crashes, calendar")["suggestions"]
    assert sorted(s["number"] for s in for_pat) == [shared, dot_only]
    assert {s["url"] for s in for_pat} == {""}  # requesters cannot open problems
    assert {s["summary"] for s in for_pat} == {WORKAROUND}
    for_sam = open_ticket(client, sam, title="Outlook crashes, calendar")["suggestions"]
    assert [s["number"] for s in for_sam] == [shared]


# -- proactive identification --------------------------------------------------------------------


def _tickets(client, headers, category, count):
    return [open_ticket(client, headers, title=f"{category} trouble {i}",
                        category=category)["number"] for i in range(count)]


def test_trends_list_categories_with_many_recent_incidents(app, client, agent):
    network = _tickets(client, agent, "network", 3)
    _tickets(client, agent, "hardware", 2)
    old = _tickets(client, agent, "hardware", 1)[0]
    with app.extensions["itsm"].Session() as session:  # one incident from long ago
        session.execute(update(Record).where(Record.number == old)
                        .values(created_at=utcnow() - timedelta(days=40)))
        session.commit()

    report = client.get("/api/v1/problems/trends?days=30&min=2", headers=agent).json
    assert (report["incident_type"], report["days"], report["min"]) == ("ticket", 30, 2)
    assert report["fields"] == ["category"]  # tickets have no affected_service
    assert [(t["field"], t["value"], t["count"], t["problems"]) for t in report["items"]] == [
        ("category", "network", 3, []), ("category", "hardware", 2, [])]
    longer = client.get("/api/v1/problems/trends?days=60&min=3", headers=agent).json
    assert [(t["value"], t["count"]) for t in longer["items"]] == [
        ("hardware", 3), ("network", 3)]

    # An open problem linked to one of those incidents covers the value.
    problem = open_problem(client, agent, title="Network flaps", category="")["number"]
    link(client, agent, problem, network[0])
    same_category = open_problem(client, agent, title="Old disks", category="hardware")
    default = client.get("/api/v1/problems/trends", headers=agent).json  # 30 days, min 3
    assert [(t["value"], t["problems"]) for t in default["items"]] == [
        ("network", [problem])]
    again = client.get("/api/v1/problems/trends?min=2", headers=agent).json
    assert [(t["value"], t["problems"]) for t in again["items"]] == [
        ("network", [problem]), ("hardware", [same_category["number"]])]

    run(client, agent, problem, "investigate")
    run(client, agent, problem, "resolve", resolution="firmware updated")
    after = client.get("/api/v1/problems/trends", headers=agent).json  # incidents go on
    assert [(t["value"], t["problems"]) for t in after["items"]] == [("network", [])]


def test_trends_refuse_bad_periods_and_requesters(client, agent, pat):
    for query in ("days=0", "days=abc", "min=-1", "days=99999", "min=1.5"):
        response = client.get(f"/api/v1/problems/trends?{query}", headers=agent)
        assert response.status_code == 422, query
        assert set(response.json["error"]["fields"]) <= {"days", "min"}
    assert client.get("/api/v1/problems/trends", headers=pat).status_code == 403


def test_trends_cli_prints_a_table_and_json(client, agent, runner):
    _tickets(client, agent, "network", 3)
    table = runner.invoke(["problem", "trends", "--days", "30", "--min", "3"])
    assert table.exit_code == 0, table.output
    assert "network" in table.output and "none" in table.output
    as_json = runner.invoke(["problem", "trends", "--days", "30", "--min", "3", "--json"])
    assert as_json.exit_code == 0, as_json.output
    items = json.loads(as_json.output)["items"]
    assert [(t["field"], t["value"], t["count"]) for t in items] == [("category", "network", 3)]
    nothing = runner.invoke(["problem", "trends", "--min", "4"])
    assert nothing.exit_code == 0 and "no value reaches 4" in nothing.output
    bad = runner.invoke(["problem", "trends", "--days", "soon"])
    assert bad.exit_code != 0
    assert bad.output.strip().splitlines() == ["Error: days: a whole number from 1 to 3650"]


def test_known_errors_cli_lists_workarounds(client, agent, runner):
    number = known_error(client, agent)["number"]
    result = runner.invoke(["problem", "known-errors", "outlook"])
    assert result.exit_code == 0, result.output
    assert number in result.output and WORKAROUND in result.output
    none = runner.invoke(["problem", "known-errors", "printer", "--json"])
    assert json.loads(none.output) == {"items": []}


@pytest.mark.parametrize("problem_settings", [{"incident_type": "incident"}])
def test_without_the_incident_type_trends_say_what_to_enable(client, make_token, runner):
    agent = make_token("agent@example.org", role="agent")
    response = client.get("/api/v1/problems/trends", headers=agent)
    assert response.status_code == 404
    assert "'incident'" in response.json["error"]["message"]
    result = runner.invoke(["problem", "trends"])
    assert result.exit_code != 0 and "'incident'" in result.output
    problem = open_problem(client, agent)["number"]
    refused = link(client, agent, problem, "INC0000001")
    assert refused.status_code == 422 and "incident" in refused.json["error"]["fields"]


# -- API document, pages, plugin lifecycle, schema, demo ---------------------------------------


def test_openapi_document_lists_the_problem_routes(client, agent):
    paths = client.get("/api/v1/openapi.json", headers=agent).json["paths"]
    assert {"/api/v1/problems", "/api/v1/problems/{number}/incidents",
            "/api/v1/problems/trends", "/api/v1/known-errors"} <= set(paths)
    assert set(paths["/api/v1/problems/{number}/incidents"]) == {"get", "post"}
    params = {p["name"] for p in paths["/api/v1/problems/trends"]["get"]["parameters"]}
    assert params == {"days", "min"}


def test_console_pages_serve_agents_and_refuse_requesters(app, client, agent, pat):
    known = known_error(client, agent)["number"]
    _tickets(client, agent, "network", 3)
    sign_in(client)
    home = client.get("/home").text
    assert 'href="/problems/known-errors"' in home and 'href="/problems/trends"' in home
    page = client.get("/problems/known-errors?q=outlook")
    assert page.status_code == 200 and known in page.text and "Outlook on the web" in page.text
    assert known not in client.get("/problems/known-errors?q=printer").text
    record_page = client.get(f"/records/problems/{known}")
    assert record_page.status_code == 200 and "Outlook on the web" in record_page.text
    trends = client.get("/problems/trends?days=30&min=3")
    assert trends.status_code == 200 and "network" in trends.text
    assert "Open a problem" in trends.text
    assert client.get("/problems/trends?days=x").status_code == 400

    other = app.test_client()
    sign_in(other, "pat@dot.example.org")
    assert "/problems/known-errors" not in other.get("/home").text
    assert other.get("/problems/known-errors").status_code == 403
    assert other.get("/problems/trends").status_code == 403


def test_agent_opens_a_problem_from_a_trend_with_its_incidents_linked(client, agent):
    network = _tickets(client, agent, "network", 3)
    sign_in(client)
    with client.session_transaction() as state:
        token = state["csrf"]
    response = client.post("/problems/trends/open", data={
        "field": "category", "value": "network", "days": "30", "csrf_token": token})
    assert response.status_code == 302
    number = response.headers["Location"].rsplit("/", 1)[-1]
    problem = client.get(f"/api/v1/problems/{number}", headers=agent).json
    assert problem["category"] == "network"
    linked = client.get(f"/api/v1/problems/{number}/incidents", headers=agent).json
    assert [i["number"] for i in linked["items"]] == network
    trends = client.get("/api/v1/problems/trends", headers=agent).json["items"]
    assert trends[0]["problems"] == [number]
    refused = client.post("/problems/trends/open", data={
        "field": "title", "value": "x", "days": "30", "csrf_token": token})
    assert refused.status_code == 302  # back to the trends page, with the reason
    assert "not a trend field" in client.get(refused.headers["Location"]).text
    assert client.post("/problems/trends/open", data={"field": "category"}).status_code == 400


def test_disabling_problem_alone_leaves_tickets_working(client, agent, runner):
    known_error(client, agent)
    result = runner.invoke(["plugins", "disable", "problem"])
    assert result.exit_code == 0, result.output
    created = open_ticket(client, agent, title="Outlook crashes on a calendar")
    assert created["suggestions"] == []
    assert client.get("/api/v1/problems", headers=agent).status_code == 404
    assert client.get("/api/v1/known-errors", headers=agent).status_code == 404
    assert client.get("/api/v1/problems/trends", headers=agent).status_code == 404
    assert "problem" not in runner.invoke(["--help"]).output.split("Commands:")[-1]
    assert runner.invoke(["plugins", "enable", "problem"]).exit_code == 0
    again = open_ticket(client, agent, title="Outlook crashes on a calendar")
    assert [s["kind"] for s in again["suggestions"]] == ["Known error"]


def test_migration_creates_exactly_what_the_model_describes(app, runner):
    assert schema_drift(app.extensions["itsm"].engine, ["problem"]) == []
    assert "problem: problem_0002" in runner.invoke(["db", "current"]).output.splitlines()
    check = runner.invoke(["plugins", "check"])
    assert check.exit_code == 0, check.output


def test_uninstall_with_purge_drops_the_problem_table(app, client, agent, runner):
    problem = known_error(client, agent)["number"]
    ticket = open_ticket(client, agent)["number"]
    assert link(client, agent, problem, ticket).status_code == 201
    result = runner.invoke(["plugins", "uninstall", "problem", "--purge", "--yes"])
    assert result.exit_code == 0, result.output
    assert not inspect(app.extensions["itsm"].engine).has_table("problem")
    assert client.post("/api/v1/tickets", json={"title": "still fine"},
                       headers=agent).status_code == 201
    assert client.get(f"/api/v1/tickets/{ticket}/links", headers=agent).json["items"] == []



def test_demo_data_has_a_known_error_linked_to_matching_incidents(app, client, agent, runner):
    vpn = open_ticket(client, agent, title="VPN tunnel lost again")["number"]
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output
    errors = client.get("/api/v1/known-errors", headers=agent).json["items"]
    assert len(errors) == 1 and errors[0]["workaround"]
    problems = client.get("/api/v1/problems?limit=10", headers=agent).json["items"]
    assert len(problems) == 3
    vpn_problem = next(p for p in problems if "VPN" in p["title"])
    linked = client.get(f"/api/v1/problems/{vpn_problem['number']}/incidents",
                        headers=agent).json["items"]
    assert [i["number"] for i in linked] == [vpn]
    assert runner.invoke(["demo"]).exit_code == 0  # again: nothing doubled
    assert len(client.get("/api/v1/problems", headers=agent).json["items"]) == 3


def test_problem_plugin_imports_no_other_plugin():
    package = Path(itsm.plugins.problem.__file__).parent
    for path in package.rglob("*.py"):
        named = set(re.findall(r"itsm\.plugins\.(\w+)", path.read_text()))
        assert named <= {"problem"}, (path, named)
