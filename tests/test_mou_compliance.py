"""Compliance with an agency's agreement, counted by hand: incidents opened through the
API, their clocks moved with SQL where the story needs a breach, then the report as JSON,
CSV, the CLI and the printable page, and the relationship manager's alert (once)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from test_mou import DOH_TARGETS, DOT_TARGETS, agreement, incident, move, sign_in

import itsm.plugins.incident
import itsm.plugins.mou
from itsm.core.models import Delivery, Event, Record
from itsm.core.sla_models import SlaClock
from itsm.plugins.mou import alerts

API = "/api/v1"
RESOLVE = {"resolution_code": "solved", "resolution_notes": "fixed"}
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}


@pytest.fixture
def itsm_plugins():
    return [itsm.plugins.mou, itsm.plugins.incident]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.mou.notify_channels": ["log"]}


@pytest.fixture
def people(make_token, app):
    from itsm.core.demo import ensure_group

    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        for name in ("Service Desk", "Network", "Applications"):
            ensure_group(session, name)
        session.commit()
    return {"agent": make_token("ann@example.org", role="agent"),
            "dot": make_token("pat@dot.example.org", role="requester", agency="DOT"),
            "doh": make_token("sam@doh.example.org", role="requester", agency="DOH")}


def opened(app, number, day, **clocks):
    """Move the record's opening to ``day`` of October 2026 and set clock columns."""
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        record_id = session.scalar(select(Record.id).where(Record.number == number))
        session.execute(update(Record).where(Record.id == record_id).values(
            created_at=datetime(2026, day[0], day[1], 9, tzinfo=UTC)))
        for metric, values in clocks.items():
            done = session.execute(update(SlaClock).where(
                SlaClock.record_id == record_id, SlaClock.metric == metric).values(**values))
            assert done.rowcount == 1
        session.commit()


def work(client, headers, number, *moves):
    for name in moves:
        fields = RESOLVE if name == "resolve" else {}
        response = client.post(f"{API}/incidents/{number}/transitions", headers=headers,
                               json={"name": name, "fields": fields})
        assert response.status_code == 200, response.json


@pytest.fixture
def october(app, client, people):
    """DOT's incidents of October 2026, with the outcome of each clock known."""
    agent = people["agent"]
    dot = agreement(client, agent, "DOT", DOT_TARGETS)
    agreement(client, agent, "DOH", DOH_TARGETS)
    past = datetime(2026, 10, 20, tzinfo=UTC)  # the resolution of "three" fell due
    one = incident(client, people["dot"])["number"]           # both met
    work(client, agent, one, "start", "resolve")
    opened(app, one, (10, 6))
    two = incident(client, people["dot"])["number"]           # resolved late
    work(client, agent, two, "start", "resolve")
    opened(app, two, (10, 7), resolution={"breached": True})
    three = incident(client, people["dot"])["number"]         # still open, past due
    work(client, agent, three, "start")
    opened(app, three, (10, 14), resolution={"breach_due_at": past, "breached": False})
    four = incident(client, people["dot"])["number"]          # open, within target
    opened(app, four, (10, 15))
    urgent = incident(client, people["dot"], impact=1, urgency=1)["number"]  # catch-all
    work(client, agent, urgent, "start", "resolve")
    opened(app, urgent, (10, 21))
    elsewhere = incident(client, people["doh"])["number"]     # another agency
    work(client, agent, elsewhere, "start")
    opened(app, elsewhere, (10, 8), resolution={"breached": True})
    earlier = incident(client, people["dot"])["number"]       # before the period
    opened(app, earlier, (9, 30), resolution={"breached": True})
    return dot


def by_target(data):
    return {(t["target"], t["metric"]): t for t in data["targets"]}


def test_report_over_real_incidents_matches_the_hand_count(client, people, october):
    data = client.get(f"{API}/mou/compliance", headers=people["agent"],
                      query_string={"agency": "DOT", **OCTOBER}).json
    assert data["agreement"] == october and data["granularity"] == "week"
    assert data["periods"] == ["2026-W40", "2026-W41", "2026-W42", "2026-W43", "2026-W44"]
    lines = by_target(data)
    p3_response, p3_resolution = (lines[("any service P3", m)] for m in ("response",
                                                                         "resolution"))
    assert (p3_response["measured"], p3_response["met"], p3_response["breached"]) == (3, 3, 0)
    assert p3_response["compliance"] == 100.0 and not p3_response["below_target"]
    assert (p3_resolution["measured"], p3_resolution["met"],
            p3_resolution["breached"]) == (3, 1, 2)
    assert p3_resolution["compliance"] == 33.3 and p3_resolution["below_target"]
    assert [(p["period"], p["measured"], p["compliance"]) for p in p3_resolution["trend"]] \
        == [("2026-W40", 0, None), ("2026-W41", 2, 50.0), ("2026-W42", 1, 0.0),
            ("2026-W43", 0, None), ("2026-W44", 0, None)]
    catch_all = lines[("any service P*", "resolution")]
    assert (catch_all["measured"], catch_all["met"]) == (1, 1)
    assert lines[("Traffic management P*", "response")]["compliance"] is None


