"""The web console, driven like a browser through Flask's test client."""

from __future__ import annotations

import io
import re

import pytest
import sample_plugin
from flask import Blueprint
from sqlalchemy import insert, select

from itsm.core.models import Link, Record
from itsm.core.web import NavItem
from itsm.testing import make_plugin

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _refuse_cancelling_priority_one(record, transition):
    if transition.name == "cancel" and record.priority == 1:
        return "a priority 1 ticket cannot be cancelled before its review"
    return None


guard_plugin = make_plugin("console_guard", itsm_transition_guard=_refuse_cancelling_priority_one)


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, guard_plugin]


@pytest.fixture
def people(make_token):
    """Bearer headers of an agent and of requesters in agencies AAA and BBB (all with
    PASSWORD, so they can also sign in to the console)."""
    return {
        "agent": make_token("agent@example.org", role="agent", password=PASSWORD),
        "ann": make_token("ann@aaa.example.org", role="requester", agency="AAA",
                          password=PASSWORD),
        "bob": make_token("bob@bbb.example.org", role="requester", agency="BBB",
                          password=PASSWORD),
    }


def page(response) -> str:
    return response.get_data(as_text=True)


def form_token(client, path="/login") -> str:
    return TOKEN.search(page(client.get(path))).group(1)


def sign_in(client, email, password=PASSWORD, **extra):
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": form_token(client), **extra})


def post(client, path, data=None, **kwargs):
    """POST a console form with the session's CSRF token, as the page's form would."""
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


def new_ticket(client, headers, **fields) -> str:
    response = client.post("/api/v1/tickets", json={"title": "Printer jams", **fields},
                           headers=headers)
    assert response.status_code == 201, response.json
    return response.json["number"]


# -- signing in and out ---------------------------------------------------------------------


def test_root_leads_to_the_console_and_pages_need_a_sign_in(client):
    assert client.get("/").headers["Location"].endswith("/home")
    response = client.get("/records/tickets?q=printer")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_sign_in_with_the_right_password_starts_a_fresh_session(client, people):
    form_token(client)
    with client.session_transaction() as state:
        state["planted"] = "by an attacker"
        old_token = state["csrf"]
    response = sign_in(client, "Agent@Example.org", next="/records/tickets")
    assert response.status_code == 302
    assert response.headers["Location"] == "/records/tickets"
    with client.session_transaction() as state:
        assert "planted" not in state and state["csrf"] != old_token
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = page(client.get("/home"))
    assert "Signed in as" in home and "agent" in home


def test_sign_in_never_redirects_to_another_site(client, people):
    response = sign_in(client, "agent@example.org", next="//evil.example.com/")
    assert response.headers["Location"] == "/home"


def test_sign_in_with_a_wrong_password_says_so_on_the_page(client, people):
    response = sign_in(client, "agent@example.org", "wrong password")
    assert response.status_code == 401
    assert "Wrong e-mail address or password." in page(response)
    assert client.get("/home").status_code == 302


