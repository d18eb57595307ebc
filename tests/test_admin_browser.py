"""The admin area in a real headless browser: an admin adds a resolver group with two
members, adds a user and puts her in it, and disables and re-enables the change plugin;
at 1280 and 390 pixels wide, without sideways scrolling.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` package.
"""

from __future__ import annotations

import pytest
import sample_plugin
from browsing import expect

import itsm.plugins.change as change_plugin

PASSWORD = "correct horse battery"


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, change_plugin]


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def shoot(page, tmp_path, name: str) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shot = tmp_path / f"admin-{name}-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        wide = page.evaluate("""[...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 5).map(e => e.tagName + '.' + e.className)""")  # what is too wide
        assert no_sideways_scroll(page), f"{name} scrolls sideways at {width} px: {wide}"
        assert shot.stat().st_size > 0
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_admin_runs_groups_users_and_plugins_in_the_browser(app, live_server, browser,
                                                              make_token, tmp_path):
    make_token("root@example.org", role="admin", password=PASSWORD)
    for email in ("omar@example.org", "lena@example.org"):
        make_token(email, role="agent")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill("root@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + "/admin/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Administration")
    expect(page.get_by_role("heading", name="Health")).to_be_visible()
    shoot(page, tmp_path, "home")

    sidebar = page.get_by_role("navigation", name="Administration")
    sidebar.get_by_role("link", name="Groups").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Resolver groups")
    page.get_by_label("Name").fill("Field services")
    page.get_by_label("Mailbox").fill("field@example.org")
    page.get_by_role("button", name="Add the group").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Field services")
    for email in ("omar@example.org", "lena@example.org"):
        page.get_by_label("Person").select_option(email)
        page.get_by_role("button", name="Add to the group").click()
        expect(page.get_by_role("status").first).to_contain_text("Member added.")
    expect(page.get_by_role("heading", name="Members (2)")).to_be_visible()
    shoot(page, tmp_path, "group")

    sidebar.get_by_role("link", name="Users").click()
    page.get_by_role("link", name="Add a user").click()
    page.get_by_label("Display name").fill("Hana Lee")
    page.get_by_label("E-mail address").fill("hana@example.org")
    page.get_by_label("Role").select_option("agent")
    page.get_by_label("Resolver groups").select_option(["Field services"])
    page.get_by_role("button", name="Add the user").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hana Lee")
    expect(page.locator(".fields")).to_contain_text("Field services")
    shoot(page, tmp_path, "user")
    sidebar.get_by_role("link", name="Users").click()
    expect(page.locator(".admin-table")).to_contain_text("Hana Lee")
    shoot(page, tmp_path, "users")
    sidebar.get_by_role("link", name="Groups").click()
    page.get_by_role("link", name="Field services").click()
    expect(page.get_by_role("heading", name="Members (3)")).to_be_visible()

    sidebar.get_by_role("link", name="Plugins").click()
    row = page.locator("#plugin-change")
    expect(row).to_contain_text("Enabled")
    shoot(page, tmp_path, "plugins")
    page.get_by_role("link", name="Disable change").click()
    expect(page.get_by_role("heading", name="Preflight")).to_be_visible()
    shoot(page, tmp_path, "disable")
    page.get_by_role("button", name="Disable change").click()
    expect(page.get_by_role("status").first).to_contain_text("Disabled change")
    expect(row).to_contain_text("Disabled")
    page.get_by_role("link", name="Enable change").click()
    page.get_by_role("button", name="Enable change").click()
    expect(page.get_by_role("status").first).to_contain_text("Enabled change")
    expect(row).to_contain_text("Enabled")

    sidebar.get_by_role("link", name="Audit").click()
    for said in ("group.create", "user.create", "plugin.disable", "plugin.enable"):
        expect(page.locator(".admin-table")).to_contain_text(said)
    shoot(page, tmp_path, "audit")