def test_report_as_csv_cli_and_printable_page(app, client, runner, people, october):
    query = {"agency": "DOT", **OCTOBER}
    sheet = client.get(f"{API}/mou/compliance", headers=people["agent"],
                       query_string={**query, "format": "csv"})
    assert sheet.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    total = [r for r in rows if r["target"] == "any service P3"
             and r["metric"] == "resolution" and r["period"] == "total"]
    assert total == [{"agency": "DOT", "agreement": october, "target": "any service P3",
                      "metric": "resolution", "period": "total", "measured": "3", "met": "1",
                      "breached": "2", "compliance": "33.3", "required_percent": "95.0"}]
    cli = runner.invoke(["mou", "compliance", "DOT", "--from", "2026-10-01", "--to",
                         "2026-10-31", "--format", "json"])
    assert cli.exit_code == 0, cli.output
    api = client.get(f"{API}/mou/compliance", headers=people["agent"], query_string=query)
    assert json.loads(cli.output)["targets"] == api.json["targets"]
    text = runner.invoke(["mou", "compliance", "dot", "--from", "2026-10-01"])
    assert "any service P3" in text.output and "BELOW" in text.output
    for bad in (["mou", "compliance", "NOPE"],
                ["mou", "compliance", "DOT", "--from", "2026-10-31", "--to", "2026-10-01"],
                ["mou", "compliance", "DOT", "--from", "yesterday"]):
        result = runner.invoke(bad)
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, bad
    sign_in(client, app, "ann@example.org")
    page = client.get("/mou/compliance", query_string=query)
    assert page.status_code == 200
    assert page.text.count("<svg class=\"mou-chart\"") == len(api.json["targets"])
    # The charts are drawn on the server: no inline script (the console's own file only).
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None
    assert "below target" in page.text
    assert client.get("/mou/compliance", query_string={**query, "to": "x"}).status_code == 422


def test_report_refuses_bad_input_with_field_messages(client, people, october):
    agent = people["agent"]
    for query, field in (({"agency": "DOT", "from": "2026-13-01"}, "from"),
                         ({"agency": "DOT", "format": "xml"}, "format"),
                         ({"from": "2026-10-01"}, "agency")):
        response = client.get(f"{API}/mou/compliance", headers=agent, query_string=query)
        assert response.status_code == 422 and field in response.json["error"]["fields"]
    assert client.get(f"{API}/mou/compliance", headers=agent,
                      query_string={"agency": "EPA"}).status_code == 404


def test_relationship_manager_is_alerted_once_per_period(app, client, people, october):
    state = app.extensions["itsm"]
    end_of_october = datetime(2026, 10, 31, 12, tzinfo=UTC)
    with app.app_context():
        # DOT's P3 resolution is at 33.3 % of 95 %, DOH's at 0 % of 90 %.
        assert alerts.check(state, end_of_october) == 2
        state.hook.itsm_periodic(now=end_of_october)       # the worker's next cycles
        assert alerts.check(state, end_of_october) == 0
        state.outbox.drain()
    with app.app_context(), state.Session() as session:
        events = session.scalars(select(Event).where(Event.name == alerts.EVENT)).all()
        assert sorted((e.payload["agency"], e.payload["target"], e.payload["metric"],
                       e.payload["compliance"]) for e in events) == [
            ("DOH", "any service P3", "resolution", 0.0),
            ("DOT", "any service P3", "resolution", 33.3)]
        deliveries = session.execute(select(Delivery.channel, Delivery.recipient).where(
            Delivery.event_id.in_([e.id for e in events]))).all()
        assert {("log", "rm@doh.example.org"), ("log", "rm@dot.example.org")} \
            <= set(deliveries)


def test_expired_agreement_sets_no_targets_but_stays_reportable(app, client, people,
                                                                october):
    move(client, people["agent"], october, "expire")
    fresh = incident(client, people["dot"])["number"]
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        source = session.scalar(select(SlaClock.source).join(
            Record, Record.id == SlaClock.record_id).where(Record.number == fresh,
                                                           SlaClock.metric == "response"))
    assert source == "default policy"
    data = client.get(f"{API}/mou/compliance", headers=people["agent"],
                      query_string={"agency": "DOT", **OCTOBER}).json
    assert data["agreement_state"] == "expired"
    assert by_target(data)[("any service P3", "resolution")]["measured"] == 3
