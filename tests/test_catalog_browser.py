"""The self-service portal in a real headless browser: find a service by search and by
category, send a request with a bad field, see the error, send it right, follow it.

Needs Debian's Chromium at /usr/bin/chromium and the ``playwright`` package.
"""

from __future__ import annotations

import shutil

import pytest
from browsing import expect

import itsm.plugins.catalog as catalog_plugin

PASSWORD = "correct horse battery"


@pytest.fixture
def itsm_plugins():
    return [catalog_plugin]


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844},
                                      {"width": 1280, "height": 900}], ids=["phone", "desktop"])
def test_requester_finds_and_requests_a_laptop_in_the_browser(app, runner, live_server, browser,
                                                               make_token, tmp_path, viewport):
    assert runner.invoke(["demo"]).exit_code == 0
    make_token("pat@dot.demo.invalid")  # the demo requester; password below
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        from sqlalchemy import select

        from itsm.core import auth
        from itsm.core.models import User

        user = session.scalar(select(User).where(User.email == "pat@dot.demo.invalid"))
        user.password_hash = auth.hash_password(PASSWORD)
        session.commit()

    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(15_000)
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(live_server + "/portal/catalog")
    page.get_by_label("E-mail address").fill("pat@dot.demo.invalid")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_server + "/portal/catalog")
    expect(page.get_by_role("heading", level=1)).to_have_text("Service catalog")

    page.get_by_label("What do you need?").fill("remote access")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="Remote access (VPN)")).to_be_visible()

    page.goto(live_server + "/portal/catalog")
    page.get_by_role("link", name="Devices").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Devices")
    page.get_by_role("link", name="Laptop", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Laptop")
    expect(page.locator(".facts")).to_contain_text("USD 38.00 per laptop")
    page.get_by_role("link", name="Request: Order a laptop").click()

    page.get_by_label("Model").select_option("Power user 16\"")
    page.get_by_label("Why is it needed?").fill("Two new analysts start in March.")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("alert")).to_contain_text("could not be sent yet")
    expect(page.locator("#e-quantity")).to_contain_text("This field is required")
    expect(page.get_by_label("Why is it needed?")).to_have_value(
        "Two new analysts start in March.")
    expect(page.get_by_label("Model")).to_have_value("Power user 16\"")

    page.get_by_label("How many").fill("2")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("status").first).to_contain_text("your request REQ")
    expect(page.locator("#status")).to_have_text("Waiting for approval")

    page.get_by_role("link", name="My requests").first.click()
    expect(page.locator("table.records")).to_contain_text("Order a laptop")
    assert not [m for m in messages if "Content Security Policy" in m]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"] + 1, "the page scrolls sideways"

    shot = tmp_path / "catalog.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, f"/tmp/itsm-catalog-{viewport['width']}.png")
