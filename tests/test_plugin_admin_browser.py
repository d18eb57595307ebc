"""The catalog's administration in a real headless browser: an admin adds a service with a
two-question request form, and a requester finds it in the portal and requests it.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` package.
"""

from __future__ import annotations

import shutil

import pytest
from browsing import expect
from sqlalchemy import select

import itsm.adapters.email as email_adapter
import itsm.adapters.webhooks as webhooks_adapter
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.change as change_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.mou as mou_plugin
import itsm.plugins.transition_gate as transition_plugin
from itsm.plugins.catalog.models import ServiceRequest

PASSWORD = "correct horse battery"


@pytest.fixture
def itsm_plugins():
    return [catalog_plugin, incident_plugin, change_plugin, mou_plugin, transition_plugin,
            email_adapter, webhooks_adapter]


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844},
                                      {"width": 1280, "height": 900}], ids=["phone", "desktop"])
def test_admin_adds_a_service_with_a_form_and_a_requester_requests_it(
        app, live_server, browser, make_token, tmp_path, viewport):
    make_token("boss@example.org", role="admin", password=PASSWORD)
    make_token("pat@example.org", role="requester", password=PASSWORD)
    messages: list[str] = []

    def open_as(email: str):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda m: messages.append(m.text))
        page.goto(live_server + "/login")
        page.get_by_label("E-mail address").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        return page

    def fits(page, name: str) -> None:
        assert not [m for m in messages if "Content Security Policy" in m]
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"] + 1, f"{name} scrolls sideways"
        shot = tmp_path / f"{name}-{viewport['width']}.png"
        page.screenshot(path=str(shot), full_page=True)
        shutil.copyfile(shot, f"/tmp/itsm-{name}-{viewport['width']}.png")

    admin = open_as("boss@example.org")
    admin.goto(live_server + "/admin/")
    admin.get_by_role("link", name="Services and categories").first.click()
    admin.get_by_role("link", name="New service").click()
    admin.get_by_label("Web address name").fill("team-mailbox")
    admin.get_by_label("Name", exact=True).fill("Team mailbox")
    admin.get_by_label("Summary").fill("A mailbox the whole team reads and answers.")
    admin.get_by_label("Category").fill("Communication")
    admin.get_by_label("Status").select_option(label="Live")
    admin.get_by_label("Price").fill("six dollars")
    admin.get_by_role("button", name="Save service").click()
    expect(admin.get_by_role("alert")).to_contain_text("was not saved")
    expect(admin.get_by_label("Price")).to_have_value("six dollars")
    expect(admin.get_by_label("Summary")).to_have_value(
        "A mailbox the whole team reads and answers.")
    fits(admin, "catalog-admin-service-error")
    admin.get_by_label("Price").fill("6.00")
    admin.get_by_label("Per", exact=True).fill("per mailbox")
    admin.get_by_role("button", name="Save service").click()
    expect(admin.get_by_role("status").first).to_contain_text("Service Team mailbox saved")

    admin.get_by_role("link", name="New offering").click()
    admin.get_by_label("Code").fill("new-mailbox")
    admin.get_by_label("Name", exact=True).fill("Ask for a team mailbox")
    first = admin.locator("fieldset.builder-row").nth(0)
    first.get_by_label("Question", exact=True).fill("Mailbox name")
    first.get_by_label("Field name").fill("mailbox_name")
    first.get_by_label("An answer is required").check()
    admin.get_by_role("button", name="Add a question").click()
    second = admin.locator("fieldset.builder-row").nth(1)
    expect(admin.locator("fieldset.builder-row").nth(0).get_by_label(
        "Question", exact=True)).to_have_value("Mailbox name")
    second.get_by_label("Question", exact=True).fill("Size")
    second.get_by_label("Field name").fill("size")
    second.get_by_label("Kind of answer").select_option(label="One of a list")
    second.get_by_label("Choices").fill("Small\nLarge")
    admin.get_by_role("button", name="Save offering").click()
    expect(admin.get_by_role("status").first).to_contain_text("Offering Ask for a team "
                                                              "mailbox saved")
    fits(admin, "catalog-admin-offering")

    requester = open_as("pat@example.org")
    requester.goto(live_server + "/portal/catalog")
    requester.get_by_label("What do you need?").fill("team mailbox")
    requester.get_by_role("button", name="Search").click()
    requester.get_by_role("link", name="Team mailbox").click()
    expect(requester.locator(".facts")).to_contain_text("USD 6.00 per mailbox")
    requester.get_by_role("link", name="Request: Ask for a team mailbox").click()
    requester.get_by_label("Mailbox name").fill("finance-team")
    requester.get_by_label("Size").select_option("Large")
    requester.get_by_role("button", name="Send request").click()
    expect(requester.get_by_role("status").first).to_contain_text("your request REQ")
    fits(requester, "catalog-portal-request")

    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        request = session.scalar(select(ServiceRequest))
        assert request.answers == {"mailbox_name": "finance-team", "size": "Large"}


PAGES = ("/admin/service-levels", "/admin/service-levels/calendars",
         "/admin/service-levels/calendars/new", "/admin/catalog/",
         "/admin/catalog/services/new", "/admin/incident/", "/admin/change/cab-rules/",
         "/admin/change/cab-rules/new", "/admin/change/risk-questions/new",
         "/admin/change/freeze-windows/new", "/admin/change/templates/new",
         "/admin/mou/template", "/admin/transitions/templates/new", "/admin/webhooks/",
         "/admin/email/templates")


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844},
                                      {"width": 1280, "height": 900}], ids=["phone", "desktop"])
def test_every_plugin_admin_page_fits_the_screen(app, live_server, browser, make_token,
                                                 tmp_path, viewport):
    make_token("boss@example.org", role="admin", password=PASSWORD)
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(15_000)
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill("boss@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    wide = []
    for path in PAGES:
        response = page.goto(live_server + path)
        assert response.status == 200, path
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        if page.evaluate("document.documentElement.scrollWidth") > viewport["width"] + 1:
            wide.append(path)
        name = path.strip("/").replace("/", "-")
        page.screenshot(path=str(tmp_path / f"{name}-{viewport['width']}.png"), full_page=True)
    shutil.copytree(tmp_path, f"/tmp/itsm-admin-pages-{viewport['width']}", dirs_exist_ok=True)
    assert not wide, f"scrolls sideways: {wide}"
    assert not [m for m in messages if "Content Security Policy" in m]
