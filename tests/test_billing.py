"""Internal billing as a finance office checks it: two agencies' November, computed from
the catalog's rates, fulfilled requests, subscriptions and recorded time, equals the
hand computation; an issued statement never changes and a correction is a credit on the
next; agencies never see each other's statements."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update

import itsm.plugins.billing as billing_plugin
import itsm.plugins.catalog as catalog_plugin
from itsm.core.errors import Conflict
from itsm.core.models import Delivery, Event, Record
from itsm.plugins.billing.models import Statement, StatementLine

PASSWORD = "long enough secret"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

CATALOG = {
    "categories": [{"name": "Workplace", "description": "What people work with."}],
    "services": [
        {"slug": "mailbox", "name": "Mailbox", "category": "Workplace", "status": "live",
         "summary": "A mailbox with a calendar.", "price": "5.00", "rate_unit": "per mailbox",
         "billing_period": "monthly"},
        {"slug": "archive", "name": "Archive storage", "category": "Workplace",
         "status": "live", "summary": "Long-term storage.", "price": "36.00",
         "rate_unit": "per terabyte", "billing_period": "yearly"},
        {"slug": "laptop-setup", "name": "Laptop setup", "category": "Workplace",
         "status": "live", "summary": "A laptop prepared for a newcomer.", "price": "120.00",
         "rate_unit": "per laptop", "billing_period": "one_time",
         "offerings": [{"code": "setup", "name": "Set up laptops", "task_order": "parallel",
                        "form": [{"name": "quantity", "label": "How many",
                                  "type": "integer", "required": True}]}]},
        {"slug": "consulting", "name": "Consulting", "category": "Workplace",
         "status": "live", "summary": "An engineer's time.", "price": "90.00",
         "rate_unit": "per hour", "billing_period": "hourly",
         "offerings": [{"code": "ask", "name": "Ask an engineer", "task_order": "parallel",
                        "form": [{"name": "topic", "label": "Topic", "type": "text",
                                  "required": True}]}]},
    ],
}


@pytest.fixture
def itsm_plugins():
    return [catalog_plugin, billing_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.billing.notify_channels": ["log"]}


@pytest.fixture
def desk(app, runner, make_token, tmp_path):
    """Two agencies, the catalog above and a staff member, as tokens by name."""
    people = {
        "admin": make_token("boss@it.example", role="admin"),
        "agent": make_token("alex@it.example", role="agent"),
        "dot": make_token("pat@dot.example", role="requester", agency="DOT"),
        "dot_finance": make_token("fin@dot.example", role="requester", agency="DOT"),
        "epa": make_token("sam@epa.example", role="requester", agency="EPA"),
        "epa_finance": make_token("fin@epa.example", role="requester", agency="EPA"),
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    result = runner.invoke(["catalog", "import", str(path)])
    assert result.exit_code == 0, result.output
    return people


def fulfilled_request(client, desk, who: str, slug: str, answers: dict, on: datetime) -> str:
    """A request of ``who`` fulfilled on ``on`` (as imported history would hold it)."""
    offering = client.get(f"/api/v1/catalog/services/{slug}",
                          headers=desk[who]).json["offerings"][0]["id"]
    created = client.post("/api/v1/requests", headers=desk[who],
                          json={"title": f"{slug} for {who}", "offering_id": offering,
                                "answers": answers})
    assert created.status_code == 201, created.json
    number = created.json["number"]
    for name in ("start", "fulfil"):
        state = client.get(f"/api/v1/requests/{number}", headers=desk["admin"]).json["state"]
        if state == "fulfilled":
            break
        if name == "start" and state != "submitted":
            continue
        moved = client.post(f"/api/v1/requests/{number}/transitions",
                            headers=desk["admin" if name == "start" else "agent"],
                            json={"name": name})
        assert moved.status_code == 200, moved.json
    app = client.application
    with app.app_context(), app.extensions["itsm"].Session() as session:
        from itsm.plugins.catalog.models import ServiceRequest

        session.execute(update(ServiceRequest).where(ServiceRequest.id == select(
            Record.id).where(Record.number == number).scalar_subquery()).values(
            fulfilled_at=on))
        session.commit()
    return number


@pytest.fixture
def november(client, desk, runner):
    """DOT: 2 + 1 laptops set up, 10 mailboxes all month, 1.5 h of consulting;
    EPA: 4 mailboxes from the 16th, 2 TB of archive; one DOT request in December."""
    dot_1 = fulfilled_request(client, desk, "dot", "laptop-setup", {"quantity": 2},
                              datetime(2026, 11, 3, 15, tzinfo=UTC))
    fulfilled_request(client, desk, "dot", "laptop-setup", {"quantity": 1},
                      datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    fulfilled_request(client, desk, "dot", "laptop-setup", {"quantity": 7},
                      datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    ask = fulfilled_request(client, desk, "dot", "consulting", {"topic": "GIS"},
                            datetime(2026, 11, 12, tzinfo=UTC))
    for args in (["DOT", "Mailbox", "10", "--from", "2026-10-01"],
                 ["EPA", "mailbox", "4", "--from", "2026-11-16"],
                 ["EPA", "Archive storage", "2", "--from", "2026-01-01", "--until",
                  "2027-12-31"]):
        result = runner.invoke(["billing", "subscribe", *args])
        assert result.exit_code == 0, result.output
    result = runner.invoke(["billing", "time", ask, "90", "Consulting", "--on", "2026-11-12"])
    assert result.exit_code == 0, result.output
    for agency, email in (("DOT", "fin@dot.example"), ("EPA", "fin@epa.example")):
        assert runner.invoke(["billing", "contact", agency, email]).exit_code == 0
    return {"first_request": dot_1}


def compute(client, desk, agency: str, period: str = "2026-11") -> dict:
    response = client.post("/api/v1/billing/statements", headers=desk["admin"],
                           json={"agency": agency, "period": period})
    assert response.status_code == 201, response.json
    return response.json


def test_statements_equal_the_hand_computation(client, desk, november):
    dot = compute(client, desk, "DOT")
    lines = [(line["kind"], line["quantity"], line["unit_price"], line["amount"])
             for line in dot["lines"]]
    assert lines == [
        ("one_time", "2.00", "120.00", "240.00"),   # 2 laptops on Nov 3
        ("one_time", "1.00", "120.00", "120.00"),   # 1 laptop on Nov 30, 23:59 UTC
        ("subscription", "10.00", "5.00", "50.00"),  # 10 mailboxes, the whole month
        ("time", "1.50", "90.00", "135.00"),        # 90 minutes of consulting
    ]
    assert dot["total"] == "545.00" and dot["state"] == "draft"
    assert dot["lines"][0]["description"].endswith("Set up laptops")

    epa = compute(client, desk, "EPA")
    assert [(line["description"], line["quantity"], line["unit_price"], line["amount"])
            for line in epa["lines"]] == [
        ("Mailbox per mailbox, November 2026, 15 of 30 days", "4.00", "2.50", "10.00"),
        ("Archive storage per terabyte, November 2026", "2.00", "3.00", "6.00"),
    ]
    assert epa["total"] == "16.00"

    december = compute(client, desk, "DOT", "2026-12")  # the Dec 1 request, not Nov's
    assert [line["quantity"] for line in december["lines"] if line["kind"] == "one_time"] \
        == ["7.00"]


def test_an_issued_statement_never_changes_and_a_credit_lands_on_the_next(
        app, client, desk, november, runner):
    dot = compute(client, desk, "DOT")
    url = f"/api/v1/billing/statements/{dot['id']}"
    assert client.post(f"{url}/issue", headers=desk["admin"]).status_code == 409  # not reviewed
    assert client.post(f"{url}/review", headers=desk["admin"]).json["state"] == "reviewed"
    again = client.post("/api/v1/billing/statements", headers=desk["admin"],
                        json={"agency": "DOT", "period": "2026-11"})
    assert again.status_code == 409 and "reopen" in again.json["error"]["message"]
    issued = client.post(f"{url}/issue", headers=desk["admin"]).json
    assert issued["state"] == "issued" and issued["issued_at"]

    again = client.post("/api/v1/billing/statements", headers=desk["admin"],
                        json={"agency": "DOT", "period": "2026-11"})
    assert again.status_code == 409 and "never changes" in again.json["error"]["message"]
    with app.app_context(), app.extensions["itsm"].Session() as session:  # nor by any code
        line = session.scalar(select(StatementLine).where(
            StatementLine.statement_id == dot["id"]))
        line.amount = Decimal("1.00")
        with pytest.raises(Conflict, match="never changes"):
            session.flush()
        session.rollback()
        session.delete(session.get(Statement, dot["id"]))
        with pytest.raises(Conflict, match="never changes"):
            session.flush()

    bad = client.post(f"{url}/credits", headers=desk["admin"],
                      json={"amount": "-5", "reason": "typo"})
    assert bad.status_code == 422 and "amount" in bad.json["error"]["fields"]
    credit = client.post(f"{url}/credits", headers=desk["admin"],
                         json={"amount": "20.00", "reason": "one mailbox was never used"})
    assert credit.status_code == 201, credit.json
    assert client.get(url, headers=desk["admin"]).json == issued  # unchanged

    december = compute(client, desk, "DOT", "2026-12")
    assert december["lines"][-1] == {
        "position": len(december["lines"]), "kind": "credit", "kind_label": "Credit",
        "key": f"credit:{credit.json['id']}", "service_id": "", "service": "",
        "description": f"Credit on {dot['number']}: one mailbox was never used",
        "quantity": "1.00", "unit_price": "-20.00", "amount": "-20.00"}
    # 7 laptops + 10 mailboxes - the credit
    assert december["total"] == str(Decimal("840.00") + Decimal("50.00") - Decimal("20.00"))
    assert compute(client, desk, "DOT", "2026-12")["total"] == december["total"]  # once


def test_agencies_see_only_their_own_issued_statements(client, desk, november):
    for agency in ("DOT", "EPA"):
        statement = compute(client, desk, agency)
        for step in ("review", "issue"):
            client.post(f"/api/v1/billing/statements/{statement['id']}/{step}",
                        headers=desk["admin"])
    draft = compute(client, desk, "DOT", "2026-12")
    listed = client.get("/api/v1/billing/statements", headers=desk["epa_finance"]).json
    assert [(s["agency"], s["period"]) for s in listed["items"]] == [("EPA", "2026-11")]
    dot_nov = next(s for s in client.get("/api/v1/billing/statements",
                                         headers=desk["admin"]).json["items"]
                   if s["agency"] == "DOT" and s["period"] == "2026-11")
    assert client.get(f"/api/v1/billing/statements/{dot_nov['id']}",
                      headers=desk["epa_finance"]).status_code == 404
    assert client.get(f"/api/v1/billing/statements/{dot_nov['id']}",
                      headers=desk["dot_finance"]).status_code == 200
    assert client.get(f"/api/v1/billing/statements/{draft['id']}",  # drafts stay inside
                      headers=desk["dot_finance"]).status_code == 404
    assert client.get("/api/v1/billing/statements", headers=desk["dot"]).status_code == 403
    assert client.get("/api/v1/billing/statements", headers=desk["agent"]).status_code == 403
    assert client.post("/api/v1/billing/statements", headers=desk["dot_finance"],
                       json={"agency": "DOT", "period": "2026-11"}).status_code == 403
    assert client.get("/api/v1/billing/subscriptions",
                      headers=desk["epa_finance"]).status_code == 403


def test_bad_input_gets_field_messages(client, desk, november, runner):
    for body, field in (({"agency": "DOT", "period": "2026-13"}, "period"),
                        ({"agency": "NOPE", "period": "2026-11"}, "agency"),
                        ({"agency": "DOT"}, "period")):
        response = client.post("/api/v1/billing/statements", headers=desk["admin"], json=body)
        error = response.json["error"]
        assert response.status_code in (404, 422) and field in error["fields"], body
    response = client.post("/api/v1/billing/subscriptions", headers=desk["admin"], json={
        "agency": "DOT", "service": "Laptop setup", "quantity": 3, "starts_on": "2026-11-01"})
    assert response.status_code == 422
    assert "monthly" in response.json["error"]["fields"]["service"][0]
    response = client.post("/api/v1/billing/subscriptions", headers=desk["admin"], json={
        "agency": "DOT", "service": "Mailbox", "quantity": 3, "starts_on": "2026-11-01",
        "ends_on": "2026-10-01"})
    assert response.status_code == 422 and "ends_on" in response.json["error"]["fields"]
    result = runner.invoke(["billing", "statement", "DOT", "November"])
    assert result.exit_code == 1 and "YYYY-MM" in result.output
    assert "Traceback" not in result.output


def test_a_statement_exports_as_csv_and_as_a_pdf_with_its_figures(
        client, desk, november, runner, tmp_path):
    dot = compute(client, desk, "DOT")
    result = runner.invoke(["billing", "export", str(dot["id"])])
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()
    assert rows[0].startswith("statement,agency,period,state,line,kind")
    assert rows[-1].endswith(",Total,,,,,545.00,USD")
    assert len(rows) == 1 + 4 + 1

    pdf = tmp_path / "statement.pdf"
    result = runner.invoke(["billing", "export", str(dot["id"]), "--format", "pdf",
                            "-o", str(pdf)])
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF")
    if not shutil.which("pdftotext"):
        pytest.skip("poppler-utils is not installed: apt-get install poppler-utils")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "Agency DOT" in text and "2026-11" in text and "545.00 USD" in text
    assert f"Statement {dot['number']}" in text  # the PDF keeps its statement heading
    assert "Set up laptops" in text
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True)
    assert (tmp_path / "page-1.png").stat().st_size > 5_000


def sign_in(client, email: str) -> str:
    token = TOKEN.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302
    with client.session_transaction() as state:
        return state["csrf"]


def test_billing_staff_issue_and_a_contact_downloads_in_the_portal(
        app, client, desk, november, make_token):
    make_token("money@it.example", role="admin", password=PASSWORD)
    csrf = sign_in(client, "money@it.example")
    page = client.post("/billing/statements", data={"agency": "DOT", "period": "2026-13",
                                                    "csrf_token": csrf})
    assert page.status_code == 422 and "a month written YYYY-MM" in page.text
    page = client.post("/billing/statements", data={"agency": "DOT", "period": "2026-11",
                                                    "csrf_token": csrf})
    assert page.status_code == 302
    url = page.headers["Location"]
    text = client.get(url).text
    assert "545.00 USD" in text and "Mark reviewed" in text
    number = re.search(r"<h1[^>]*>Statement (ST\S+)</h1>", text).group(1)
    assert text.count(f"Statement {number}<") == 1  # one heading; the title says it too
    client.post(f"{url}/review", data={"csrf_token": csrf})
    refused = client.post(f"{url}/issue", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Tick the box" in refused.text and "Reviewed" in refused.text  # not issued
    client.post(f"{url}/issue", data={"csrf_token": csrf, "confirm": "yes"})
    assert "Record the credit" in client.get(url).text
    client.post("/logout", data={"csrf_token": csrf})

    # The agency's billing contact: created by the directory or an admin, with a password.
    with app.app_context(), app.extensions["itsm"].Session() as session:
        from itsm.core import auth
        from itsm.core.models import User

        user = session.scalar(select(User).where(User.email == "fin@dot.example"))
        auth.set_password(session, user, PASSWORD)
        session.commit()
    sign_in(client, "fin@dot.example")
    listing = client.get("/billing/statements").text
    assert "545.00 USD" in listing and "Compute draft" not in listing
    assert "Statements" in client.get("/home", follow_redirects=True).text
    detail = client.get(url).text
    assert "Mark reviewed" not in detail and "Record the credit" not in detail
    csv_file = client.get(f"{url}.csv")
    assert csv_file.status_code == 200 and csv_file.mimetype == "text/csv"
    assert "545.00" in csv_file.text
    pdf = client.get(f"{url}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_a_vendor_plugins_billable_work_is_billed_like_the_catalogs(
        app, client, desk, november):
    # The contract, not the catalog: a facilities plugin that answers
    # itsm_billable_charges (and prices its service through itsm_service_rates) is billed.
    from itsm.core.charges import Charge, Rate
    from itsm.testing import make_plugin

    def itsm_service_rates(session):
        return [Rate("fac-1", "Office moves", Decimal("75.00"), "USD", "per move", "per_use")]

    def itsm_billable_charges(session, start, end, agency_id):
        moved = datetime(2026, 11, 20, tzinfo=UTC)
        if not start <= moved < end:
            return None
        return [Charge("facilities:WO-7", agency_id, "fac-1", "Office moves",
                       "WO-7 Move two desks", Decimal(2), Decimal("75.00"), "USD", moved)]

    host = app.extensions["itsm"].host
    host.pm.register(make_plugin("moves", itsm_service_rates=itsm_service_rates,
                                 itsm_billable_charges=itsm_billable_charges), "moves")
    try:
        epa = compute(client, desk, "EPA")
    finally:
        host.pm.unregister(name="moves")
    assert epa["lines"][0] == {
        "position": 1, "kind": "one_time", "kind_label": "Fulfilled request",
        "key": "facilities:WO-7", "service_id": "fac-1", "service": "Office moves",
        "description": "WO-7 Move two desks", "quantity": "2.00", "unit_price": "75.00",
        "amount": "150.00"}
    assert epa["total"] == "166.00"


def test_an_issued_statement_is_announced_to_its_agencys_billing_contacts(
        app, client, desk, november):
    for agency in ("DOT", "EPA"):
        statement = compute(client, desk, agency)
        client.post(f"/api/v1/billing/statements/{statement['id']}/review",
                    headers=desk["admin"])
        if agency == "DOT":  # EPA's stays reviewed: nobody hears of it yet
            client.post(f"/api/v1/billing/statements/{statement['id']}/issue",
                        headers=desk["admin"])
    itsm = app.extensions["itsm"]
    with app.app_context():
        itsm.outbox.drain()
    with itsm.Session() as session:
        events = session.scalars(select(Event).where(
            Event.name == "billing.statement_issued")).all()
        assert [(e.payload["agency"], e.payload["period"]) for e in events] == [
            ("DOT", "2026-11")]
        statement_id = events[0].payload["statement"]
        assert events[0].payload["link_path"] == f"/billing/statements/{statement_id}"
        told = session.scalars(select(Delivery.recipient).where(
            Delivery.event_id == events[0].id)).all()
    # Only DOT's billing contact (the log channel also keeps its own line of every event).
    assert [r for r in told if "@" in r] == ["fin@dot.example"]
