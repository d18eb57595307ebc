"""An agent's queue in a real headless browser: open "My groups' unassigned", sort it by
SLA due, take two records in bulk; at 1280 and 390 px, with nothing scrolling sideways."""

from __future__ import annotations

import pytest
import sample_plugin
from browsing import expect

PASSWORD = "correct horse battery"
# The words of the queue's title cells that the browser split over two lines.
BROKEN_WORDS = """() => [...document.querySelectorAll('table.queue td.title')].flatMap(td => {
  const broken = [], walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.data.matchAll(/[^\\s-]+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      if (range.getClientRects().length > 1) broken.push(m[0]);
    }
  }
  return broken;
})"""


@pytest.fixture
def itsm_plugins():
    return [sample_plugin]


def test_agent_takes_two_unassigned_records_in_bulk(app, live_server, browser, make_token,
                                                    runner, tmp_path):
    headers = make_token("agent@example.org", role="agent", password=PASSWORD)
    assert runner.invoke(["groups", "add", "Network"]).exit_code == 0
    assert runner.invoke(["groups", "add-member", "Network",
                          "agent@example.org"]).exit_code == 0
    api = app.test_client()
    numbers = {}
    for title, priority in (("Switch down on floor 3", 1), ("Wi-Fi slow in the lobby", 4),
                            ("VPN drops every hour", 2),
                            ("Printer unreachable from accounting workstations", 3)):
        created = api.post("/api/v1/tickets?suggest=false", headers=headers, json={
            "title": title, "priority": priority, "group": "Network"})
        numbers[title] = created.json["number"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill("agent@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + "/records/tickets")
    views = page.get_by_role("navigation", name="Views")
    views.get_by_role("link", name="My groups' unassigned").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Tickets: My groups' unassigned")
    expect(page.locator("#queue-total")).to_contain_text("4 records")

    # Sort by SLA due, descending then ascending: the P1 record's target is the closest.
    page.get_by_role("columnheader", name="SLA due").get_by_role("link").click()
    page.get_by_role("columnheader", name="SLA due").get_by_role("link").click()
    expect(page.get_by_role("columnheader", name="SLA due")).to_have_attribute(
        "aria-sort", "ascending")
    first_row = page.locator("table.queue tbody tr").first
    expect(first_row).to_contain_text(numbers["Switch down on floor 3"])
    expect(first_row).to_have_class("p1")
    shot = tmp_path / "queue-1280.png"
    page.screenshot(path=str(shot), full_page=True)
    # Titles wrap between words, also where the table is tight ("Print" / "er" is not).
    for width in (1280, 700):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate(BROKEN_WORDS) == [], f"a title word breaks at {width} px"
    page.set_viewport_size({"width": 1280, "height": 900})

    # Rows are keyboard-reachable: each has a real link.
    link = page.get_by_role("link", name=numbers["VPN drops every hour"])
    link.focus()
    expect(link).to_be_focused()

    for title in ("Switch down on floor 3", "VPN drops every hour"):
        page.get_by_label(f"Select {numbers[title]}").check()
    page.get_by_label("Action").select_option("assign")
    page.get_by_label("Assign to").fill("me")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.get_by_role("status")).to_contain_text("2 done")
    page.get_by_role("link", name="Back to the queue").click()
    expect(page.locator("#queue-total")).to_contain_text("2 records")
    expect(page.locator("table.queue tbody")).to_contain_text(
        numbers["Wi-Fi slow in the lobby"])

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.set_default_timeout(15_000)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(live_server + "/records/tickets?view=my_open")
    expect(phone.locator("#queue-total")).to_contain_text("2 records")
    wide = phone.evaluate("document.documentElement.scrollWidth")
    assert wide <= 390, f"the queue scrolls sideways at 390 px ({wide} px wide)"
    phone.screenshot(path=str(tmp_path / "queue-390.png"), full_page=True)
    page.screenshot(path=str(tmp_path / "queue-after-bulk-1280.png"), full_page=True)
    assert (tmp_path / "queue-1280.png").stat().st_size > 0
