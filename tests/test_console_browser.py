"""The console in a real headless browser: sign in, open a ticket, move it, comment on it.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` package (its own
browser download is not used: ``playwright install`` is never needed).
"""

from __future__ import annotations

import shutil

from browsing import expect

PASSWORD = "correct horse battery"


def test_agent_moves_a_ticket_and_comments_in_the_browser(app, live_server, browser, make_token,
                                                         tmp_path):
    headers = make_token("agent@example.org", role="agent", password=PASSWORD)
    created = app.test_client().post("/api/v1/tickets", headers=headers, json={
        "title": "Printer on floor 2 jams", "priority": 3, "description": "Since Monday."})
    number = created.json["number"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(live_server + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("E-mail address").fill("agent@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    page.keyboard.press("Tab")  # keyboard users reach the skip link first
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tickets").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tickets")
    page.get_by_role("link", name=number).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Printer on floor 2 jams")

    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("the state is now In progress")
    expect(page.locator(".page-head .badge").first).to_have_text("In progress")

    page.get_by_label("Reply or work note").fill("New toner fitted; testing now.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Your comment has been added.")
    expect(page.locator(".journal")).to_contain_text("New toner fitted; testing now.")
    expect(page.locator(".journal")).to_contain_text("ran “Start”")

    shot = tmp_path / "itsm-console.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
    shutil.copyfile(shot, "/tmp/itsm-console.png")


def test_what_may_help_is_fetched_into_the_record_page(app, live_server, browser, make_token):
    headers = make_token("agent@example.org", role="agent", password=PASSWORD)
    number = app.test_client().post("/api/v1/tickets?suggest=false", headers=headers, json={
        "title": "Scanner on floor 3 offline"}).json["number"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill("agent@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    page.goto(f"{live_server}/records/tickets/{number}")
    # With script the list replaces its link in place (nothing here matches this ticket).
    helps = page.locator("[data-suggestions]")
    expect(helps).to_contain_text("No knowledge article or known error matches this record.")
    expect(helps.get_by_role("link")).to_have_count(0)
