"""The monthly service review reaches the agency's contacts as well as its relationship
managers: the agreement's designated contacts and the billing contacts, each person once,
active people only, through a real SMTP server — and never another agency's people,
even when a process names them by mistake."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from test_email import SmtpServer

import itsm.adapters.email as email_plugin
import itsm.plugins.billing as billing_plugin
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.mou as mou_plugin
import itsm.plugins.relationship as relationship_plugin
from itsm.core.auth import deactivate_user
from itsm.core.models import User
from itsm.plugins.relationship import service as relationship
from itsm.plugins.relationship.pages import review_pdf_bytes


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, catalog_plugin, mou_plugin, billing_plugin, relationship_plugin,
            email_plugin]


@pytest.fixture
def itsm_config(itsm_config, smtp):
    return {**itsm_config, "plugins.email.host": "127.0.0.1",
            "plugins.email.port": smtp.port,
            "plugins.email.base_url": "https://itsm.example",
            "plugins.email.sender": "Service Desk <desk@itsm.example>"}


@pytest.fixture
def people(runner, make_token, client):
    assert runner.invoke(["demo"]).exit_code == 0
    admin = make_token("boss@it.example", role="admin")
    make_token("rae@it.example", role="agent")
    for email, agency in (("del@dot.example", "DOT"), ("pay@dot.example", "DOT"),
                          ("gone@dot.example", "DOT"), ("doh-del@doh.example", "DOH")):
        make_token(email, role="requester", agency=agency)
    assert client.post("/api/v1/relationship/portfolio", headers=admin, json={
        "email": "rae@it.example", "agency": "DOT"}).status_code == 201
    for email, agency in (("del@dot.example", "DOT"), ("pay@dot.example", "DOT"),
                          ("gone@dot.example", "DOT"), ("doh-del@doh.example", "DOH")):
        made = client.post("/api/v1/mou/delegates", headers=admin,
                           json={"agency": agency, "email": email})
        assert made.status_code in (200, 201), made.json
    # pay@ is both a designated contact and a billing contact: one mail all the same.
    assert client.post("/api/v1/billing/contacts", headers=admin, json={
        "agency": "DOT", "email": "pay@dot.example"}).status_code == 201
    return admin


def _review_files(mails) -> list[str]:
    return [a.get_filename() for m in mails for a in m.iter_attachments()]


def test_the_review_reaches_the_agencys_contacts_once_and_no_other_agency(
        app, itsm, people, smtp):
    with itsm.Session() as session:
        gone = session.scalar(select(User).where(User.email == "gone@dot.example"))
        deactivate_user(session, gone)
        doh_person = session.scalar(select(User).where(User.email == "doh-del@doh.example"))
        doh_person_id = doh_person.id
        session.commit()

    # A process that wrongly names another agency's person as DOT's contact.
    from itsm.testing import make_plugin

    def itsm_agency_contacts(session, agency_id, purpose):
        return [session.get(User, doh_person_id)]

    itsm.host.pm.register(make_plugin("careless", itsm_agency_contacts=itsm_agency_contacts),
                          "careless")
    today = datetime.now(UTC)
    next_month = datetime(today.year + today.month // 12, today.month % 12 + 1, 2,
                          tzinfo=UTC)
    try:
        assert relationship.monthly(itsm, next_month, review_pdf_bytes) == 2
    finally:
        itsm.host.pm.unregister(name="careless")
    itsm.outbox.drain()

    dot_file = f"service-review-DOT-{today:%Y-%m}.pdf"
    doh_file = f"service-review-DOH-{today:%Y-%m}.pdf"
    for address in ("rae@it.example", "del@dot.example", "pay@dot.example"):
        mails = smtp.mailbox.to(address)
        assert _review_files(mails) == [dot_file], address
        pdf = next(mails[0].iter_attachments()).get_content()
        assert pdf.startswith(b"%PDF")
    assert smtp.mailbox.to("gone@dot.example") == []  # a leaver hears nothing
    # DOH's designated contact receives DOH's review, never DOT's.
    assert _review_files(smtp.mailbox.to("doh-del@doh.example")) == [doh_file]
    mail = smtp.mailbox.to("del@dot.example")[0]
    assert "service review" in mail["Subject"].lower() and "DOT" in mail["Subject"]
    assert "https://itsm.example/relationship/reviews/" in \
        mail.get_body(("plain",)).get_content()


def test_each_process_names_the_contacts_it_keeps_for_a_purpose(app, itsm, people):
    from itsm.plugin import agency_contacts

    with app.app_context(), itsm.Session() as session:
        dot = session.scalar(select(User.agency_id).where(User.email == "del@dot.example"))
        review = {u.email for u in agency_contacts(session, dot, "review")}
        billing = {u.email for u in agency_contacts(session, dot, "billing")}
        agreement = {u.email for u in agency_contacts(session, dot, "agreement")}
        with pytest.raises(ValueError):
            agency_contacts(session, dot, "gossip")
    assert {"del@dot.example", "pay@dot.example", "gone@dot.example"} <= review
    assert "pay@dot.example" in billing and "del@dot.example" not in billing
    assert "del@dot.example" in agreement and "doh-del@doh.example" not in review
