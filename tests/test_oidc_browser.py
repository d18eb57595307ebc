"""OpenID Connect in a real browser (Debian's Chromium) against oidc-provider with two
clients, one per agency: the provider is chosen by the e-mail address typed on the
sign-in page, people land on the console as their role allows, and signing out of itsm
signs them out of the provider too. Screenshots at 1280 and 390 px go to tmp_path."""

from __future__ import annotations

import json
import re

import pytest
import sample_plugin
from accessibility import assert_no_serious_violations, axe_context
from browsing import expect
from test_oidc import running_provider, two_providers

import itsm.plugins.oidc as oidc_plugin
from itsm.core.demo import ensure_agency, ensure_group


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, oidc_plugin]


@pytest.fixture
def site(app, live_server, tmp_path):
    """itsm on a live port, and the test provider whose clients come back to it."""
    itsm = app.extensions["itsm"]
    with app.app_context(), itsm.Session() as session:
        ensure_agency(session, "DMV", "Motor Vehicles")
        ensure_agency(session, "TAX", "Revenue")
        ensure_group(session, "DMV desk")
        session.commit()
    with running_provider(tmp_path, live_server) as issuer:
        itsm.settings.update(two_providers(issuer))
        itsm.settings._plugins.clear()  # settings are read once per plugin
        yield live_server


def sign_in(page, site: str, email: str, login: str, *, asked: bool = True) -> None:
    """Type the work address on itsm's sign-in page, then the provider's forms."""
    page.goto(site + "/login")
    page.get_by_label("Work e-mail address").fill(email)
    page.get_by_role("button", name="Continue with your organization's account").click()
    if asked:  # no provider session yet: its login form, then its consent
        page.locator("input[name=login]").fill(login)
        page.locator("input[name=password]").fill("any password")
        page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome")


def me(page, site: str) -> dict:
    answer = page.request.get(site + "/api/v1/me")
    return json.loads(answer.text()) if answer.ok else {"status": answer.status}


def sign_out(page) -> None:
    """itsm's sign-out button, then the provider's "Yes, sign me out"."""
    button = page.locator(".site-header").get_by_role("button", name="Sign out")
    if not button.is_visible():  # at phone widths it is behind the menu
        page.get_by_text("Menu", exact=True).first.click()
    button.click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("You have signed out.")


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_two_agencies_sign_in_by_domain_and_out_of_the_provider_too(site, browser,
                                                                     tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(site + "/login")
    page.screenshot(path=str(tmp_path / "sign-in-1280.png"), full_page=True)

    # The revenue agency's requester: sent to the revenue client, lands as a requester.
    sign_in(page, site, "tom@tax.example.org", "tom")
    assert me(page, site) == {"email": "tom@tax.example.org", "name": "Tom Hart",
                              "role": "requester", "agency": "TAX", "groups": []}
    # A requester's home is the portal: no staff queue is offered.
    expect(page.get_by_role("heading", name="Welcome, Tom Hart")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("My open"))).to_have_count(0)
    page.screenshot(path=str(tmp_path / "requester-home-1280.png"), full_page=True)
    sign_out(page)
    page.screenshot(path=str(tmp_path / "signed-out-1280.png"), full_page=True)
    assert me(page, site) == {"status": 401}

    # The motor vehicles agency's agent, on a phone: the provider asks for the login
    # again (its session ended with itsm's), and the agent lands on the console.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(site + "/login")
    assert no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "sign-in-390.png"), full_page=True)
    sign_in(page, site, "ann@dmv.example.org", "ann")
    assert me(page, site) == {"email": "ann@dmv.example.org", "name": "Ann Lee",
                              "role": "agent", "agency": "DMV", "groups": ["DMV desk"]}
    expect(page.get_by_role("link", name=re.compile("My open")).first).to_be_visible()
    assert no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / "agent-home-390.png"), full_page=True)
    sign_out(page)
    assert me(page, site) == {"status": 401}

    # An address of no configured agency is refused on the sign-in page itself.
    page.goto(site + "/login")
    page.get_by_label("Work e-mail address").fill("someone@elsewhere.example")
    page.get_by_role("button", name="Continue with your organization's account").click()
    expect(page.get_by_role("alert").first).to_contain_text(
        "no identity provider signs in addresses of elsewhere.example")
    page.screenshot(path=str(tmp_path / "refused-390.png"), full_page=True)
    print(f"screenshots in {tmp_path}")


def test_the_admin_page_of_the_providers_fits_a_phone(app, site, browser, tmp_path):
    from itsm.core import auth

    with app.app_context(), app.extensions["itsm"].Session() as session:
        auth.create_user(session, "root@example.org", role="admin",
                         password="local admin words")
        session.commit()
    page = axe_context(browser, viewport={"width": 390, "height": 844}).new_page()
    page.set_default_timeout(15_000)
    page.goto(site + "/login")
    page.get_by_label("E-mail address", exact=True).fill("root@example.org")
    page.get_by_label("Password").fill("local admin words")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.goto(site + "/admin/sign-in/oidc/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Identity providers (OIDC)")
    assert_no_serious_violations(page)
    page.get_by_label("Provider (required)").first.select_option("tax")
    page.get_by_label("Maps to a (required)").select_option("agency")
    page.get_by_label("Value of the groups claim (required)").fill("tax-staff")
    page.get_by_label("Value (required)", exact=True).fill("NOPE")
    page.get_by_role("button", name="Add the rule").click()
    expect(page.locator(".field-errors").first).to_contain_text("There is no agency")
    expect(page.locator("#f-match")).to_have_value("tax-staff")
    assert no_sideways_scroll(page)
    page.locator("#t-provider").select_option("dmv")
    page.get_by_label("A person's e-mail address").fill("dan@dmv.example.org")
    page.get_by_label("Their groups claim").fill("dmv-staff")
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.get_by_role("list", name="Test result")).to_contain_text(
        "Mapping: role requester, groups none, agency DMV")
    assert no_sideways_scroll(page)
    assert_no_serious_violations(page)
    page.screenshot(path=str(tmp_path / "admin-oidc-390.png"), full_page=True)
    print(f"screenshots in {tmp_path}")
