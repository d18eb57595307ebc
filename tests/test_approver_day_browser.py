"""A change approver's day in Chromium, shorter than the agent's: a change waits for the
CAB, the approver sees it in the bell and the notification list, opens the approvals page
from there and approves; the vote is recorded. axe-core checks every page; screenshots at
1280 and 390 px go to the test's tmp path."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sample_plugin
from browsing import expect
from sqlalchemy import select
from test_agent_day_browser import PASSWORD, Walk, deliver

import itsm.plugins.change as change_plugin
from itsm.core.models import Record, User, utcnow
from itsm.plugins.change.models import Approval

MEDIUM = {"users_affected": "department", "complexity": "moderate", "tested": "partly",
          "backout": "minutes"}


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, change_plugin]


def test_a_change_approvers_day(app, live_server, browser, make_token, runner, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    olivia = make_token("olivia@example.org", role="agent", password=PASSWORD)
    make_token("carl@example.org", role="agent", password=PASSWORD)
    assert runner.invoke(["groups", "add-member", "Change advisory board",
                          "carl@example.org"]).exit_code == 0
    api = app.test_client()
    start = (utcnow() + timedelta(days=3)).replace(hour=20, minute=0, second=0,
                                                    microsecond=0)
    number = api.post("/api/v1/changes", headers=olivia, json={
        "title": "Upgrade the mail gateway", "services": ["E-mail"],
        "implementation_plan": "Upgrade.", "backout_plan": "Restore.",
        "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(hours=2)).isoformat()}).json["number"]
    for name, fields in (("submit", {}), ("assess", {"risk_answers": MEDIUM})):
        moved = api.post(f"/api/v1/changes/{number}/transitions", headers=olivia,
                         json={"name": name, "fields": fields})
        assert moved.status_code == 200, moved.json
    deliver(app)
    itsm = app.extensions["itsm"]

    for width in (390, 1280):  # the narrow look first: approving empties the page
        carl = Walk(browser, live_server, "carl@example.org", shots, width=width)
        page = carl.page
        expect(page.locator("[data-bell-count]")).not_to_have_text("0")
        carl.check("approver-home")
        page.goto(live_server + "/notifications")
        expect(page.locator(".note", has_text=number).first).to_be_visible()
        carl.check("approver-notifications")
        page.goto(live_server + "/changes/approvals")
        expect(page.get_by_role("heading", level=2, name=number)).to_be_visible()
        carl.check("approvals")
        page.goto(f"{live_server}/changes/{number}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(number)
        carl.check("change")
        if width == 1280:
            page.goto(live_server + "/changes/approvals")
            page.get_by_label("Comment (required to reject)").fill("Fine by the CAB.")
            page.get_by_role("button", name="Approve").click()
            expect(page.get_by_text(f"{number}: you approved the change.")).to_be_visible()
            expect(page.get_by_text("Nothing awaits your approval.")).to_be_visible()
            carl.check("approvals-done")
            # Carl is the whole CAB here: his vote reaches the quorum, and the change page
            # says that the change now waits for its owner to schedule it.
            page.goto(f"{live_server}/changes/{number}")
            expect(page.locator("[data-approval-wait]")).to_contain_text(
                "The CAB quorum is reached: the change waits in CAB review for its owner")
            carl.check("change-approved")
        carl.context.close()
    with itsm.Session() as session:  # carl's vote is in; the quorum decides the rest
        votes = session.execute(
            select(User.email, Approval.state, Approval.comment)
            .join(User, User.id == Approval.approver_id)
            .join(Record, Record.id == Approval.record_id)
            .where(Record.number == number)).all()
        assert ("carl@example.org", "approved", "Fine by the CAB.") in votes
