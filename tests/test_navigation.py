"""Navigation by role, every built-in plugin and the demo data: a requester's home is the
portal and offers no staff or API-shaped form; staff get a grouped menu with one entry per
process; admins also get administration; no menu holds an entry twice."""

from __future__ import annotations

import re
from html import unescape

import every_plugin
import pytest

from itsm.core.demo import DEMO_PASSWORD
from itsm.core.web import NavItem
from itsm.testing import make_plugin

AGENT, REQUESTER = "agent@demo.invalid", "pat@dot.demo.invalid"
ADMIN = "nav-admin@it.example"
LINK = re.compile(r'<a href="([^"]+)"[^>]*>([^<]+)</a>')
GROUP = re.compile(r'<span class="nav-title" id="nav-(\w+)">([^<]+)</span>')


@pytest.fixture
def itsm_plugins():
    return every_plugin.builtin_plugins()


@pytest.fixture
def demo(app, runner, make_token):
    every_plugin.load_demo(runner)
    make_token(ADMIN, role="admin", password=DEMO_PASSWORD)
    return app


def signed_in(app, email: str):
    web = app.test_client()
    token = every_plugin.csrf_of(web.get("/login").get_data(as_text=True))
    answer = web.post("/login", data={"email": email, "password": DEMO_PASSWORD,
                                      "csrf_token": token})
    assert answer.status_code == 302
    return web


