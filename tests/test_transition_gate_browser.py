"""The transition gate in a real headless browser: the readiness dashboard, a transition
page with exactly what is missing, and the service manager accepting responsibility.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` package.
"""

from __future__ import annotations

import pytest
from browsing import expect

import itsm.plugins.transition_gate as gate_plugin

PASSWORD = "correct horse battery"
SM = "sm@it.example"


@pytest.fixture
def itsm_plugins():
    return [gate_plugin]


def test_service_manager_accepts_on_the_transition_page(client, live_server, browser,
                                                        make_token):
    pm = make_token("pm@it.example", password=PASSWORD)
    make_token(SM, password=PASSWORD)
    number = client.post("/api/v1/transitions", headers=pm, json={
        "title": "Video conferencing goes live", "project": "Workplace 2027",
        "service": "Video conferencing", "project_manager": "pm@it.example",
        "service_manager": SM, "go_live_date": "2030-01-15"}).json["number"]

    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/transitions")
    page.get_by_label("E-mail address").fill(SM)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + "/transitions")
    expect(page.get_by_role("heading", level=1)).to_contain_text("readiness")
    page.get_by_role("link", name=number).click()
    expect(page.locator(".missing")).to_contain_text("has not accepted responsibility")
    page.get_by_role("button", name="I accept responsibility for this service").click()
    expect(page.locator(".flash-success")).to_contain_text("You accepted responsibility")
    expect(page.locator(".missing")).not_to_contain_text("has not accepted responsibility")
