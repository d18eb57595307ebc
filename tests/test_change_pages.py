"""The change console pages: calendar, approver queue with its forms, a change's page.
Used as a person would: signed in through the login form, posting with the CSRF token."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sample_plugin

import itsm.plugins.change
from itsm.core.models import utcnow

PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
MEDIUM = {"users_affected": "department", "complexity": "moderate", "tested": "partly",
          "backout": "minutes"}


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, itsm.plugins.change]


@pytest.fixture
def people(make_token, runner):
    made = {name: make_token(f"{name}@example.org", role="agent", password=PASSWORD)
            for name in ("olivia", "carl", "cara")}
    for name in ("carl", "cara"):
        runner.invoke(["groups", "add-member", "Change advisory board",
                       f"{name}@example.org"])
    return made


def sign_in(client, email):
    token = TOKEN.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302


def post(client, path, data=None, **kwargs):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


def signed_in(app, email):
    """A browser of its own, signed in as ``email``."""
    browser = app.test_client()
    sign_in(browser, email)
    return browser


def words(html):
    """The page's text with its line breaks and indents as single spaces."""
    return " ".join(html.split())


def change_in_cab(client, headers, start):
    number = client.post("/api/v1/changes", headers=headers, json={
        "title": "Upgrade the mail gateway", "services": ["E-mail"],
        "implementation_plan": "Upgrade.", "backout_plan": "Restore.",
        "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(hours=2)).isoformat()}).json["number"]
    for name, fields in (("submit", {}), ("assess", {"risk_answers": MEDIUM})):
        response = client.post(f"/api/v1/changes/{number}/transitions", headers=headers,
                               json={"name": name, "fields": fields})
        assert response.status_code == 200, response.json
    return number


def test_approver_approves_from_the_queue_page(client, people):
    start = (utcnow() + timedelta(days=3)).replace(hour=20, minute=0, second=0,
                                                    microsecond=0)
    number = change_in_cab(client, people["olivia"], start)
    sign_in(client, "carl@example.org")
    page = client.get("/changes/approvals")
    assert page.status_code == 200 and number in page.text
    assert 'name="csrf_token"' in page.text and 'value="approve"' in page.text
    assert re.search(r"<script\b(?![^>]*\bsrc=)", page.text) is None  # only script files
    assert 'style="' not in page.text
    assert "(quorum: a majority)" in page.text  # in words, not the stored "majority"
    approval_id = re.search(r'action="/changes/approvals/(\d+)"', page.text).group(1)

    refused = client.post(f"/changes/approvals/{approval_id}", data={"decision": "approve"})
    assert refused.status_code == 400  # no CSRF token
    no_reason = post(client, f"/changes/approvals/{approval_id}", {"decision": "reject"},
                     follow_redirects=True)
    assert "required to reject" in no_reason.text
    done = post(client, f"/changes/approvals/{approval_id}",
                {"decision": "approve", "comment": "Fine"}, follow_redirects=True)
    assert f"{number}: you approved the change." in done.text
    assert "Nothing awaits your approval." in done.text

    detail = client.get(f"/changes/{number}")
    assert detail.status_code == 200
    # People by name, quorums and votes in words, never the stored codes.
    assert "<li>carl (Change advisory board): <strong>approved</strong>" in detail.text
    assert "carl@example.org" not in detail.text and "1 of" not in detail.text
    assert "Change advisory board" in detail.text and "A majority (2 of 2)" in detail.text
    assert "CAB review" in detail.text and "cab_review<" not in detail.text
    nav = client.get("/changes/calendar").text
    assert 'href="/changes/approvals"' in nav


def test_change_page_says_how_many_approvals_are_missing_and_from_whom(app, client, people,
                                                                   make_token, runner):
    make_token("cody@example.org", role="agent", password=PASSWORD)
    runner.invoke(["groups", "add-member", "Change advisory board", "cody@example.org"])
    start = (utcnow() + timedelta(days=4)).replace(hour=20, minute=0, second=0,
                                                    microsecond=0)
    number = change_in_cab(client, people["olivia"], start)
    owner = signed_in(app, "olivia@example.org")
    waiting = words(owner.get(f"/changes/{number}").text)
    # A majority of three: two votes, and any of the three members may give them.
    assert "Change advisory board needs 2 more approvals (a majority: 2 of 3)" in waiting
    assert "from cara, carl or cody." in waiting
    assert "Schedule for the planned window" not in waiting

    for name in ("carl", "cara"):
        approver = signed_in(app, f"{name}@example.org")
        approval_id = re.search(r'action="/changes/approvals/(\d+)"',
                                approver.get("/changes/approvals").text).group(1)
        post(approver, f"/changes/approvals/{approval_id}", {"decision": "approve"})
        if name == "carl":
            one_more = words(owner.get(f"/changes/{number}").text)
            assert "needs 1 more approval (a majority: 2 of 3), from cara or cody." in one_more
    # The quorum is reached: the change waits for its owner, who schedules it from here.
    reached = words(owner.get(f"/changes/{number}").text)
    assert "The CAB quorum is reached: the change waits in CAB review for its owner" in reached
    assert "cody (Change advisory board): <strong>not needed (quorum decided)" in reached
    cells = reached.split("<td")[1:]  # each labelled for the stacked phone layout
    assert cells and all('data-label="' in cell.split(">")[0] for cell in cells)
    history = owner.get(f"/records/changes/{number}").text
    assert "CAB approval: approved by carl." in history  # by name, not by address
    scheduled = post(owner, f"/changes/{number}/schedule", follow_redirects=True)
    assert "The change is scheduled for its planned window." in scheduled.text
    assert '<span class="badge state-scheduled">Scheduled</span>' in scheduled.text
    assert "Schedule for the planned window" not in scheduled.text


def test_calendar_page_lists_the_month_with_freezes_and_conflicts(client, people, make_token):
    admin = make_token("admin@example.org", role="admin")
    start = utcnow().replace(day=12, hour=20, minute=0, second=0, microsecond=0) \
        + timedelta(days=62)
    month = start.strftime("%Y-%m")
    first = change_in_cab(client, people["olivia"], start)
    second = change_in_cab(client, people["olivia"], start + timedelta(hours=1))
    client.post("/api/v1/changes/freeze-windows", headers=admin, json={
        "name": "Audit week", "starts_at": (start - timedelta(days=1)).isoformat(),
        "ends_at": (start + timedelta(days=1)).isoformat()})
    sign_in(client, "olivia@example.org")
    page = client.get(f"/changes/calendar?month={month}")
    assert page.status_code == 200
    assert first in page.text and second in page.text
    assert f"Conflicts with {second}" in page.text and "Freeze: Audit week" in page.text
    assert '<span class="badge state-cab_review">CAB review</span>' in page.text
    overlap = client.get(f"/changes/{first}").text  # the other change's state as a label
    assert f"{second}</a> Upgrade the mail gateway (CAB review)" in overlap
    assert start.strftime("%a %d %b") in page.text
    assert "change.css" in page.text
    other = client.get("/changes/calendar?month=2001-01")
    assert first not in other.text and "0 changes planned" in other.text
    assert "Times are in UTC time." in page.text
    bad = client.get("/changes/calendar?month=soon")
    assert bad.status_code == 400 and "is not a month" in bad.text
    overview = client.get(f"/changes/{first}").text
    assert "Audit week" in overview and "it needs an emergency approval" in overview
    asked = post(client, f"/changes/{first}/freeze-exception", follow_redirects=True)
    assert "group has no one but this change" in asked.text  # nobody in the emergency CAB


def test_pages_need_sign_in_and_staff(client, people, make_token):
    assert client.get("/changes/calendar").status_code == 302
    make_token("pat@dot.example.org", role="requester", agency="DOT", password=PASSWORD)
    sign_in(client, "pat@dot.example.org")
    assert client.get("/changes/calendar").status_code == 403
    assert client.get("/changes/CHG0000001").status_code == 404


def test_calendar_shows_changes_and_freezes_on_the_readers_days_and_clock(app, client,
                                                                          people, make_token):
    from sqlalchemy import update

    from itsm.core.models import User
    admin = make_token("admin@example.org", role="admin")
    # 23:30 UTC on the 12th is 08:30 on the 13th in Tokyo.
    start = utcnow().replace(day=12, hour=23, minute=30, second=0, microsecond=0) \
        + timedelta(days=62)
    number = change_in_cab(client, people["olivia"], start)
    client.post("/api/v1/changes/freeze-windows", headers=admin, json={
        "name": "Tokyo week", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat()})
    with app.app_context(), app.extensions["itsm"].Session() as session:
        session.execute(update(User).where(User.email == "olivia@example.org")
                        .values(time_zone="Asia/Tokyo"))
        session.commit()
    sign_in(client, "olivia@example.org")
    page = client.get(f"/changes/calendar?month={start:%Y-%m}").text
    assert "Times are in Asia/Tokyo time." in page
    local = start + timedelta(hours=9)
    day = page.split(f'<time datetime="{local.date().isoformat()}">')[1].split("</li>")[0]
    assert number in day and "08:30–" in day
    assert f"{local:%Y-%m-%d} 08:30 JST to {local:%Y-%m-%d} 10:30 JST" in page
