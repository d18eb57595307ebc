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


def test_transition_page_with_a_long_evidence_link_fits_a_phone(client, live_server, browser,
                                                               make_token):
    """A submitted deliverable's link is one long word: it wraps instead of pushing the
    page sideways at 390 px (the demo's transitions scrolled to 469 px)."""
    pm = make_token("pm@it.example", password=PASSWORD)
    make_token(SM, password=PASSWORD)
    number = client.post("/api/v1/transitions", headers=pm, json={
        "title": "Video conferencing goes live", "project": "Workplace 2027",
        "service": "Video conferencing", "project_manager": "pm@it.example",
        "service_manager": SM, "go_live_date": "2030-01-15"}).json["number"]
    items = client.get(f"/api/v1/transitions/{number}/overview", headers=pm).json["checklist"]
    sent = client.post(f"/api/v1/transitions/{number}/deliverables/{items[0]['id']}/submit",
                       headers=pm, json={"evidence_kind": "link", "evidence":
                                         "https://wiki.example.org/" + "runbook-" * 8})
    assert sent.status_code == 200, sent.json

    page = browser.new_page(viewport={"width": 390, "height": 800})
    page.set_default_timeout(15_000)
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill(SM)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + f"/transitions/{number}")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    # each stacked cell says what it is: no empty label column beside the values
    unlabelled = page.evaluate("""Array.from(document.querySelectorAll(
        '#checklist td:not(.empty), #roles td')).filter(td => !td.dataset.label).length""")
    assert unlabelled == 0