def menu(html: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The menu's links ``(url, label)`` and its group titles."""
    nav = html[html.index('<nav class="main-nav"'):html.index("</nav>")]
    return ([(unescape(u), unescape(t).strip()) for u, t in LINK.findall(nav)],
            [title for _, title in GROUP.findall(nav)])


def no_twice(links: list[tuple[str, str]]) -> None:
    urls = [u.rstrip("/") for u, _ in links]
    labels = [t.casefold() for _, t in links]
    assert len(set(urls)) == len(urls), urls
    assert len(set(labels)) == len(labels), labels


def test_a_requesters_home_is_the_portal_without_staff_or_api_shaped_forms(demo):
    web = signed_in(demo, REQUESTER)
    home = web.get("/home").get_data(as_text=True)
    links, groups = menu(home)
    labels = [t for _, t in links]
    assert groups == []  # one plain list
    assert {"Home", "Service catalog", "My requests", "Report an incident", "My incidents",
            "Our agreement", "Knowledge"} <= set(labels)
    assert not [u for u, _ in links if u.startswith("/records/")]
    no_twice(links)
    main = home[home.index("<main"):]
    assert "/records/" not in main and "/new" not in main.replace("/portal/incidents/new", "")
    # Nothing one click away asks for an id the way the API does.
    for url, _ in LINK.findall(main) + links:
        page = web.get(unescape(url)).get_data(as_text=True)
        assert "GET /api/v1" not in page and "Offering id" not in page, url


def test_staff_get_a_grouped_menu_with_one_entry_per_process(demo):
    web = signed_in(demo, AGENT)
    links, groups = menu(web.get("/home").get_data(as_text=True))
    assert groups == ["My work", "Processes", "Reports", "Self-service"]
    no_twice(links)
    labels = dict((t, u) for u, t in links)
    assert labels["Home"] == "/home" and labels["Notifications"] == "/notifications"
    # A plugin's own page stands for its process: the knowledge search for articles, the
    # readiness dashboard for transitions, the agreements page for MOUs.
    assert labels["Knowledge"] == "/knowledge" and "Articles" not in labels
    assert labels["Transitions"] == "/transitions" and labels["Agreements"] == "/mou/"
    assert "Mous" not in labels
    for process in ("Incidents", "Changes", "Problems", "Requests"):
        assert labels[process].startswith("/records/"), process
    assert "Administration" not in labels
    assert labels["Satisfaction"] == "/satisfaction"  # the core's report, under Reports
    nav = web.get("/home").get_data(as_text=True)
    reports = nav[nav.index('id="nav-reports"'):]
    assert 'href="/satisfaction"' in reports[:reports.index("</ul>")]


def test_the_satisfaction_report_is_in_the_menu_of_those_who_may_read_it(demo):
    links, _ = menu(signed_in(demo, REQUESTER).get("/home").get_data(as_text=True))
    assert "/satisfaction" not in [u for u, _ in links]  # satisfaction.read is staff's
    assert signed_in(demo, REQUESTER).get("/satisfaction").status_code == 403
    web = signed_in(demo, AGENT)
    assert web.get("/satisfaction").status_code == 200


def test_admins_also_get_administration(demo):
    web = signed_in(demo, ADMIN)
    links, groups = menu(web.get("/home").get_data(as_text=True))
    assert groups[-2:] == ["Administration", "Self-service"]
    assert ("/admin", "Administration") in links
    no_twice(links)


def test_the_current_page_is_marked_and_shortcuts_are_named(demo):
    web = signed_in(demo, AGENT)
    html = web.get("/notifications").get_data(as_text=True)
    assert '<a href="/notifications" data-go="n" aria-current="page">' in html
    assert 'data-go="h"' in html and 'data-go="q"' in html


# -- plugins' entries ------------------------------------------------------------------------


def test_a_plugins_entries_are_grouped_a_failing_plugin_left_out(with_plugin):
    failing = []

    def itsm_navigation(actor):
        if failing:
            raise RuntimeError("plugin bug")
        return [NavItem("Tickets twice", "/records/tickets", 5, group="process"),
                NavItem("Board", "/board", 5, group="reports"),
                NavItem("Board", "/board-again", 6, group="reports")]

    application = with_plugin(make_plugin("navboard", itsm_navigation=itsm_navigation))
    from itsm.core import auth

    itsm = application.extensions["itsm"]
    with application.app_context(), itsm.Session() as session:
        auth.create_user(session, "agent@example.org", role="agent", password=DEMO_PASSWORD)
        session.commit()
    web = signed_in(application, "agent@example.org")
    links, groups = menu(web.get("/home").get_data(as_text=True))
    assert groups == ["My work", "Processes", "Reports"]
    assert [u for u, _ in links].count("/records/tickets") == 1
    assert [t for _, t in links].count("Board") == 1
    failing.append(True)
    page = web.get("/home")
    links, groups = menu(page.get_data(as_text=True))
    assert page.status_code == 200 and "Board" not in [t for _, t in links]
    assert ("/records/tickets", "Tickets") in links


def test_an_entry_shown_or_noted_by_what_the_database_holds(with_plugin):
    from sqlalchemy import event, select

    from itsm.core import auth
    from itsm.core.models import Agency, User

    def itsm_navigation(actor):
        mine = select(User.id).where(User.id == actor.id, User.agency_id.is_not(None))
        return [NavItem("Our agency", "/agency", 20, group="work", shown_when=mine.limit(1)),
                NavItem("Agencies", "/agencies", 21, group="work", note="new",
                        note_when=select(Agency.id).where(Agency.code == "NEW").limit(1))]

    application = with_plugin(make_plugin("navfacts", itsm_navigation=itsm_navigation))
    itsm = application.extensions["itsm"]
    with application.app_context(), itsm.Session() as session:
        auth.create_user(session, "agent@example.org", role="agent", password=DEMO_PASSWORD)
        session.commit()
    web = signed_in(application, "agent@example.org")
    links, _ = menu(web.get("/home").get_data(as_text=True))
    assert ("/agencies", "Agencies") in links and "/agency" not in [u for u, _ in links]

    with application.app_context(), itsm.Session() as session:
        session.add(Agency(code="NEW", name="New agency"))
        session.flush()
        user = session.scalar(select(User).where(User.email == "agent@example.org"))
        user.agency_id = session.scalar(select(Agency.id).where(Agency.code == "NEW"))
        session.commit()
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(itsm.engine, "before_cursor_execute", seen)
    try:
        links, _ = menu(web.get("/home").get_data(as_text=True))
    finally:
        event.remove(itsm.engine, "before_cursor_execute", seen)
    assert ("/agency", "Our agency") in links and ("/agencies", "Agencies (new)") in links
    # Both entries' facts and the bell's count are read in one statement.
    assert sum("agency" in s and "inbox_notification" in s for s in statements) == 1
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT COUNT")
                and "inbox_notification" in s]
