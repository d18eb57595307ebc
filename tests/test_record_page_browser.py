"""An agent's record page in a real headless browser: assign to herself, start, reply, put
the incident on hold waiting for the customer; the requester answers from the portal; the
incident is back in progress and marked; cancelling asks first. Screenshots at 1280 and
390 px are written to the test's tmp path.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` package.
"""

from __future__ import annotations

import pytest
from browsing import expect
from sqlalchemy import select

import itsm.plugins.incident as incident_plugin
from itsm.core import auth
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.models import GroupMember, Record, User

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
        alex.time_zone = "Europe/Berlin"
        session.flush()
        session.add(GroupMember(group_id=desk.id, user_id=alex.id))
        session.commit()
    return itsm


def sign_in(browser, live_server, email, width=1280):
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.set_default_timeout(15_000)
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    return page


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_an_agents_record_page_and_the_requesters_reply(app, live_server, browser, people,
                                                        make_token, tmp_path):
    pat = make_token(PAT)
    number = app.test_client().post("/api/v1/incidents", headers=pat, json={
        "title": "Laptop will not start", "description": "Black screen since this morning.",
        "category": "hardware", "subcategory": "laptop"}).json["number"]
    url = f"{live_server}/records/incidents/{number}"

    agent = sign_in(browser, live_server, AGENT)
    agent.goto(url)
    expect(agent.get_by_role("heading", level=1)).to_contain_text("Laptop will not start")
    facts = agent.locator(".record-facts")
    expect(facts).to_contain_text("Pat Morgan")
    expect(facts).to_contain_text("Department of Transport")
    expect(facts).to_contain_text("Nobody yet")
    agent.get_by_role("button", name="Assign to me").click()
    expect(agent.get_by_text("is now assigned to you")).to_be_visible()
    expect(facts).to_contain_text("Alex Kim")

    agent.get_by_role("button", name="Start work").click()
    expect(agent.locator(".head-meta")).to_contain_text("In progress")
    agent.get_by_label("Reply or work note").fill("Please hold the power button for 30 s.")
    agent.get_by_role("button", name="Send").click()
    expect(agent.locator(".journal")).to_contain_text("Please hold the power button")
    expect(agent.locator(".journal")).to_contain_text("Alex Kim")

    agent.locator("summary", has_text="Put on hold").click()
    agent.get_by_label("Waiting for").select_option(label="The customer")
    agent.get_by_label("Hold reason").fill("Did the power button help?")
    agent.get_by_role("button", name="Put on hold", exact=True).click()
    expect(agent.locator(".head-meta")).to_contain_text("On hold")
    agent.screenshot(path=str(tmp_path / "record-1280.png"), full_page=True)

    requester = sign_in(browser, live_server, PAT)
    requester.goto(f"{live_server}/portal/incidents/{number}")
    requester.get_by_label("Write to the service desk").fill("It starts now, but slowly.")
    requester.get_by_role("button", name="Send").click()
    expect(requester.get_by_text("It starts now, but slowly.")).to_be_visible()

    itsm = app.extensions["itsm"]
    with itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.number == number))
        assert record.state == "in_progress"
        assert record.customer_reply_at is not None  # "updated by customer" in the queue

    agent.goto(url)
    expect(agent.locator(".head-meta")).to_contain_text("In progress")
    expect(agent.locator(".head-meta")).to_contain_text("Updated by customer")
    expect(agent.locator(".journal")).to_contain_text("Pat Morgan")
    expect(agent.locator(".journal")).to_contain_text("Customer replied")
    expect(agent.locator(".journal time").first).to_contain_text("CET")
    with itsm.Session() as session:  # the assignee has seen it
        assert session.scalar(select(Record.customer_reply_at)
                              .where(Record.number == number)) is None

    # Cancelling is never the primary button and asks first.
    expect(agent.get_by_role("button", name="Cancel")).to_have_count(0)
    agent.get_by_role("link", name="Cancel…").click()
    expect(agent.get_by_role("heading", level=1)).to_have_text(f"Cancel {number}?")
    agent.get_by_role("link", name="No, go back").click()
    expect(agent.locator(".head-meta")).to_contain_text("In progress")

    phone = sign_in(browser, live_server, AGENT, width=390)
    phone.goto(url)
    expect(phone.get_by_role("heading", level=1)).to_contain_text("Laptop will not start")
    assert no_sideways_scroll(phone)
    phone.screenshot(path=str(tmp_path / "record-390.png"), full_page=True)
    phone.goto(f"{url}/edit")
    assert no_sideways_scroll(phone)
    phone.screenshot(path=str(tmp_path / "record-edit-390.png"), full_page=True)
    agent.goto(f"{url}/edit")
    agent.screenshot(path=str(tmp_path / "record-edit-1280.png"), full_page=True)
    with itsm.Session() as session:
        assert session.scalar(select(User.name).where(User.email == AGENT)) == "Alex Kim"
