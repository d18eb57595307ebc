"""Service levels in a real headless browser: an admin sets a business calendar with
Maine's public holidays (reviewed before they apply) and its targets, and a new
incident's due time skips the holidays.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` package.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import pytest
from browsing import expect
from sqlalchemy import select

import itsm.plugins.incident as incident_plugin
from itsm.core.models import Record
from itsm.core.pagekit import when
from itsm.core.service_levels import calendars_for
from itsm.core.sla import TICK, SlaClock

PASSWORD = "correct horse battery"
# 60 working days of 9 hours: crosses at least one Maine public holiday whenever it runs.
LONG = 60 * 9 * 60


@pytest.fixture
def itsm_plugins():
    return [incident_plugin]


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844},
                                      {"width": 1280, "height": 900}], ids=["phone", "desktop"])
def test_admin_sets_a_maine_calendar_and_a_new_incident_skips_its_holidays(
        app, live_server, browser, make_token, tmp_path, viewport):
    make_token("boss@example.org", role="admin", password=PASSWORD)
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(15_000)
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(live_server + "/login")
    page.get_by_label("E-mail address").fill("boss@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    def fits(name: str) -> None:
        assert not [m for m in messages if "Content Security Policy" in m]
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"] + 1, f"{name} scrolls sideways"
        shot = tmp_path / f"{name}-{viewport['width']}.png"
        page.screenshot(path=str(shot), full_page=True)
        shutil.copyfile(shot, f"/tmp/itsm-{name}-{viewport['width']}.png")

    year = date.today().year
    page.goto(live_server + "/admin/")
    page.get_by_role("link", name="Business calendars").first.click()
    page.get_by_role("link", name="New calendar").click()
    page.get_by_label("Name").fill("maine")
    page.get_by_label("Time zone").fill("America/New_York")
    page.get_by_label("Country").select_option(label="United States")
    page.get_by_label("State or region").fill("Maine")
    page.get_by_label("Years").fill(f"{year}-{year + 1}")
    page.get_by_role("button", name="Preview public holidays").click()
    expect(page.get_by_role("status")).to_contain_text("public holiday(s) of United States, "
                                                       "Maine")
    expect(page.get_by_label("Mon 20 Apr 2026 — Patriots' Day")
           if year == 2026 else page.locator(".holiday-review")).to_be_visible()
    expect(page.locator(".holiday-review")).to_contain_text("Patriots' Day")
    fits("sla-holiday-review")
    page.get_by_role("button", name="Save calendar").click()
    expect(page.get_by_role("status").first).to_contain_text("saved as version 1")
    expect(page.get_by_role("note")).to_contain_text("apply to new clocks")

    page.get_by_role("link", name="SLA targets").first.click()
    page.get_by_label("Business calendar the clocks run on").select_option(
        label="maine (America/New_York)")
    for priority in range(1, 6):
        page.get_by_label(f"Resolution, priority {priority}, minutes").fill(str(LONG))
    page.get_by_role("button", name="Save targets").click()
    expect(page.get_by_role("status").first).to_contain_text("apply to new clocks")
    fits("sla-targets")

    page.goto(live_server + "/records/incidents/new")
    page.get_by_label("Title").fill("VPN drops every hour")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("VPN drops every hour")

    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        record = session.scalar(select(Record).where(Record.title == "VPN drops every hour"))
        clock = session.scalar(select(SlaClock).where(SlaClock.record_id == record.id,
                                                      SlaClock.metric == "resolution"))
        maine = calendars_for(itsm, session)["maine@1"]
    assert clock.calendar == "maine@1" and clock.target_minutes == LONG
    end = maine.add(clock.started_at, timedelta(minutes=LONG))
    plain = type(maine)(name="no holidays", timezone=maine.timezone, weekly=maine.weekly)
    # The end of a working day or, the same working time, the start of the next one.
    assert end <= clock.breach_due_at - TICK < maine.add(end, timedelta(minutes=1))
    due = clock.breach_due_at
    assert due > plain.add(clock.started_at, timedelta(minutes=LONG))
    skipped = [d for d in maine.holidays if clock.started_at.date() < d < due.date()
               and d.weekday() < 5]
    assert skipped, "no holiday between the start and the due time"
    with app.app_context():  # times are written in the reader's (here the install's) zone
        due_text = when(due)
    expect(page.locator("body")).to_contain_text(due_text)
    fits("sla-incident")
    assert datetime.now(UTC) < due
