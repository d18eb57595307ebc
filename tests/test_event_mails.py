"""The agency relationship's events each read as a mail a person understands: its own
subject, a body in plain words with the figures of the event, and a link to the page to
act on — not the default mail that shows the event's name."""

from __future__ import annotations

import pytest

import itsm.adapters.email as email_plugin
import itsm.plugins.billing as billing_plugin
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.mou as mou_plugin
import itsm.plugins.relationship as relationship_plugin
from itsm.adapters.email.admin import template_names
from itsm.adapters.email.channel import build_message, payload_link, record_link
from itsm.plugin import EventMessage, utcnow

BASE = "https://itsm.example"
MOU = {"number": "MOU0000003", "type": "mou", "title": "DOT service agreement",
       "state": "active", "priority": 4}
INC = {"number": "INC0000042", "type": "incident", "title": "VPN drops every hour",
       "state": "in_progress", "priority": 2}

# event name -> (payload, words the subject says, words the body says, link it carries)
EVENTS = {
    "satisfaction.low": (
        {"record": INC, "score": 1, "comment": "Nobody called me back", "group": "Network",
         "agency": "Department of Transportation"},
        ["INC0000042", "rated 1/5"], ["Nobody called me back", "Network"],
        f"{BASE}/records/incidents/INC0000042"),
    "relationship.review": (
        {"agency": "DOT", "agency_name": "Department of Transportation",
         "period": "2026-11", "review": 7, "link_path": "/relationship/reviews/7"},
        ["Monthly service review", "DOT", "2026-11"], ["attached as a PDF"],
        f"{BASE}/relationship/reviews/7"),
    "mou.expiring": (
        {"record": MOU, "agency": "DOT", "ends_on": "2027-01-05", "days_left": 30,
         "window": 30},
        ["MOU0000003", "ends in 30 days"], ["2027-01-05", "renewal"],
        f"{BASE}/records/mous/MOU0000003"),
    "mou.compliance_below": (
        {"record": MOU, "agency": "DOT", "period": "2026-11", "target": "P1",
         "metric": "resolution", "compliance": 80.0, "required_percent": 95,
         "measured": 10, "breached": 2},
        ["DOT is below target", "P1"], ["80.0%", "95%"],
        f"{BASE}/records/mous/MOU0000003"),
    "mou.amendment_requested": (
        {"record": MOU, "proposal": 4, "summary": "Extend desk hours to 8 pm",
         "by": "del@dot.example"},
        ["MOU0000003", "Amendment proposed by del@dot.example"],
        ["Extend desk hours to 8 pm", "adopt it"], f"{BASE}/records/mous/MOU0000003"),
    "incident.escalated": (
        {"record": INC, "level": "breach", "metric": "resolution",
         "contacts": ["lead@it.example"], "action": "told Pat Lead"},
        ["INC0000042", "escalated", "breached"], ["escalation path", "told Pat Lead"],
        f"{BASE}/records/incidents/INC0000042"),
    "catalog.feedback.submitted": (
        {"feedback": 3, "service": "Mailbox", "kind": "problem", "state": "new",
         "body": "The form asks for a cost centre we do not have", "answer": "",
         "actor": "pat@dot.example", "link_path": "/catalog/feedback"},
        ["New problem", "Mailbox"], ["cost centre", "pat@dot.example"],
        f"{BASE}/catalog/feedback"),
    "catalog.feedback.answered": (
        {"feedback": 3, "service": "Mailbox", "kind": "problem", "state": "done",
         "body": "The form asks for a cost centre", "answer": "It is optional now.",
         "actor": "ann@it.example",
         "link_path": "/portal/catalog/services/mailbox/feedback"},
        ["Your feedback on Mailbox has an answer"], ["It is optional now."],
        f"{BASE}/portal/catalog/services/mailbox/feedback"),
    "billing.statement_issued": (
        {"statement": 9, "number": "ST-2026-11-00009", "period": "2026-11",
         "agency": "DOT", "agency_name": "Department of Transportation",
         "total": "1234.50", "currency": "USD", "link_path": "/billing/statements/9"},
        ["Statement ST-2026-11-00009", "2026-11"], ["1234.50 USD", "credit"],
        f"{BASE}/billing/statements/9"),
}


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, catalog_plugin, mou_plugin, billing_plugin, relationship_plugin,
            email_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.email.base_url": BASE,
            "plugins.email.sender": "Service Desk <desk@itsm.example>"}


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_each_agency_event_mails_in_words_with_a_link(app, itsm, name):
    payload, subject_words, body_words, expected_link = EVENTS[name]
    message = EventMessage(id=11, name=name, record=payload.get("record"), actor=None,
                           payload=payload, created_at=utcnow())
    with app.app_context():
        settings = itsm.plugin_settings("email")
        link = record_link(itsm, settings, message) or payload_link(settings, message)
        assert link == expected_link
        mail = build_message(message, "reader@example.org", settings, link)
        owned = dict(template_names(""))
    assert name in owned  # its own template, listed on the admin page
    subject = mail["Subject"]
    assert not subject.startswith("[itsm]") and "{{" not in subject
    for words in subject_words:
        assert words in subject, (name, subject)
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for words in body_words:
        assert words in text, (name, text)
    assert expected_link in text and f'href="{expected_link}"' in html
    assert name + ")" in text  # the footer names the event for whoever traces it
    assert "None" not in text and "Undefined" not in text


@pytest.mark.parametrize(("path", "says", "not_said"), [
    ({"kind": "agreed", "source": "MOU0000003"},
     "escalation path agreed with this incident's agency (MOU0000003)", "own list"),
    ({"kind": "install", "source": ""}, "the service desk's own list", "agreement"),
])
def test_the_escalation_mail_names_the_path_that_named_its_reader(app, itsm, path, says,
                                                                  not_said):
    payload = {**EVENTS["incident.escalated"][0], "path": path}
    message = EventMessage(id=12, name="incident.escalated", record=INC, actor=None,
                           payload=payload, created_at=utcnow())
    with app.app_context():
        mail = build_message(message, "lead@it.example", itsm.plugin_settings("email"), None)
    for body in (mail.get_body(("plain",)).get_content(),
                 mail.get_body(("html",)).get_content()):
        text = " ".join(body.replace("&#39;", "'").split())
        assert says in text and not_said not in text
        assert "In progress" in text and "in_progress" not in text  # the state's label
        assert "Priority 2 – High" in text or "Priority: 2 – High" in text


def test_a_payload_link_never_leaves_the_install(app, itsm):
    settings = {"base_url": BASE}
    for path in ("https://evil.example/x", "//evil.example/x", "javascript:alert(1)"):
        message = EventMessage(id=1, name="relationship.review", record=None, actor=None,
                               payload={"link_path": path}, created_at=utcnow())
        assert payload_link(settings, message) is None


def test_an_admin_previews_each_agency_event_mail(app, make_token):
    """The admin's preview (a sample incident, none of these payloads' fields) still
    renders every one of these templates."""
    import re

    make_token("admin@example.org", role="admin", password="long enough secret")
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      client.get("/login").text).group(1)
    assert client.post("/login", data={"email": "admin@example.org",
                                       "password": "long enough secret",
                                       "csrf_token": token}).status_code == 302
    listed = client.get("/admin/email/templates")
    assert listed.status_code == 200
    for name in EVENTS:
        assert name in listed.text
        page = client.get(f"/admin/email/templates?event={name}")
        assert page.status_code == 200, name
        html = client.get(f"/admin/email/templates/preview.html?event={name}")
        assert html.status_code == 200 and "<h2>" in html.text, name
