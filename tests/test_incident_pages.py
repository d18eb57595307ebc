"""The incident portal (report, my incidents, one incident) and the dashboard, as people
use them: signed in through the login form, posting forms with their CSRF token."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

import itsm.plugins.incident
from itsm.core import auth
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.search import Suggestion
from itsm.plugins.incident.models import Incident
from itsm.testing import make_plugin

PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _suggest(text, record, limit):
    if "vpn" in text.lower():
        return [Suggestion(number="KB0000007", title="Reconnecting the VPN after sleep",
                           kind="Knowledge article", summary="Restart the client.",
                           score=1.0, url="/kb/KB0000007")]
    return None


knowledge_stub = make_plugin("kb_stub", itsm_suggestions=_suggest)


@pytest.fixture
def itsm_plugins():
    return [itsm.plugins.incident, knowledge_stub]


@pytest.fixture
def people(app):
    """A requester of agency DOT, one of agency EPA, an agent; the resolver groups."""
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        for code in ("DOT", "EPA"):
            ensure_agency(session, code, f"Agency {code}")
        for name in ("Network", "Service Desk", "Applications"):
            ensure_group(session, name)
        for email, role, agency in (("pat@dot.example", "requester", "DOT"),
                                    ("sam@epa.example", "requester", "EPA"),
                                    ("alex@it.example", "agent", None)):
            auth.create_user(session, email, role=role, agency=agency, password=PASSWORD)
        session.commit()
    return state


def sign_in(client, email):
    token = TOKEN.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302


def post(client, path, data=None, **kwargs):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


def report(client, **fields) -> str:
    """Report through the portal form; return the new incident's number."""
    data = {"title": "VPN drops every hour", "description": "Since Monday.",
            "category": "network", "subcategory": "vpn", "impact": "2", "urgency": "2",
            "affected_service": "Remote access", **fields}
    response = post(client, "/portal/incidents/new", data)
    assert response.status_code == 302, response.text
    match = re.search(r"/portal/incidents/(INC\d+)\?new=1$", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


@pytest.fixture
def agent(make_token, people):
    return make_token("alex@it.example")


def test_requester_reports_an_incident_and_finds_it_in_my_incidents(client, app, people):
    sign_in(client, "pat@dot.example")
    form = client.get("/portal/incidents/new")
    assert form.status_code == 200
    assert 'name="csrf_token"' in form.text and "Only me" in form.text
    assert '<optgroup label="Network">' in form.text

    number = report(client)
    page = client.get(f"/portal/incidents/{number}?new=1")
    assert page.status_code == 200
    assert f"Thank you: your incident {number} has been reported." in page.text
    assert "Received: waiting for the service desk" in page.text
    assert "These articles may already help" in page.text
    assert "Reconnecting the VPN after sleep" in page.text

    with app.app_context(), people.Session() as session:
        incident = session.scalar(select(Incident).where(Incident.number == number))
        assert (incident.channel, incident.priority, incident.category) == ("portal", 3,
                                                                            "network")
        assert incident.affected_service == "Remote access"

    mine = client.get("/portal/incidents")
    assert mine.status_code == 200
    assert number in mine.text and "VPN drops every hour" in mine.text
    assert "Received: waiting for the service desk" in mine.text


def test_my_incidents_lists_only_my_own_newest_first(client, people):
    sign_in(client, "pat@dot.example")
    first = report(client, title="First trouble")
    second = report(client, title="Second trouble", category="", subcategory="")
    other = client.application.test_client()
    sign_in(other, "sam@epa.example")
    theirs = report(other, title="Someone else's trouble")
    text = client.get("/portal/incidents").text.split("<tbody>")[1]
    assert text.index(second) < text.index(first)
    assert theirs not in text


def test_report_form_shows_errors_next_to_fields_and_keeps_values(client, people):
    sign_in(client, "pat@dot.example")
    response = post(client, "/portal/incidents/new", {
        "title": "", "description": "It beeps loudly.", "category": "hardware",
        "subcategory": "vpn", "impact": "2", "urgency": "1"})
    assert response.status_code == 422
    page = response.text
    assert 'id="e-title"' in page and 'id="e-subcategory"' in page
    assert "It beeps loudly." in page
    assert re.search(r'id="urgency-1" name="urgency" value="1" checked', page)
    assert re.search(r'<option value="hardware" selected>', page)


def test_report_form_without_csrf_token_is_refused(client, people):
    sign_in(client, "pat@dot.example")
    response = client.post("/portal/incidents/new", data={"title": "sneaky"})
    assert response.status_code == 400


def test_requester_sees_public_comments_but_not_work_notes(client, agent, people):
    sign_in(client, "pat@dot.example")
    number = report(client, category="facilities", subcategory="power")
    assert client.post(f"/api/v1/incidents/{number}/comments", headers=agent,
                       json={"body": "We are on it.", "public": True}).status_code == 201
    assert client.post(f"/api/v1/incidents/{number}/comments", headers=agent,
                       json={"body": "Suspect the user's router.", "public": False}
                       ).status_code == 201
    response = post(client, f"/portal/incidents/{number}/comment",
                    {"body": "It happened again at 10:00."})
    assert response.status_code == 302
    page = client.get(f"/portal/incidents/{number}").text
    assert "We are on it." in page and "It happened again at 10:00." in page
    assert "Suspect the user" not in page


def test_requester_rates_and_confirms_after_the_agent_resolves(client, agent, app, people):
    sign_in(client, "pat@dot.example")
    number = report(client, category="facilities", subcategory="power")
    assert "Is it fixed?" not in client.get(f"/portal/incidents/{number}").text
    resolved = client.post(f"/api/v1/incidents/{number}/transitions", headers=agent, json={
        "name": "resolve", "fields": {"resolution_code": "solved",
                                      "resolution_notes": "Replaced the fuse."}})
    assert resolved.status_code == 200, resolved.json
    page = client.get(f"/portal/incidents/{number}").text
    assert "Solved: please confirm" in page and "Replaced the fuse." in page
    assert "Confirm it is fixed" in page and "It is not fixed" in page
    assert "How did we do?" in page

    assert post(client, f"/portal/incidents/{number}/rate", {"rating": "9"}).status_code == 302
    assert "Choose a rating from 1 to 5" in client.get(f"/portal/incidents/{number}").text
    rated = post(client, f"/portal/incidents/{number}/rate",
                 {"rating": "4", "comment": "Quick, thanks."})
    assert rated.status_code == 302
    confirmed = post(client, f"/portal/incidents/{number}/confirm")
    assert confirmed.status_code == 302
    page = client.get(f"/portal/incidents/{number}").text
    assert "Thank you for confirming" in page and ">Closed<" in page

    with app.app_context(), people.Session() as session:
        incident = session.scalar(select(Incident).where(Incident.number == number))
        assert (incident.state, incident.satisfaction) == ("closed", 4)
        assert incident.satisfaction_comment == "Quick, thanks."


def test_requester_reopens_when_it_is_not_fixed(client, agent, app, people):
    sign_in(client, "pat@dot.example")
    number = report(client, category="facilities", subcategory="power")
    client.post(f"/api/v1/incidents/{number}/transitions", headers=agent, json={
        "name": "resolve", "fields": {"resolution_code": "solved",
                                      "resolution_notes": "Replaced the fuse."}})
    response = post(client, f"/portal/incidents/{number}/reopen",
                    {"reason": "The lights went out again."})
    assert response.status_code == 302
    page = client.get(f"/portal/incidents/{number}").text
    assert "Being worked on" in page and "The lights went out again." in page
    with app.app_context(), people.Session() as session:
        incident = session.scalar(select(Incident).where(Incident.number == number))
        assert (incident.state, incident.reopen_count) == ("in_progress", 1)


def test_requester_cannot_see_other_agency_incident(client, people):
    sign_in(client, "pat@dot.example")
    number = report(client)
    other = client.application.test_client()
    sign_in(other, "sam@epa.example")
    assert other.get(f"/portal/incidents/{number}").status_code == 404
    assert post(other, f"/portal/incidents/{number}/comment",
                {"body": "hello"}).status_code == 404
    assert post(other, f"/portal/incidents/{number}/confirm").status_code == 404
    assert other.get("/portal/incidents/INC9999999").status_code == 404


def test_agent_finds_what_may_help_behind_a_link_on_the_record_page(client, people):
    sign_in(client, "pat@dot.example")
    number = report(client)
    staff = client.application.test_client()
    sign_in(staff, "alex@it.example")
    page = staff.get(f"/records/incidents/{number}")
    assert page.status_code == 200
    # The record page links to its suggestions instead of searching on every visit.
    assert "Reconnecting the VPN after sleep" not in page.text
    link = f"/records/incidents/{number}/suggestions"
    assert f'href="{link}"' in page.text and f'data-suggestions="{link}?fragment=1"' in page.text

    full = staff.get(link)  # without script: the list's own page, with the menu
    assert full.status_code == 200
    assert "Reconnecting the VPN after sleep" in full.text and 'href="/kb/KB0000007"' in full.text
    assert f"May help with {number}" in full.text
    fragment = staff.get(f"{link}?fragment=1")  # with script: only the list, put in place
    assert fragment.status_code == 200
    assert "Reconnecting the VPN after sleep" in fragment.text and "<nav" not in fragment.text

    other = client.application.test_client()  # another agency's requester sees nothing
    sign_in(other, "sam@epa.example")
    assert other.get(link).status_code in (403, 404)


def test_portal_pages_need_sign_in(client, people):
    response = client.get("/portal/incidents/new")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_agent_sees_the_dashboard_with_charts(client, people):
    sign_in(client, "pat@dot.example")
    report(client)
    client = client.application.test_client()
    sign_in(client, "alex@it.example")
    response = client.get("/incidents/dashboard?days=30")
    assert response.status_code == 200
    page = response.text
    assert page.count('<svg class="chart"') == 3 and page.count('role="img"') == 3
    assert "<title id=\"volume-svg-title\">" in page and page.count("<details") == 3
    assert 'class="bar opened"' in page and "Network" in page
    # The count tables name states, priorities and agencies as the rest of the console.
    assert '<th scope="row">Agency DOT</th>' in page
    assert re.search(r'<caption>By category</caption>\s*<tbody>\s*<tr><th scope="row">Network<',
                     page)
    assert re.search(r'<caption>By state</caption>\s*<tbody>\s*<tr><th scope="row">[A-Z][a-z ]+'
                     r'</th>', page)
    assert re.search(r'<th scope="row">P[1-5]</th>', page)
    assert " style=" not in page  # the Content-Security-Policy forbids inline styles
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    css = re.search(r'href="(/incidents/static/incident\.css)"', page).group(1)
    assert client.get(css).status_code == 200
    nav = re.search(r'<nav class="main-nav".*?</nav>', page, re.S).group(0)
    assert "Incident dashboard" in nav and "Report an incident" in nav


def test_dashboard_says_what_is_wrong_with_bad_input(client, people):
    sign_in(client, "alex@it.example")
    response = client.get("/incidents/dashboard?days=0&group=Nobody")
    assert response.status_code == 400
    assert "a whole number from 1 to 3650" in response.text
    assert "<svg" in response.text  # the default report is still shown


def test_requester_is_refused_the_dashboard_and_does_not_see_it_offered(client, people):
    sign_in(client, "pat@dot.example")
    response = client.get("/incidents/dashboard")
    assert response.status_code == 403
    home = client.get("/home").text
    nav = re.search(r'<nav class="main-nav".*?</nav>', home, re.S).group(0)
    assert "Incident dashboard" not in nav
    assert "Report an incident" in nav and "My incidents" in nav
