"""The admin area in Chromium: axe-core finds no serious or critical problem on the admin
home, users, groups, plugins, service levels and a plugin's own admin page (the change
plugin's CAB rules), at 1280 and 390 px."""

from __future__ import annotations

import pytest
import sample_plugin
from accessibility import assert_no_serious_violations, axe_context
from browsing import expect

import itsm.plugins.change as change_plugin

PASSWORD = "correct horse battery"
PAGES = {"home": "/admin/", "users": "/admin/users", "groups": "/admin/groups",
         "plugins": "/admin/plugins", "service-levels": "/admin/service-levels",
         "cab-rules": "/admin/change/cab-rules"}


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, change_plugin]


@pytest.mark.parametrize("width", (1280, 390))
def test_admin_pages_have_no_serious_accessibility_problems(app, live_server, browser,
                                                            make_token, runner, tmp_path,
                                                            width):
    make_token("root@example.org", role="admin", password=PASSWORD)
    make_token("omar@example.org", role="agent")
    assert runner.invoke(["groups", "add", "Network"]).exit_code == 0
    context = axe_context(browser, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill("root@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    for name, path in PAGES.items():
        answer = page.goto(live_server + path)
        assert answer.status == 200, f"{path}: {answer.status}"
        assert_no_serious_violations(page)
        page.screenshot(path=str(tmp_path / f"admin-{name}-{width}.png"), full_page=True)
    context.close()
