"""Relationship managers and monthly service reviews, on the demo install: a manager sees
their agency's situation from every process (and not another manager's agency), last
month's review is kept once per agency, mailed as a PDF to its managers through a real
SMTP server, read back with pdftotext and pdftoppm, and readable by the agency's own
people in the portal but not by another agency's."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from test_email import SmtpServer

import itsm.adapters.email as email_plugin
import itsm.plugins.catalog as catalog_plugin
import itsm.plugins.incident as incident_plugin
import itsm.plugins.mou as mou_plugin
import itsm.plugins.relationship as relationship_plugin
from itsm.plugins.relationship import service as relationship
from itsm.plugins.relationship.pages import review_pdf_bytes

API = "/api/v1/relationship"


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, catalog_plugin, mou_plugin, relationship_plugin, email_plugin]


@pytest.fixture
def itsm_config(itsm_config, smtp):
    return {**itsm_config, "plugins.email.host": "127.0.0.1",
            "plugins.email.port": smtp.port,
            "plugins.email.sender": "Service Desk <desk@itsm.example>"}


@pytest.fixture
def demo(runner, make_token):
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output
    return {"rm": make_token("rae@it.example", role="agent"),
            "other_rm": make_token("oli@it.example", role="agent"),
            "admin": make_token("boss@it.example", role="admin"),
            "dot": make_token("pat2@dot.example", role="requester", agency="DOT"),
            "doh": make_token("sam2@doh.example", role="requester", agency="DOH")}


def test_a_manager_sees_their_agencys_situation_and_its_kept_reviews(
        app, client, demo, itsm, smtp, tmp_path):
    assigned = client.post(f"{API}/portfolio", headers=demo["admin"],
                           json={"email": "rae@it.example", "agency": "DOT"})
    assert assigned.status_code == 201, assigned.json
    assert client.post(f"{API}/portfolio", headers=demo["rm"], json={
        "email": "rae@it.example", "agency": "DOH"}).status_code == 403
    refused = client.post(f"{API}/portfolio", headers=demo["admin"],
                          json={"email": "pat2@dot.example", "agency": "DOT"})
    assert refused.status_code == 422 and "email" in refused.json["error"]["fields"]
    client.post(f"{API}/portfolio", headers=demo["admin"],
                json={"email": "oli@it.example", "agency": "DOH"})

    mine = client.get(f"{API}/agencies", headers=demo["rm"]).json["items"]
    assert [a["code"] for a in mine] == ["DOT"]
    now = client.get(f"{API}/agencies/DOT", headers=demo["rm"])
    assert now.status_code == 200, now.json
    titles = [s["title"] for s in now.json["sections"]]
    assert titles == ["Agreement and service levels", "Incidents", "Requests"]
    incidents = {f["label"]: f["value"] for f in now.json["sections"][1]["facts"]}
    assert set(incidents) >= {"Opened", "Resolved", "Open now", "Open major incidents",
                              "Satisfaction"}
    assert now.json["managers"] == ["rae@it.example"]
    assert client.get(f"{API}/agencies/DOH", headers=demo["rm"]).status_code == 404
    assert client.get(f"{API}/agencies/DOT", headers=demo["dot"]).status_code == 404

    # The first days of next month: last month's review, kept once, mailed with its PDF.
    today = datetime.now(UTC)
    next_month = datetime(today.year + today.month // 12, today.month % 12 + 1, 2,
                          tzinfo=UTC)
    assert relationship.monthly(itsm, next_month, review_pdf_bytes) == 2  # DOT and DOH
    assert relationship.monthly(itsm, next_month, review_pdf_bytes) == 0
    itsm.outbox.drain()
    mails = smtp.mailbox.to("rae@it.example")
    assert len(mails) == 1
    attachments = list(mails[0].iter_attachments())
    assert [a.get_filename() for a in attachments] == [
        f"service-review-DOT-{today:%Y-%m}.pdf"]
    pdf = attachments[0].get_content()
    assert pdf.startswith(b"%PDF")
    assert len(smtp.mailbox.to("oli@it.example")) == 1  # DOH's manager, DOH's review

    reviews = client.get(f"{API}/agencies/DOT/reviews", headers=demo["dot"]).json["items"]
    assert [r["period"] for r in reviews] == [f"{today:%Y-%m}"]
    assert client.get(f"{API}/agencies/DOT/reviews",
                      headers=demo["doh"]).status_code == 404
    assert reviews[0]["sections"][0]["title"] == "Agreement and service levels"

    if not shutil.which("pdftotext"):
        pytest.skip("poppler-utils is not installed: apt-get install poppler-utils")
    path = tmp_path / "review.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "Monthly service review" in text and "(DOT)" in text
    opened = next(f["value"] for f in reviews[0]["sections"][1]["facts"]
                  if f["label"] == "Opened")
    assert "Incidents" in text and "Opened" in text and opened in text
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path),
                    str(tmp_path / "page")], check=True)
    assert (tmp_path / "page-1.png").stat().st_size > 5_000


def test_a_vendor_process_adds_its_section_through_the_hook(app, client, demo, itsm):
    from itsm.core.agency_view import AgencySection
    from itsm.testing import make_plugin

    def itsm_agency_sections(session, agency_id, start, end):
        return [AgencySection("Office moves", facts=(("Done", "3"),), order=40)]

    itsm.host.pm.register(make_plugin("moves", itsm_agency_sections=itsm_agency_sections),
                          "moves")
    try:
        data = client.get(f"{API}/agencies/DOH", headers=demo["admin"]).json
    finally:
        itsm.host.pm.unregister(name="moves")
    assert [s["title"] for s in data["sections"]] == [
        "Agreement and service levels", "Incidents", "Requests", "Office moves"]
    assert data["sections"][-1]["facts"] == [{"label": "Done", "value": "3"}]