def test_sign_in_is_refused_after_five_failures_even_with_the_right_password(client, people):
    for _ in range(5):
        assert sign_in(client, "agent@example.org", "guess").status_code == 401
    response = sign_in(client, "agent@example.org", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in page(response)
    assert client.get("/home").status_code == 302


def test_a_form_without_its_csrf_token_is_refused(client, people):
    response = client.post("/login", data={"email": "agent@example.org", "password": PASSWORD})
    assert response.status_code == 400
    assert "could not be checked" in page(response)
    sign_in(client, "agent@example.org")
    number = new_ticket(client, people["agent"])
    for token in (None, "forged", "é"):
        data = {"body": "sneaky"} | ({"csrf_token": token} if token else {})
        refused = client.post(f"/records/tickets/{number}/comment", data=data)
        assert refused.status_code == 400 and "could not be checked" in page(refused)
    assert "sneaky" not in page(client.get(f"/records/tickets/{number}"))


def test_sign_out_happens_only_on_post(client, people):
    sign_in(client, "agent@example.org")
    confirm = client.get("/logout")
    assert confirm.status_code == 200 and "<button" in page(confirm)
    assert client.get("/home").status_code == 200
    response = post(client, "/logout")
    assert response.headers["Location"].endswith("/login")
    assert "You have signed out." in page(client.get("/login"))
    assert client.get("/home").status_code == 302


def test_password_change_checks_the_old_one_and_ends_other_sessions(app, client, people):
    other = app.test_client()
    sign_in(other, "agent@example.org")
    sign_in(client, "agent@example.org")
    assert 'for="current_password"' in page(client.get("/account/password"))
    wrong = post(client, "/account/password", {"current_password": "nope",
                                               "new_password": "new password 1",
                                               "confirm_password": "new password 1"})
    assert wrong.status_code == 422 and "Wrong password" in page(wrong)
    mismatch = post(client, "/account/password", {"current_password": PASSWORD,
                                                  "new_password": "new password 1",
                                                  "confirm_password": "new password 2"})
    assert "Does not match the new password" in page(mismatch)
    short = post(client, "/account/password", {"current_password": PASSWORD,
                                               "new_password": "short",
                                               "confirm_password": "short"})
    assert "Too short" in page(short)
    done = post(client, "/account/password", {"current_password": PASSWORD,
                                              "new_password": "new password 1",
                                              "confirm_password": "new password 1"})
    assert done.status_code == 302
    assert "Your password has been changed." in page(client.get("/home"))
    assert client.get("/home").status_code == 200  # this session goes on
    assert other.get("/home").status_code == 302  # the other one ended
    assert sign_in(app.test_client(), "agent@example.org", PASSWORD).status_code == 401
    assert sign_in(app.test_client(), "agent@example.org", "new password 1").status_code == 302


# -- navigation and plugin pages --------------------------------------------------------------


def _user(application, email, role="agent"):
    from itsm.core import auth

    itsm = application.extensions["itsm"]
    with application.app_context(), itsm.Session() as session:
        auth.create_user(session, email, role=role, password=PASSWORD)
        session.commit()


def test_itsm_navigation_entries_appear_in_the_menu(with_plugin):
    seen = []

    def itsm_navigation(actor):
        seen.append(actor.email)
        return [NavItem("Ticket trends", "/trends", 50, group="reports"),
                NavItem("Site visits", "/visits", 50)]

    application = with_plugin(make_plugin("navplug", itsm_navigation=itsm_navigation))
    _user(application, "agent@example.org")
    web = application.test_client()
    sign_in(web, "agent@example.org")
    html = page(web.get("/home"))
    nav = html[html.index('<nav class="main-nav"'):html.index("</nav>")]
    assert '<a href="/trends">Ticket trends</a>' in nav
    # In their groups: my work (Home, then an entry without a group), the processes (the
    # core's record types), then reports.
    assert nav.index(">Home<") < nav.index(">Site visits<") < nav.index(">Tickets<") \
        < nav.index(">Reports<") < nav.index(">Ticket trends<")
    assert seen and set(seen) == {"agent@example.org"}


def test_a_plugin_template_extends_the_generic_detail_page(with_plugin, tmp_path):
    folder = tmp_path / "plugin_templates"
    (folder / "records" / "ticket").mkdir(parents=True)
    (folder / "records" / "ticket" / "detail.html").write_text(
        '{% extends "records/detail.html" %}\n'
        "{% block sidebar %}<section><h2>Site visit</h2><p>Plan one for "
        "{{ record.number }}</p></section>{{ super() }}{% endblock %}\n")
    blueprint = Blueprint("sitevisit", __name__, template_folder=str(folder))
    application = with_plugin(make_plugin("sitevisit", itsm_blueprints=lambda: [blueprint]))
    _user(application, "agent@example.org")
    web = application.test_client()
    sign_in(web, "agent@example.org")
    created = post(web, "/records/tickets/new", {"title": "Door sticks"})
    html = page(web.get(created.headers["Location"]))
    assert "Site visit" in html and "Plan one for TCK" in html
    assert "Attachments" in html and "Door sticks" in html  # the generic page is kept


# -- record pages --------------------------------------------------------------------------


def test_requester_cannot_open_nor_list_another_agencys_record(client, people):
    own = new_ticket(client, people["ann"], title="Ann's monitor flickers")
    other = new_ticket(client, people["bob"], title="Bob's secret project")
    sign_in(client, "ann@aaa.example.org")
    listing = page(client.get("/records/tickets"))
    assert own in listing and "monitor flickers" in listing
    assert other not in listing and "secret project" not in listing
    refused = client.get(f"/records/tickets/{other}")
    assert refused.status_code == 404
    assert "Not found" in page(refused) and "secret" not in page(refused)
    assert refused.content_type.startswith("text/html")
    assert post(client, f"/records/tickets/{other}/comment",
                {"body": "hello?"}).status_code == 404
    assert client.get(f"/records/tickets/{own}").status_code == 200


def test_unknown_pages_are_readable_messages(client, people):
    sign_in(client, "agent@example.org")
    missing = client.get("/records/tickets/TCK9999999")
    assert missing.status_code == 404 and "No ticket TCK9999999" in page(missing)
    gone = client.get("/records/nothing")
    assert gone.status_code == 404 and "is its plugin enabled?" in page(gone)
    nowhere = client.get("/no/such/page")
    assert nowhere.status_code == 404 and "<h1>Not found</h1>" in page(nowhere)
    assert client.get("/api/v1/no/such/thing").json["error"]["code"] == "not_found"
    bad = client.get("/records/tickets?cursor=garbage")
    assert bad.status_code == 400 and "Cursor: not a cursor from this list" in page(bad)
    assert "Traceback" not in page(bad)


def test_agent_sees_the_list_with_filters_and_pages(client, people):
    for title in ("VPN drops", "Printer jams", "Laptop slow"):
        new_ticket(client, people["agent"], title=title, priority=2)
    sign_in(client, "agent@example.org")
    first = page(client.get("/records/tickets?limit=2"))
    assert "Laptop slow" in first and "Printer jams" in first and "VPN drops" not in first
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = page(client.get(next_url))
    assert "VPN drops" in second and "Laptop slow" not in second and "First page" in second
    found = page(client.get("/records/tickets?q=printer"))
    assert "Printer jams" in found and "VPN drops" not in found
    assert "No tickets match." in page(client.get("/records/tickets?priority=5"))
    assert "No tickets match." in page(client.get("/records/tickets?assignee=me"))
    assert "VPN drops" in page(client.get("/records/tickets?state=new&priority=2"))


def test_agent_creates_a_record_with_the_form(client, people):
    sign_in(client, "agent@example.org")
    form = page(client.get("/records/tickets/new"))
    assert '<label for="f-title">' in form and 'name="csrf_token"' in form
    assert '<select id="f-category" name="category"' in form
    assert '<option value="network"' in form
    assert 'name="assignee"' in form  # staff set the assignment
    refused = post(client, "/records/tickets/new", {"title": "", "priority": "9",
                                                    "category": "plumbing"})
    html = page(refused)
    assert refused.status_code == 422
    assert re.search(r'id="f-priority-error">\s*<li>Must be greater than or equal to 1',
                     html)
    assert 'id="f-category-error"' in html and 'id="f-title-error"' in html
    assert 'value="9"' in html  # what was typed is kept
    created = post(client, "/records/tickets/new", {"title": "Wi-Fi down on floor 3",
                                                    "priority": "2", "category": "network",
                                                    "description": "Since 9 am."})
    assert created.status_code == 302
    detail = page(client.get(created.headers["Location"]))
    assert "has been created." in detail and "Wi-Fi down on floor 3" in detail
    assert "Since 9 am." in detail and "network" in detail


def test_requester_form_has_no_staff_fields(client, people):
    sign_in(client, "ann@aaa.example.org")
    form = page(client.get("/records/tickets/new"))
    assert 'name="title"' in form and 'name="assignee"' not in form and 'name="group"' not in form
    created = post(client, "/records/tickets/new", {"title": "Need a new badge"})
    assert "has been created." in page(client.get(created.headers["Location"]))


def test_transitions_show_refusals_with_reasons_and_move_the_state(client, people):
    number = new_ticket(client, people["agent"], priority=1)
    sign_in(client, "agent@example.org")
    detail = page(client.get(f"/records/tickets/{number}"))
    cancel = detail[detail.index('aria-describedby="why-cancel"') - 40:]
    assert "disabled" in cancel[:60]
    assert "A priority 1 ticket cannot be cancelled before its review" in detail
    assert '<label for="t-resolve-resolution">' in detail  # resolve asks for its field
    assert f'action="/records/tickets/{number}/transition"' in detail
    forced = post(client, f"/records/tickets/{number}/transition", {"name": "cancel"})
    assert "cannot be cancelled before its review" in page(client.get(forced.headers["Location"]))
    missing = post(client, f"/records/tickets/{number}/transition", {"name": "resolve"})
    assert "resolution is required to resolve" in page(client.get(missing.headers["Location"]))
    started = post(client, f"/records/tickets/{number}/transition",
                   {"name": "start", "version": "1"})
    after = page(client.get(started.headers["Location"]))
    assert "the state is now In progress" in after
    assert '<span class="badge state-in_progress">In progress</span>' in after
    stale = post(client, f"/records/tickets/{number}/transition",
                 {"name": "hold", "hold_reason": "waiting", "version": "1"})
    assert "changed by someone else" in page(client.get(stale.headers["Location"]))
    resolved = post(client, f"/records/tickets/{number}/transition",
                    {"name": "resolve", "resolution": "Replaced the toner"})
    after = page(client.get(resolved.headers["Location"]))
    assert "Resolved" in after and "Replaced the toner" in after


def test_comments_and_work_notes(client, app, people):
    number = new_ticket(client, people["ann"])
    sign_in(client, "agent@example.org")
    form = page(client.get(f"/records/tickets/{number}"))
    assert 'value="work_note"' in form
    post(client, f"/records/tickets/{number}/comment", {"body": "We are on it.",
                                                        "visibility": "public"})
    post(client, f"/records/tickets/{number}/comment", {"body": "Toner batch is faulty.",
                                                        "visibility": "work_note"})
    staff_view = page(client.get(f"/records/tickets/{number}"))
    assert "We are on it." in staff_view and "Toner batch is faulty." in staff_view
    assert "IT staff only</span>" in staff_view

    ann = app.test_client()
    sign_in(ann, "ann@aaa.example.org")
    requester_view = page(ann.get(f"/records/tickets/{number}"))
    assert "We are on it." in requester_view and "Toner batch" not in requester_view
    assert 'value="work_note"' not in requester_view and 'name="visibility"' not in requester_view
    assert "Workflow" not in requester_view  # requesters do not move records
    assert f"{number}/edit" not in requester_view and 'name="target"' not in requester_view
    assert 'name="file"' in requester_view  # but they may attach files
    refused = post(ann, f"/records/tickets/{number}/comment", {"body": "sneak",
                                                               "visibility": "work_note"})
    assert "Work notes are for IT staff" in page(ann.get(refused.headers["Location"]))
    post(ann, f"/records/tickets/{number}/comment", {"body": "Thanks!"})
    assert "Thanks!" in page(ann.get(f"/records/tickets/{number}"))


def test_attachments_upload_and_download(client, people):
    number = new_ticket(client, people["agent"])
    sign_in(client, "agent@example.org")
    empty = post(client, f"/records/tickets/{number}/attachments", {},
                 content_type="multipart/form-data")
    assert "Choose a file to attach" in page(client.get(empty.headers["Location"]))
    done = post(client, f"/records/tickets/{number}/attachments",
                {"file": (io.BytesIO(b"error 0x42"), "screen.txt")},
                content_type="multipart/form-data")
    detail = page(client.get(done.headers["Location"]))
    assert "screen.txt has been attached." in detail
    href = re.search(r'href="(/api/v1/tickets/[^"]+/attachments/\d+)"', detail).group(1)
    download = client.get(href)  # the API accepts the console's session cookie
    assert download.status_code == 200 and download.data == b"error 0x42"


def test_links_show_records_of_a_disabled_process(client, app, people):
    number = new_ticket(client, people["agent"])
    other = new_ticket(client, people["agent"], title="Switch replaced")
    itsm = app.extensions["itsm"]
    with itsm.Session() as session:
        record_id = session.scalar(select(Record.id).where(Record.number == number))
        orphan = session.execute(insert(Record.__table__).values(
            type="retired_process", number="RET0000001", title="old", state="open",
            description="", version=1).returning(Record.__table__.c.id)).scalar_one()
        session.add(Link(source_id=record_id, target_id=orphan, kind="relates_to"))
        session.commit()
    sign_in(client, "agent@example.org")
    linked = post(client, f"/records/tickets/{number}/links", {"target": other.lower(),
                                                              "kind": "caused_by"})
    detail = page(client.get(linked.headers["Location"]))
    assert f"is now linked to {other}" in detail
    assert f'<a href="/records/tickets/{other}">{other}</a> Switch replaced' in detail
    assert "RET0000001 <em>(record of a disabled process)</em>" in detail


def test_edit_changes_only_what_was_changed(client, people):
    number = new_ticket(client, people["agent"], priority=3, description="first\nsecond")
    sign_in(client, "agent@example.org")
    form = page(client.get(f"/records/tickets/{number}/edit"))
    assert 'value="3"' in form
    saved = post(client, f"/records/tickets/{number}/edit",
                 {"title": "Printer jams", "priority": "1", "description": "first\r\nsecond",
                  "category": "general", "version": "1"})
    detail = page(client.get(saved.headers["Location"]))
    assert "has been saved." in detail
    assert re.search(r"Priority: <del>3 – Moderate</del> → <ins>1 – Critical</ins>", detail)
    assert "Description:" not in detail


def test_user_content_is_escaped(client, people):
    sign_in(client, "agent@example.org")
    attack = "<script>alert('x')</script>"
    created = post(client, "/records/tickets/new", {"title": attack, "description": attack})
    location = created.headers["Location"]
    post(client, location + "/comment", {"body": attack})
    for html in (page(client.get(location)), page(client.get("/records/tickets"))):
        assert "<script>" not in html
        assert "&lt;script&gt;" in html
    response = client.get(location)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
