"""A catalog request fulfiller's day in Chromium, shorter than the agent's: a requester
asks for remote access; the fulfiller finds the request's task in her group's unassigned
tasks, takes it, works it and completes it; the request is fulfilled and the requester sees
so in the portal. axe-core checks every page; screenshots go to the test's tmp path."""

from __future__ import annotations

import json

import pytest
from browsing import expect
from sqlalchemy import select
from test_agent_day_browser import PASSWORD, Walk

import itsm.plugins.catalog as catalog_plugin
from itsm.core import auth
from itsm.core.demo import ensure_agency, ensure_group
from itsm.core.models import GroupMember, Record

CATALOG = {"categories": [{"name": "Network", "description": "Connections."}],
           "services": [{
               "slug": "vpn", "name": "Remote access (VPN)", "category": "Network",
               "status": "live", "summary": "Work from home as in the office.",
               "offerings": [{"code": "access", "name": "Request remote access",
                              "task_order": "sequential", "response_minutes": 15,
                              "resolution_minutes": 240,
                              "tasks": [{"title": "Enable the VPN profile",
                                         "group": "Service Desk"}],
                              "form": [{"name": "reason", "label": "Why", "type": "text",
                                        "required": True}]}]}]}


@pytest.fixture
def itsm_plugins():
    return [catalog_plugin]


def test_a_fulfillers_day(app, live_server, browser, make_token, runner, tmp_path):
    itsm = app.extensions["itsm"]
    with itsm.Session() as session:
        ensure_agency(session, "DOT", "Department of Transport")
        desk = ensure_group(session, "Service Desk")
        auth.create_user(session, "pat@dot.example", role="requester", agency="DOT",
                         password=PASSWORD, name="Pat Morgan")
        nina = auth.create_user(session, "nina@it.example", role="agent",
                                password=PASSWORD, name="Nina Roy")
        session.flush()
        session.add(GroupMember(group_id=desk.id, user_id=nina.id))
        session.commit()
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    assert runner.invoke(["catalog", "import", str(path)]).exit_code == 0
    shots = tmp_path / "screenshots"
    shots.mkdir()
    pat = make_token("pat@dot.example")
    api = app.test_client()
    offering = api.get("/api/v1/catalog/services/vpn", headers=pat).json["offerings"][0]
    asked = api.post(f"/api/v1/catalog/offerings/{offering['id']}/requests", headers=pat,
                     json={"answers": {"reason": "Working from home on Fridays."}})
    assert asked.status_code == 201, asked.json
    number = asked.json["number"]
    with itsm.Session() as session:
        task = session.scalar(select(Record.number).where(Record.type == "task"))
    assert task

    for width in (390, 1280):  # the narrow look first: working the task changes it
        walk = Walk(browser, live_server, "nina@it.example", shots, width=width)
        page = walk.page
        page.goto(live_server + "/records/tasks")
        page.get_by_role("navigation", name="Views").get_by_role(
            "link", name="My groups' unassigned").click()
        expect(page.locator("table.queue tbody")).to_contain_text(task)
        walk.check("tasks-unassigned")
        page.get_by_role("link", name=task).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Enable the VPN")
        walk.check("task")
        if width == 1280:
            page.get_by_role("button", name="Assign to me").click()
            expect(page.locator(".record-facts")).to_contain_text("Nina Roy")
            start = page.get_by_role("button", name="Start work")
            if start.count():
                start.first.click()
            page.get_by_role("button", name="Complete").first.click()
            walk.check("task-done")
        walk.context.close()

    with itsm.Session() as session:
        assert session.scalar(select(Record.state).where(Record.number == number)) \
            == "fulfilled"
    requester = Walk(browser, live_server, "pat@dot.example", shots)
    requester.page.goto(live_server + "/portal/requests")
    expect(requester.page.locator("main")).to_contain_text(number)
    requester.check("portal-requests")
    requester.context.close()
