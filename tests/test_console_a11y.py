"""The console and the portal in Chromium, every built-in plugin and the demo data: axe-core
finds no serious or critical problem on the dashboard, the notification list, a queue, a
record and the portal's pages, at 1280 and at 390 px; at 390 px the menu folds behind its
button (without script too) and no page scrolls sideways; the bell and the shortcuts of
console.js work under the application's Content-Security-Policy.

Screenshots of each page at both widths are written to the test's temporary folder.
"""

from __future__ import annotations

import every_plugin
import pytest
from accessibility import assert_no_serious_violations, axe_context
from browsing import expect
from sqlalchemy import select

from itsm.core.demo import DEMO_PASSWORD
from itsm.core.models import Record

AGENT, REQUESTER = "agent@demo.invalid", "pat@dot.demo.invalid"
WIDTHS = (1280, 390)


@pytest.fixture
def itsm_plugins():
    return every_plugin.builtin_plugins()


@pytest.fixture
def demo(app, runner, make_token):
    """The demo install; two incidents assigned to the agent by a team lead, and one
    mention of the agent, delivered to the agent's inbox."""
    every_plugin.load_demo(runner)
    itsm = app.extensions["itsm"]
    lead = make_token("lead@it.example", role="admin")
    client = app.test_client()
    with app.app_context(), itsm.Session() as session:
        numbers = session.scalars(select(Record.number).where(Record.type == "incident")
                                  .order_by(Record.id).limit(2)).all()
    for number in numbers:
        answer = client.patch(f"/api/v1/incidents/{number}", json={"assignee": AGENT},
                              headers=lead)
        assert answer.status_code == 200, answer.json
    client.post(f"/api/v1/incidents/{numbers[0]}/comments", headers=lead,
                json={"body": f"@{AGENT} the user called again", "public": False})
    with app.app_context():
        itsm.outbox.fan_out(limit=10_000)
        itsm.outbox.deliver_due(10_000, only=["inbox"])
    return {"incidents": numbers}


def sign_in(page, base: str, email: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")


def check_page(page, url: str, shots, name: str, width: int) -> None:
    page.goto(url)
    assert_no_serious_violations(page)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{url} scrolls sideways at {width} px ({wide} px wide)"
    page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)


def test_staff_and_portal_pages_have_no_serious_accessibility_problems(
        app, live_server, browser, demo, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    number = demo["incidents"][0]
    staff_pages = {"dashboard": "/home", "notifications": "/notifications",
                   "queue": "/records/incidents", "record": f"/records/incidents/{number}"}
    portal_pages = {"portal-home": "/home", "my-incidents": "/portal/incidents",
                    "report": "/portal/incidents/new", "catalog": "/portal/catalog",
                    "my-requests": "/portal/requests"}
    for width in WIDTHS:
        for who, pages in ((AGENT, staff_pages), (REQUESTER, portal_pages)):
            context = axe_context(browser, viewport={"width": width, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)
            sign_in(page, live_server, who)
            for name, path in pages.items():
                check_page(page, live_server + path, shots, name, width)
            context.close()
    assert len(list(shots.iterdir())) == 2 * (len(staff_pages) + len(portal_pages))


def test_the_menu_folds_at_phone_width_and_opens_without_script(app, live_server, browser,
                                                               demo, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, live_server, AGENT)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_hidden()
    page.screenshot(path=str(tmp_path / "menu-closed-390.png"))
    page.get_by_text("Menu", exact=True).click()
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="Incidents", exact=True)).to_be_visible()
    page.screenshot(path=str(tmp_path / "menu-open-390.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


def test_console_js_runs_under_the_policy_bell_mark_read_and_shortcuts(
        app, live_server, browser, demo):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    refused = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    sign_in(page, live_server, AGENT)
    count = page.locator("[data-bell-count]")
    expect(count).to_have_text("3")
    page.keyboard.press("g")
    page.keyboard.press("n")
    expect(page.get_by_role("heading", level=1)).to_have_text("Notifications")
    first = page.locator(".note.unread").first
    first.get_by_role("button", name="Mark read").click()
    expect(page.locator(".note.unread")).to_have_count(2)
    expect(count).to_have_text("2")
    assert page.url.endswith("/notifications")  # marked in place, no reload
    page.get_by_role("button", name="Mark all read").click()
    expect(page.locator(".note.unread")).to_have_count(0)
    expect(count).to_have_text("0")
    page.keyboard.press("?")
    expect(page.get_by_role("dialog")).to_contain_text("g q")
    page.keyboard.press("Escape")
    page.keyboard.press("g")
    page.keyboard.press("q")
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Notifications")
    assert refused == []
    context.close()


def test_with_script_the_phone_menu_is_a_button_that_says_it_is_open(app, live_server,
                                                                     browser, demo):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, live_server, AGENT)
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Notifications")).to_be_visible()
    menu.click()
    expect(nav).to_be_hidden()
    context.close()
