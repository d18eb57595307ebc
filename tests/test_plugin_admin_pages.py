"""Plugins' own administration pages in the admin area: the catalog's services, categories
and request offerings with their form builder, for admins and catalog managers; bad input
comes back with field messages and what was typed, and nobody else gets in."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

import itsm.adapters.email as email_adapter
import itsm.adapters.webhooks as webhooks_adapter
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.change as change_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.mou as mou_plugin
import itsm.plugins.transition_gate as transition_plugin
from itsm.core.admin.models import AdminAudit
from itsm.plugins.catalog.models import Category, Offering, Service

PASSWORD = "correct horse battery"


@pytest.fixture
def itsm_plugins():
    return [catalog_plugin, incident_plugin, change_plugin, mou_plugin, transition_plugin,
            email_adapter, webhooks_adapter]


@pytest.fixture
def people(make_token):
    return {role: make_token(f"{role}@example.org", role=role, password=PASSWORD)
            for role in ("admin", "service_manager", "agent", "requester")}


def signed_in(app, email: str):
    client = app.test_client()
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302, response.text
    return client


def post(client, path: str, data: dict | None = None):
    with client.session_transaction() as state:
        token = state["csrf"]
    return client.post(path, data={**(data or {}), "csrf_token": token})


SERVICE = {"slug": "team-mailbox", "name": "Team mailbox", "summary": "A shared mailbox.",
           "description": "For a team.", "category": "Communication", "owner": "",
           "support_hours": "Mon-Fri 8-17", "agencies": "", "rate_unit": "per mailbox",
           "price": "6.00", "currency": "USD", "billing_period": "monthly", "cost_notes": "",
           "faq_url": "https://help.example.org/faq", "help_url": "/kb/mailbox",
           "status": "live"}
OFFERING = {"code": "new-mailbox", "name": "Ask for a team mailbox", "description": "",
            "active": "y", "approval": "none", "approval_group": "",
            "task_order": "sequential", "response_minutes": "", "resolution_minutes": "",
            "f-0-label": "Mailbox name", "f-0-name": "mailbox_name", "f-0-type": "text",
            "f-0-choices": "", "f-0-help": "", "f-0-required": "y",
            "f-1-label": "Size", "f-1-name": "size", "f-1-type": "choice",
            "f-1-choices": "Small\nLarge", "f-1-help": "Large needs a reason",
            "t-0-title": "Create the mailbox", "t-0-group": "", "t-0-instructions": "",
            "action": "save"}


def test_a_catalog_manager_adds_a_service_and_an_offering_with_a_form(app, people):
    client = signed_in(app, "service_manager@example.org")
    home = client.get("/admin/")
    assert home.status_code == 403  # the admin home is for admins
    listing = client.get("/admin/catalog/")
    assert listing.status_code == 200 and "Services and categories" in listing.text
    saved = post(client, "/admin/catalog/services/new", {**SERVICE, "owner": "agent@example.org"})
    assert saved.status_code == 302, saved.text
    assert saved.headers["Location"].endswith("/admin/catalog/services/team-mailbox")
    listed = client.get("/admin/catalog/").text  # the owner by name, not by address
    assert "<td>agent</td>" in listed and "agent@example.org" not in listed
    page = client.get("/admin/catalog/services/team-mailbox")
    assert 'value="6.00"' in page.text and "Preview the portal page" in page.text
    made = post(client, "/admin/catalog/services/team-mailbox/offerings/new", OFFERING)
    assert made.status_code == 302, made.text
    state = app.extensions["itsm"]
    with state.Session() as session:
        service = session.scalar(select(Service).where(Service.slug == "team-mailbox"))
        offering = session.scalar(select(Offering).where(Offering.service_id == service.id))
        assert str(service.price) == "6.00" and service.status == "live"
        assert session.get(Category, service.category_id).name == "Communication"
        assert [(f["name"], f["type"], f["required"], f["choices"]) for f in offering.form] \
            == [("mailbox_name", "text", True, []), ("size", "choice", False,
                                                     ["Small", "Large"])]
        assert offering.tasks == [{"title": "Create the mailbox", "group": "",
                                   "instructions": ""}]
        actions = session.scalars(select(AdminAudit.action).order_by(AdminAudit.id)).all()
        assert actions == ["catalog.service.save", "catalog.offering.save"]
    # The builder shows the two questions and a blank one; removing one keeps the other.
    edit = client.get(f"/admin/catalog/services/team-mailbox/offerings/{offering.id}")
    assert "Question 3" in edit.text and "Question 4" not in edit.text
    changed = post(client, f"/admin/catalog/services/team-mailbox/offerings/{offering.id}",
                   {**OFFERING, "f-1-remove": "y"})
    assert changed.status_code == 302
    with state.Session() as session:
        assert [f["name"] for f in session.get(Offering, offering.id).form] == ["mailbox_name"]


def test_add_a_question_without_script_keeps_what_was_typed(app, people):
    client = signed_in(app, "admin@example.org")
    assert post(client, "/admin/catalog/services/new", SERVICE).status_code == 302
    more = post(client, "/admin/catalog/services/team-mailbox/offerings/new",
                {**OFFERING, "action": "more-fields"})
    assert more.status_code == 200
    assert "Question 3" in more.text and 'value="Mailbox name"' in more.text
    with app.extensions["itsm"].Session() as session:
        assert session.scalar(select(Offering)) is None


@pytest.mark.parametrize(("change", "field", "kept"), [
    ({"slug": "Team Mailbox!"}, "slug", "Team Mailbox!"),
    ({"name": ""}, "name", None),
    ({"price": "cheap"}, "price", "cheap"),
    ({"currency": "DOLLARS"}, "currency", "DOLLARS"),
    ({"faq_url": "javascript:alert(1)"}, "faq_url", "javascript:alert(1)"),
    ({"owner": "nobody@example.org"}, "owner", "nobody@example.org"),
    ({"agencies": "NOPE"}, "agencies", "NOPE"),
    ({"status": "exploded"}, "status", None),
])
def test_a_bad_service_comes_back_with_messages_and_what_was_typed(app, people, change,
                                                                   field, kept):
    client = signed_in(app, "admin@example.org")
    response = post(client, "/admin/catalog/services/new", {**SERVICE, **change})
    assert response.status_code == 422, response.text[:300]
    assert f'id="e-{field}"' in response.text
    if kept:
        assert html.escape(kept) in response.text
    assert 'value="Team mailbox"' in response.text or field == "name"


@pytest.mark.parametrize(("change", "field"), [
    ({"code": "New Mailbox"}, "code"),
    ({"f-0-name": "Mailbox Name"}, "f-0-name"),
    ({"f-1-choices": ""}, "f-1-choices"),
    ({"f-1-name": "mailbox_name"}, "f"),
    ({"approval": "group"}, "approval_group"),
    ({"t-0-group": "ghosts"}, "t"),
    ({"resolution_minutes": "soon"}, "resolution_minutes"),
])
def test_a_bad_offering_points_at_the_row_and_keeps_the_form(app, people, change, field):
    client = signed_in(app, "admin@example.org")
    assert post(client, "/admin/catalog/services/new", SERVICE).status_code == 302
    response = post(client, "/admin/catalog/services/team-mailbox/offerings/new",
                    {**OFFERING, **change})
    assert response.status_code == 422, response.text[:500]
    assert f'id="e-{field}"' in response.text, response.text[-3000:]
    assert 'value="Mailbox name"' in response.text


def test_a_category_is_added_from_the_catalog_page(app, people):
    client = signed_in(app, "admin@example.org")
    bad = post(client, "/admin/catalog/", {"name": "", "description": "kept text",
                                           "position": "first"})
    assert bad.status_code == 422 and "kept text" in bad.text
    assert post(client, "/admin/catalog/", {"name": "Devices", "description": "Laptops",
                                            "position": "2"}).status_code == 302
    with app.extensions["itsm"].Session() as session:
        assert session.scalar(select(Category.description)
                              .where(Category.name == "Devices")) == "Laptops"


@pytest.mark.parametrize("role", ["agent", "requester"])
def test_catalog_admin_pages_refuse_who_is_no_catalog_manager(app, people, role):
    admin = signed_in(app, "admin@example.org")
    assert post(admin, "/admin/catalog/services/new", SERVICE).status_code == 302
    client = signed_in(app, f"{role}@example.org")
    for path in ("/admin/catalog/", "/admin/catalog/services/new",
                 "/admin/catalog/services/team-mailbox",
                 "/admin/catalog/services/team-mailbox/offerings/new"):
        assert client.get(path).status_code == 403, path
        assert post(client, path, SERVICE).status_code == 403, path


# -- incident: categories, priority matrix, routing ---------------------------------------------


def _incident(client, headers, **fields):
    made = client.post("/api/v1/incidents", json={"title": "Printer jam", **fields},
                       headers=headers)
    assert made.status_code == 201, made.get_json()
    return made.get_json()


@pytest.fixture
def printing(app):
    from itsm.core.models import Group
    from itsm.plugins.incident import rules

    rules.forget_stored()
    with app.app_context(), app.extensions["itsm"].Session() as session:
        session.add(Group(name="Printing"))
        session.commit()
    yield
    rules.forget_stored()


def test_an_admin_changes_incident_categories_matrix_and_routing(app, people, printing):
    client = signed_in(app, "admin@example.org")
    page = client.get("/admin/incident/")
    assert page.status_code == 200 and "network: lan, wan, vpn, wifi, dns" in page.text
    saved = post(client, "/admin/incident/", {
        "rule": "categories", "categories": "printing: jam, toner\nnetwork: lan, wan"})
    assert saved.status_code == 302, saved.text
    # A 4 x 4 matrix: resize first (nothing saved), then fill it in.
    resized = post(client, "/admin/incident/", {"rule": "priority_matrix", "impacts": "4",
                                                "urgencies": "4", "action": "resize"})
    assert resized.status_code == 200 and 'id="f-m-4-4"' in resized.text
    cells = {f"m-{i}-{j}": str(min(5, i + j - 1)) for i in range(1, 5) for j in range(1, 5)}
    assert post(client, "/admin/incident/", {"rule": "priority_matrix", "impacts": "4",
                                             "urgencies": "4", "action": "save",
                                             **cells}).status_code == 302
    assert post(client, "/admin/incident/", {"rule": "routing", "r-printing": "Printing",
                                             "r-network": ""}).status_code == 302
    admin = people["admin"]
    made = _incident(client, admin, category="printing", subcategory="toner", impact=4,
                     urgency=4)
    assert made["priority"] == 5, made
    assert "Printing" in str(made.get("group")), made
    refused = client.post("/api/v1/incidents", json={"title": "x", "category": "hardware"},
                          headers=admin)
    assert refused.status_code == 422
    from itsm.core.admin.models import AdminAudit
    with app.extensions["itsm"].Session() as session:
        actions = set(session.scalars(select(AdminAudit.action)))
    assert {"incident.categories", "incident.priority_matrix", "incident.routing"} <= actions


def test_the_incident_rules_command_saves_what_the_page_saves(runner, printing):
    import json

    shown = runner.invoke(["incident", "rules"])
    assert shown.exit_code == 0 and json.loads(shown.output)["routing"]["network"] == "Network"
    saved = runner.invoke(["incident", "rules", "--set", "routing", "--value",
                           '{"network": "Printing"}'])
    assert saved.exit_code == 0, saved.output
    assert json.loads(runner.invoke(["incident", "rules"]).output)["routing"] == \
        {"network": "Printing"}
    for bad in (["--set", "routing", "--value", "{nope"],
                ["--set", "routing", "--value", '{"network": "Ghosts"}'],
                ["--set", "priority_matrix", "--value", "[[1]]"]):
        result = runner.invoke(["incident", "rules", *bad])
        assert result.exit_code != 0 and "Traceback" not in result.output, bad


@pytest.mark.parametrize(("data", "field", "kept"), [
    ({"rule": "categories", "categories": "Net Work: lan"}, "categories", "Net Work: lan"),
    ({"rule": "categories", "categories": ""}, "categories", None),
    ({"rule": "priority_matrix", "impacts": "3", "urgencies": "3", "m-1-1": "urgent"},
     "m-1-1", "urgent"),
    ({"rule": "priority_matrix", "impacts": "3", "urgencies": "3", "m-2-2": "9"},
     "m-2-2", None),
    ({"rule": "routing", "r-network": "Ghost busters"}, "r-network", "Ghost busters"),
])
def test_bad_incident_rules_come_back_with_messages(app, people, printing, data, field,
                                                    kept):
    client = signed_in(app, "admin@example.org")
    response = post(client, "/admin/incident/", data)
    assert response.status_code == 422, response.text[:300]
    assert f'id="e-{field}"' in response.text
    if kept:
        assert html.escape(kept) in response.text


@pytest.mark.parametrize("role", ["agent", "service_manager", "requester"])
def test_incident_rules_page_is_for_admins_only(app, people, role):
    client = signed_in(app, f"{role}@example.org")
    assert client.get("/admin/incident/").status_code == 403
    assert post(client, "/admin/incident/", {"rule": "routing"}).status_code == 403


# -- change: CAB rules, risk questions, templates, freeze windows --------------------------------


def test_an_admin_keeps_the_change_catalogs(app, people, printing):
    client = signed_in(app, "admin@example.org")
    for path in ("/admin/change/cab-rules/", "/admin/change/risk-questions/",
                 "/admin/change/templates/", "/admin/change/freeze-windows/"):
        assert client.get(path).status_code == 200, path
        assert client.get(path + "new").status_code == 200, path
    rule = post(client, "/admin/change/cab-rules/new", {
        "name": "Printing CAB", "group": "Printing", "purpose": "cab", "quorum": "all",
        "change_types": ["normal", "emergency"], "risk_levels": ["high"],
        "services": "Printing\nScanning", "categories": "", "active": "y"})
    assert rule.status_code == 302, rule.text[-2000:]
    question = post(client, "/admin/change/risk-questions/new", {
        "key": "outage", "text": "Will users notice an outage?",
        "options": "Yes = 30\nNo = 0", "position": "5", "active": "y"})
    assert question.status_code == 302, question.text[-2000:]
    window = post(client, "/admin/change/freeze-windows/new", {
        "name": "Year end", "starts_at": "2099-12-20T00:00", "ends_at": "2100-01-03T00:00",
        "services": "", "reason": "Closing the books"})
    assert window.status_code == 302, window.text[-2000:]
    template = post(client, "/admin/change/templates/new", {
        "name": "toner", "title": "Replace printer toner", "implementation_plan": "Swap it",
        "backout_plan": "Put the old one back", "risk_level": "low",
        "max_window_hours": "2", "active": "y"})
    assert template.status_code == 302, template.text[-2000:]
    questions = client.get("/admin/change/risk-questions/").text
    # The question is the row's name; its key only in a small column of its own.
    assert re.search(r'<a href="[^"]+">Will users notice an outage\?</a>', questions)
    assert "<small><code>outage</code></small>" in questions
    assert re.search(r">\s*outage\s*</a>", questions) is None
    listed = client.get("/admin/change/cab-rules/").text
    assert "Printing CAB" in listed and "quorum: every member" in listed
    from itsm.plugins.change.models import CabRule, FreezeWindow, RiskQuestion
    state = app.extensions["itsm"]
    with state.Session() as session:
        row = session.scalar(select(CabRule).where(CabRule.name == "Printing CAB"))
        assert (row.quorum, row.change_types, row.services) == \
            ("all", ["normal", "emergency"], ["Printing", "Scanning"])
        assert session.scalar(select(RiskQuestion).where(RiskQuestion.key == "outage")) \
            .options == {"Yes": 30, "No": 0}
        window_id = session.scalar(select(FreezeWindow.id).where(FreezeWindow.name == "Year end"))
        rule_id = row.id
    edit = client.get(f"/admin/change/cab-rules/{rule_id}")
    assert 'value="normal" checked' in edit.text and "Printing\nScanning" in edit.text
    changed = post(client, f"/admin/change/cab-rules/{rule_id}", {
        "name": "Printing CAB", "group": "Printing", "purpose": "cab", "quorum": "majority",
        "services": "", "categories": "", "active": "y"})
    assert changed.status_code == 302
    # Deleting asks first; the question page deletes nothing.
    asked = post(client, f"/admin/change/freeze-windows/{window_id}", {"action": "delete"})
    assert asked.status_code == 200 and "Delete the freeze window Year end?" in asked.text
    with state.Session() as session:
        assert session.get(FreezeWindow, window_id) is not None
    gone = post(client, f"/admin/change/freeze-windows/{window_id}",
                {"action": "confirm-delete"})
    assert gone.status_code == 302
    with state.Session() as session:
        assert session.get(FreezeWindow, window_id) is None
        actions = set(session.scalars(select(AdminAudit.action)))
    assert {"change.cab-rules.add", "change.cab-rules.update", "change.freeze-windows.remove",
            "change.risk-questions.add", "change.templates.add"} <= actions


def test_freeze_windows_are_typed_and_shown_in_the_admins_zone(app, people, printing):
    from itsm.core.models import User
    from itsm.plugins.change.models import FreezeWindow
    state = app.extensions["itsm"]
    with state.Session() as session:
        session.scalar(select(User).where(User.email == "admin@example.org")).time_zone = \
            "America/New_York"
        session.commit()
    client = signed_in(app, "admin@example.org")
    form = client.get("/admin/change/freeze-windows/new").text
    assert "Starts (America/New_York time)" in form and "(UTC)" not in form
    saved = post(client, "/admin/change/freeze-windows/new", {
        "name": "Audit", "starts_at": "2099-12-20T18:00", "ends_at": "2099-12-21T09:30",
        "services": "", "reason": ""})
    assert saved.status_code == 302, saved.text[-2000:]
    with state.Session() as session:
        window = session.scalar(select(FreezeWindow).where(FreezeWindow.name == "Audit"))
        assert window.starts_at.isoformat().startswith("2099-12-20T23:00")  # stored UTC
    edit = client.get(f"/admin/change/freeze-windows/{window.id}").text
    assert 'value="2099-12-20T18:00"' in edit and 'value="2099-12-21T09:30"' in edit
    listed = client.get("/admin/change/freeze-windows/").text
    assert "2099-12-20 18:00 EST to 2099-12-21 09:30 EST" in listed


@pytest.mark.parametrize(("path", "data", "field", "kept"), [
    ("cab-rules", {"name": "", "group": "Printing"}, "name", None),
    ("cab-rules", {"name": "X", "group": "Nobody"}, "group", None),
    ("risk-questions", {"key": "Bad Key", "text": "Q?", "options": "Yes = 1"}, "key",
     "Bad Key"),
    ("risk-questions", {"key": "k", "text": "Q?", "options": "Yes = lots"}, "options",
     "Yes = lots"),
    ("freeze-windows", {"name": "W", "starts_at": "2099-12-20T00:00",
                        "ends_at": "2099-12-01T00:00"}, "ends_at", None),
    ("freeze-windows", {"name": "W", "starts_at": "someday", "ends_at": ""}, "starts_at",
     "someday"),
    ("templates", {"name": "t", "title": "T", "implementation_plan": "",
                   "backout_plan": "b", "max_window_hours": "long"}, "max_window_hours",
     "long"),
])
def test_a_bad_change_catalog_entry_comes_back_with_messages(app, people, printing, path,
                                                             data, field, kept):
    client = signed_in(app, "admin@example.org")
    response = post(client, f"/admin/change/{path}/new", data)
    assert response.status_code == 422, response.text[-1500:]
    assert f'id="e-{field}"' in response.text, response.text[-2500:]
    if kept:
        assert html.escape(kept) in response.text


@pytest.mark.parametrize("role", ["agent", "service_manager", "requester"])
def test_change_catalog_pages_are_for_change_admins(app, people, role):
    client = signed_in(app, f"{role}@example.org")
    for path in ("/admin/change/cab-rules/", "/admin/change/freeze-windows/new",
                 "/admin/change/templates/1"):
        assert client.get(path).status_code == 403, path
        assert post(client, path, {"name": "x"}).status_code in (403, 405), path


# -- agreement template and transition checklist templates ---------------------------------------


def test_an_admin_publishes_a_new_agreement_template(app, people):
    client = signed_in(app, "admin@example.org")
    page = client.get("/admin/mou/template")
    assert page.status_code == 200 and "Publish version 2" in page.text
    form = {}
    for key in [*(str(n) for n in range(1, 11)), *"ABCDEFG"]:
        form[f"title-{key}"] = f"Title {key}"
        form[f"body-{key}"] = f"Body {key}"
    bad = post(client, "/admin/mou/template", {**form, "title-3": ""})
    assert bad.status_code == 422 and 'id="e-title-3"' in bad.text
    assert "Body 5" in bad.text
    done = post(client, "/admin/mou/template", {**form, "note": "plainer words"})
    assert done.status_code == 302
    assert "Version 2 is in use" in client.get("/admin/mou/template").text
    with app.extensions["itsm"].Session() as session:
        assert "mou.template.publish" in set(session.scalars(select(AdminAudit.action)))


def test_a_gatekeeper_keeps_checklist_templates(app, people):
    client = signed_in(app, "admin@example.org")
    assert client.get("/admin/transitions/templates/").status_code == 200
    form = {"name": "web-app", "description": "Web applications", "active": "y",
            "i-0-title": "Runbook", "i-0-description": "How to restart it",
            "i-0-document_url": "", "i-0-due_days_before": "10", "i-0-mandatory": "y"}
    more = post(client, "/admin/transitions/templates/new", {**form, "action": "more"})
    assert more.status_code == 200 and "Deliverable 2" in more.text
    bad = post(client, "/admin/transitions/templates/new",
               {**form, "i-0-due_days_before": "soon", "action": "save"})
    assert bad.status_code == 422 and 'id="e-i-0-due_days_before"' in bad.text
    assert 'value="soon"' in bad.text
    bad_name = post(client, "/admin/transitions/templates/new",
                    {**form, "name": "Web App", "action": "save"})
    assert bad_name.status_code == 422 and 'id="e-name"' in bad_name.text
    saved = post(client, "/admin/transitions/templates/new", {**form, "action": "save"})
    assert saved.status_code == 302, saved.text[-1500:]
    edit = client.get("/admin/transitions/templates/web-app")
    assert 'value="Runbook"' in edit.text and 'value="10"' in edit.text
    from itsm.plugins.transition_gate.models import ChecklistTemplate
    with app.extensions["itsm"].Session() as session:
        row = session.scalar(select(ChecklistTemplate).where(ChecklistTemplate.name ==
                                                             "web-app"))
        assert row.items[0]["due_days_before"] == 10 and row.items[0]["mandatory"] is True


@pytest.mark.parametrize("role", ["agent", "service_manager", "requester"])
def test_template_pages_are_for_their_editors(app, people, role):
    client = signed_in(app, f"{role}@example.org")
    for path in ("/admin/mou/template", "/admin/transitions/templates/",
                 "/admin/transitions/templates/new"):
        assert client.get(path).status_code == 403, path
    assert post(client, "/admin/mou/template", {}).status_code == 403


# -- webhooks and e-mail templates -----------------------------------------------------------------


def test_an_admin_adds_previews_and_removes_a_webhook(app, people):
    client = signed_in(app, "admin@example.org")
    bad = post(client, "/admin/webhooks/", {"url": "ftp://example.org/hook",
                                            "events": "record.created\nBad Event",
                                            "format": "json", "description": "ops"})
    assert bad.status_code == 422 and "ftp://example.org/hook" in bad.text
    assert 'id="e-url"' in bad.text or 'id="e-events"' in bad.text
    added = post(client, "/admin/webhooks/", {"url": "https://hooks.example.org/itsm",
                                              "events": "record.*\nsla.breached",
                                              "format": "slack", "description": "ops"})
    assert added.status_code == 200 and "shown this once" in added.text
    from itsm.adapters.webhooks.models import WebhookSubscription
    with app.extensions["itsm"].Session() as session:
        row = session.scalar(select(WebhookSubscription))
        assert row.secret in added.text and row.patterns == ["record.*", "sla.breached"]
    preview = client.get(f"/admin/webhooks/{row.id}?event=sla.breached")
    assert preview.status_code == 200 and "[INC0000042] VPN drops every hour: sla.breached" \
        in html.unescape(preview.text)
    assert row.secret not in preview.text
    asked = post(client, f"/admin/webhooks/{row.id}", {"action": "remove"})
    assert asked.status_code == 200 and "Remove this webhook?" in asked.text
    assert post(client, f"/admin/webhooks/{row.id}",
                {"action": "confirm-remove"}).status_code == 302
    with app.extensions["itsm"].Session() as session:
        assert session.scalar(select(WebhookSubscription)) is None
        actions = set(session.scalars(select(AdminAudit.action)))
    assert {"webhook.add", "webhook.remove"} <= actions


def test_an_admin_previews_each_events_mail(app, people):
    client = signed_in(app, "admin@example.org")
    page = client.get("/admin/email/templates?event=record.commented")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "[INC0000042] VPN drops every hour" in text
    assert "Ann Admin commented on INC0000042" in text
    unknown = client.get("/admin/email/templates?event=<script>")
    assert unknown.status_code == 200 and "<script>" not in unknown.text
    mail = client.get("/admin/email/templates/preview.html?event=record.created")
    assert mail.status_code == 200 and "sandbox" in mail.headers["Content-Security-Policy"]


@pytest.mark.parametrize("role", ["agent", "service_manager", "requester"])
def test_notification_pages_are_for_admins(app, people, role):
    client = signed_in(app, f"{role}@example.org")
    for path in ("/admin/webhooks/", "/admin/webhooks/1", "/admin/email/templates",
                 "/admin/email/templates/preview.html"):
        assert client.get(path).status_code == 403, path
    assert post(client, "/admin/webhooks/", {"url": "https://x.example"}).status_code == 403


JUNK = ("", " ", "\x00", "x" * 5000, "'\"<script>", "9" * 40, "-1", "1e400", "NaN",
        "2099-02-30T25:61", "ünïcødé ☃", "a = b = c", "*")
FORMS = {
    "/admin/catalog/": ("name", "description", "position"),
    "/admin/catalog/services/new": tuple(SERVICE),
    "/admin/catalog/services/team-mailbox": tuple(SERVICE),
    "/admin/catalog/services/team-mailbox/offerings/new": tuple(OFFERING),
    "/admin/incident/": ("rule", "categories", "impacts", "urgencies", "m-1-1", "r-network",
                         "action"),
    "/admin/change/cab-rules/new": ("name", "group", "purpose", "quorum", "change_types",
                                    "services", "active"),
    "/admin/change/risk-questions/new": ("key", "text", "options", "position"),
    "/admin/change/freeze-windows/new": ("name", "starts_at", "ends_at", "services"),
    "/admin/change/templates/new": ("name", "title", "implementation_plan", "backout_plan",
                                    "max_window_hours", "environments", "risk_level"),
    "/admin/mou/template": ("title-1", "body-1", "title-A", "note"),
    "/admin/transitions/templates/new": ("name", "description", "i-0-title",
                                         "i-0-due_days_before", "action"),
    "/admin/webhooks/": ("url", "events", "format", "description"),
    "/admin/service-levels": ("calendar", "warn_at", "t-response-1", "t-resolution-3"),
    "/admin/service-levels/calendars/new": ("name", "timezone", "mon", "sun", "holidays",
                                            "country", "subdivision", "years", "public",
                                            "reviewed", "action"),
}


def test_junk_in_every_admin_form_is_never_a_server_error(app, people):
    client = signed_in(app, "admin@example.org")
    assert post(client, "/admin/catalog/services/new", SERVICE).status_code == 302
    failures = []
    for round_ in range(len(JUNK)):
        for path, names in FORMS.items():
            data = {name: JUNK[(round_ + i) % len(JUNK)] for i, name in enumerate(names)}
            status = post(client, path, data).status_code
            if status >= 500:
                failures.append(f"{path} {data!r:.200}: {status}")
    for path in ("/admin/catalog/services/nope", "/admin/catalog/services/x/offerings/99",
                 "/admin/change/cab-rules/999999", "/admin/transitions/templates/nope",
                 "/admin/webhooks/999999", "/admin/service-levels/calendars/nope",
                 "/admin/email/templates?event=" + "x" * 500):
        status = client.get(path).status_code
        if status >= 500 or status == 200 and path.endswith("nope"):
            failures.append(f"GET {path}: {status}")
    assert not failures, "\n".join(failures)
