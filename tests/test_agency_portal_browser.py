"""An agency's day in its agreement, in Chromium, on the demo install: DOT's designated
contact signs in to the portal, proposes an amendment to DOT's agreement, reads DOT's
compliance and DOT's issued statement — and never DOH's; the requester's incident page
says its priority in words and when a response and a resolution are expected. axe-core
checks every page, at 1280 and 390 px, and a screenshot of each goes to the test's tmp
path (``screenshots/``).

Needs Debian's Chromium at /usr/bin/chromium, ``playwright`` and axe-core
(``npm install --prefix tests/browser``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from accessibility import assert_no_serious_violations, axe_context
from browsing import expect

import itsm.plugins.billing as billing_plugin
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.mou as mou_plugin
import itsm.plugins.relationship as relationship_plugin
from itsm.core.demo import DEMO_PASSWORD
from itsm.core.expectations import PRIORITY_WORDS
from itsm.core.models import utcnow

PAT = "pat@dot.demo.invalid"  # DOT's first requester: the demo's billing contact
SAM = "sam@doh.demo.invalid"
WIDTHS = (1280, 390)


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, catalog_plugin, mou_plugin, billing_plugin, relationship_plugin]


@pytest.fixture
def agencies(app, runner, make_token):
    """The demo, DOT's and DOH's contacts designated, last month's statements issued for
    both, and an incident Pat reported."""
    assert runner.invoke(["demo"]).exit_code == 0
    admin = make_token("boss@it.example", role="admin")
    pat = make_token(PAT)
    api = app.test_client()
    for email, agency in ((PAT, "DOT"), (SAM, "DOH")):
        made = api.post("/api/v1/mou/delegates", headers=admin,
                        json={"agency": agency, "email": email})
        assert made.status_code in (200, 201), made.json
    period = f"{utcnow().replace(day=1) - timedelta(days=1):%Y-%m}"
    numbers = {}
    for agency in ("DOT", "DOH"):
        statement = api.post("/api/v1/billing/statements", headers=admin,
                             json={"agency": agency, "period": period})
        assert statement.status_code == 201, statement.json
        for step in ("review", "issue"):
            moved = api.post(f"/api/v1/billing/statements/{statement.json['id']}/{step}",
                             headers=admin)
            assert moved.status_code == 200, moved.json
        numbers[agency] = statement.json["number"]
    incident = api.post("/api/v1/incidents", headers=pat, json={
        "title": "Traffic cameras offline", "description": "All cameras on Route 1.",
        "urgency": 2, "impact": 2})
    assert incident.status_code == 201, incident.json
    return {"statements": numbers, "incident": incident.json["number"],
            "priority": incident.json["priority"]}


class Portal:
    """A signed-in person's tab; every page is checked by axe and shot at each width."""

    def __init__(self, browser, base: str, email: str, shots) -> None:
        self.base, self.shots = base, shots
        self.context = axe_context(browser, viewport={"width": WIDTHS[0], "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.page.goto(base + "/login")
        self.page.get_by_label("E-mail address").fill(email)
        self.page.get_by_label("Password").fill(DEMO_PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", level=1)).to_be_visible()

    def check(self, name: str) -> None:
        """axe and a screenshot at every width, without sideways scrolling."""
        page = self.page
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            assert_no_serious_violations(page)
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= width, f"{page.url} scrolls sideways at {width} px ({wide} px)"
            page.screenshot(path=str(self.shots / f"{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def test_an_agency_contact_takes_part_and_a_requester_sees_what_to_expect(
        app, live_server, browser, agencies, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    pat = Portal(browser, live_server, PAT, shots)
    page = pat.page

    # The agreement: propose an amendment.
    page.get_by_role("link", name="Our agreement").first.click()
    expect(page.get_by_role("heading", name="Our agreement", level=1)).to_be_visible()
    pat.check("our-agreement")
    page.get_by_role("link", name="Comment or propose").first.click()
    expect(page.get_by_role("heading", name="Propose an amendment")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).not_to_contain_text("DOH")
    page.get_by_label("Section", exact=True).last.select_option(index=4)
    page.get_by_label("In one sentence").fill("Open the desk at 7 am for road crews")
    page.get_by_label("The new text of the section").fill(
        "The service desk answers from 7 am to 6 pm on working days.")
    page.get_by_role("button", name="Send the proposal").click()
    expect(page.get_by_text("Your proposal is sent")).to_be_visible()
    proposals = page.get_by_role("table").filter(has_text="Open the desk at 7 am")
    expect(proposals).to_contain_text("Open the desk at 7 am for road crews")
    section = page.get_by_label("Section", exact=True).last.locator("option").nth(4)
    expect(proposals).to_contain_text(section.inner_text())  # by its title, not its key
    pat.check("proposal-sent")

    # Their own compliance, no other agency to choose.
    page.goto(live_server + "/mou/my")
    page.get_by_role("link", name="Our compliance").click()
    expect(page.locator("main")).to_contain_text("DOT")
    expect(page.locator("main")).not_to_contain_text("DOH")
    pat.check("compliance")

    # Their issued statement, and not DOH's.
    page.get_by_role("link", name="Statements").first.click()
    dot, doh = agencies["statements"]["DOT"], agencies["statements"]["DOH"]
    expect(page.locator("main")).to_contain_text(dot)
    expect(page.locator("main")).not_to_contain_text(doh)
    pat.check("statements")
    page.get_by_role("link", name=dot).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(dot)
    expect(page.locator("main")).to_contain_text("Issued")
    pat.check("statement")
    doh_id = int(doh.rsplit("-", 1)[1])
    refused = page.goto(f"{live_server}/billing/statements/{doh_id}")
    assert refused.status in (403, 404)

    # The requester's incident: the priority in words and the expected times.
    page.goto(f"{live_server}/portal/incidents/{agencies['incident']}")
    what = page.get_by_label("What to expect")
    words = PRIORITY_WORDS[agencies["priority"]]  # impact 2 x urgency 2 in the matrix
    expect(what).to_contain_text(f"Priority: {words} — we aim to respond within")
    expect(what).to_contain_text("First response")
    expect(what).to_contain_text("Resolution")
    expect(what.locator("dd").first).to_contain_text("expected by")
    pat.check("incident")
    pat.context.close()

    # DOH's contact, at the same time, sees DOH's statement and none of DOT's.
    sam = Portal(browser, live_server, SAM, shots)
    sam.page.goto(live_server + "/billing/statements")
    expect(sam.page.locator("main")).to_contain_text(doh)
    expect(sam.page.locator("main")).not_to_contain_text(dot)
    sam.context.close()
