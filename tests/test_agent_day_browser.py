"""An agent's day in Chromium, as issue 25 tells it: sign in, open "My groups'
unassigned", sort by SLA due, take two incidents in bulk, open one, reply, put it on hold
waiting for the customer; the requester answers from the portal; the incident is back in
the agent's queue marked "Updated by customer" and the bell counts it; the agent resolves
and the requester confirms. axe-core checks every page on the way; screenshots at 1280 and
390 px go to the test's tmp path.

Needs Debian's Chromium at /usr/bin/chromium, ``playwright`` and axe-core
(``npm install --prefix tests/browser``).
"""

from __future__ import annotations

import pytest
from accessibility import assert_no_serious_violations, axe_context
from browsing import expect
from sqlalchemy import select

import itsm.plugins.incident as incident_plugin
from itsm.core import auth
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.models import GroupMember, Record

PASSWORD = "correct horse battery"
AGENT, PAT = "alex@it.example", "pat@dot.example"


@pytest.fixture
def itsm_plugins():
    return [incident_plugin]


@pytest.fixture
def people(itsm):
    with itsm.Session() as session:
        ensure_agency(session, "DOT", "Department of Transport")
        desk = ensure_group(session, "Service Desk")
        auth.create_user(session, PAT, role="requester", agency="DOT", password=PASSWORD,
                         name="Pat Morgan")
        alex = auth.create_user(session, AGENT, role="agent", password=PASSWORD,
                                name="Alex Kim")
        session.flush()
        session.add(GroupMember(group_id=desk.id, user_id=alex.id))
        session.commit()
    return itsm


class Walk:
    """One signed-in person's tab: every page visited is checked by axe and shot."""

    def __init__(self, browser, base: str, email: str, shots, width: int = 1280):
        self.base, self.shots, self.width = base, shots, width
        self.context = axe_context(browser, viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.page.goto(base + "/login")
        self.page.get_by_label("E-mail address").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", level=1)).to_be_visible()

    def check(self, name: str) -> None:
        """axe on the page as it is now, no sideways scroll, and a screenshot."""
        page = self.page
        assert_no_serious_violations(page)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= self.width, f"{page.url} scrolls sideways ({wide} px)"
        page.screenshot(path=str(self.shots / f"{name}-{self.width}.png"), full_page=True)


def deliver(app) -> None:
    itsm = app.extensions["itsm"]
    with app.app_context():
        itsm.outbox.fan_out(limit=10_000)
        itsm.outbox.deliver_due(10_000, only=["inbox"])


def test_an_agents_day(app, live_server, browser, people, make_token, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    pat = make_token(PAT)
    lead = make_token("lead@it.example", role="admin")
    api = app.test_client()
    numbers = {}
    for title, urgency in (("Laptop will not start", 1), ("Printer out of toner", 3),
                           ("Monitor flickers", 2)):
        created = api.post("/api/v1/incidents", headers=pat, json={
            "title": title, "description": "Since this morning.", "urgency": urgency,
            "impact": urgency})
        assert created.status_code == 201, created.json
        numbers[title] = created.json["number"]
        routed = api.patch(f"/api/v1/incidents/{numbers[title]}", headers=lead,
                           json={"group": "Service Desk"})
        assert routed.status_code == 200, routed.json
    laptop = numbers["Laptop will not start"]

    agent = Walk(browser, live_server, AGENT, shots)
    page = agent.page
    agent.check("dashboard")
    page.goto(live_server + "/records/incidents")
    page.get_by_role("navigation", name="Views").get_by_role(
        "link", name="My groups' unassigned").click()
    expect(page.locator("#queue-total")).to_contain_text("3 records")
    sla = page.get_by_role("columnheader", name="SLA due")
    sla.get_by_role("link").click()
    if page.get_by_role("columnheader", name="SLA due").get_attribute("aria-sort") \
            != "ascending":
        page.get_by_role("columnheader", name="SLA due").get_by_role("link").click()
    expect(page.get_by_role("columnheader", name="SLA due")).to_have_attribute(
        "aria-sort", "ascending")
    agent.check("queue-unassigned")
    for title in ("Laptop will not start", "Monitor flickers"):
        page.get_by_label(f"Select {numbers[title]}").check()
    page.get_by_label("Action").select_option("assign")
    page.get_by_label("Assign to").fill("me")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.get_by_role("status")).to_contain_text("2 done")
    agent.check("bulk-result")
    page.get_by_role("link", name="Back to the queue").click()
    expect(page.locator("#queue-total")).to_contain_text("1 record")

    page.goto(f"{live_server}/records/incidents?view=my_open")
    page.get_by_role("link", name=laptop).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Laptop will not start")
    expect(page.locator(".record-facts")).to_contain_text("Alex Kim")
    page.get_by_role("button", name="Start work").click()
    expect(page.locator(".head-meta")).to_contain_text("In progress")
    page.get_by_label("Reply or work note").fill("Please hold the power button for 30 s.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".journal")).to_contain_text("Please hold the power button")
    page.locator("summary", has_text="Put on hold").click()
    page.get_by_label("Waiting for").select_option(label="The customer")
    page.get_by_label("Hold reason").fill("Did the power button help?")
    page.get_by_role("button", name="Put on hold", exact=True).click()
    expect(page.locator(".head-meta")).to_contain_text("On hold")
    agent.check("record-on-hold")

    requester = Walk(browser, live_server, PAT, shots)
    portal = requester.page
    portal.goto(f"{live_server}/portal/incidents/{laptop}")
    requester.check("portal-incident")
    portal.get_by_label("Write to the service desk").fill("It starts now, thank you.")
    portal.get_by_role("button", name="Send").click()
    expect(portal.get_by_text("It starts now, thank you.")).to_be_visible()
    deliver(app)

    # Back in the agent's queue, marked, and counted by the bell, before she opens it.
    page.goto(f"{live_server}/records/incidents?view=my_open")
    row = page.locator("table.queue tbody tr", has_text=laptop)
    expect(row).to_contain_text("Updated by customer")
    expect(page.locator("[data-bell-count]")).not_to_have_text("0")
    agent.check("queue-updated-by-customer")
    page.goto(live_server + "/notifications")
    expect(page.locator(".note.unread", has_text=laptop).first).to_be_visible()
    agent.check("notifications")

    page.goto(f"{live_server}/records/incidents/{laptop}")
    expect(page.locator(".head-meta")).to_contain_text("In progress")
    resolve = page.locator("details.transition", has_text="Resolve")
    resolve.locator("summary").click()
    code = resolve.locator("select").first
    code.select_option(index=1)
    resolve.locator("textarea").first.fill("Power drained; it starts again.")
    resolve.get_by_role("button", name="Resolve", exact=True).click()
    expect(page.locator(".head-meta")).to_contain_text("Resolved")
    agent.check("record-resolved")

    portal.goto(f"{live_server}/portal/incidents/{laptop}")
    requester.check("portal-resolved")
    portal.get_by_role("button", name="Confirm it is fixed").click()
    requester.check("portal-confirmed")
    itsm = app.extensions["itsm"]
    with itsm.Session() as session:
        assert session.scalar(select(Record.state).where(Record.number == laptop)) \
            == "closed"

    phone = Walk(browser, live_server, AGENT, shots, width=390)
    for name, path in (("queue", "/records/incidents?view=my_open"),
                       ("record", f"/records/incidents/{laptop}"),
                       ("notifications", "/notifications")):
        phone.page.goto(live_server + path)
        phone.check(name)
    for walk in (agent, requester, phone):
        walk.context.close()
