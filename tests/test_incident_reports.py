"""Incident reports: exact figures through the API and the CLI, and who may see them.

The incidents are opened through the service; their timings are then set with SQL
updates (the opening time, the resolution time and each SLA clock), so every figure of
the report is known in advance.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

import itsm.plugins.incident
from itsm.core.auth import Actor
from itsm.core.demo import ensure_group
from itsm.core.models import Record, utcnow
from itsm.core.sla_models import SlaClock
from itsm.plugins.incident.models import Incident
from itsm.plugins.incident.reports import week_label, week_of

GROUPS = ("Network", "Service Desk", "Applications")


@pytest.fixture
def itsm_plugins():
    return [itsm.plugins.incident]


@pytest.fixture
def desk(app):
    """The resolver groups the incident routing names."""
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        for name in GROUPS:
            ensure_group(session, name)
        session.commit()
    return state


def open_incident(app, data: dict, *, created: datetime, moves=()) -> str:
    state = app.extensions["itsm"]
    with app.app_context(), state.unit_of_work(Actor.system()) as service:
        record = service.create("incident", {"impact": 3, "urgency": 3, **data})
        for name, fields in moves:
            service.transition(record, name, fields)
        number, record_id = record.number, record.id
    with app.app_context(), state.Session() as session:
        session.execute(update(Record).where(Record.id == record_id)
                        .values(created_at=created))
        session.commit()
    return number


def set_times(app, number: str, *, resolved: datetime | None = None, **clocks) -> None:
    """``response=dict(started=..., met=..., breached=..., due=..., state=...)``."""
    state = app.extensions["itsm"]
    with app.app_context(), state.Session() as session:
        record_id = session.query(Record.id).filter(Record.number == number).scalar()
        if resolved is not None:
            session.execute(update(Incident).where(Incident.id == record_id)
                            .values(resolved_at=resolved))
        for metric, c in clocks.items():
            values = {"started_at": c["started"], "met_at": c.get("met"),
                      "breached": c.get("breached", False), "breach_due_at": c.get("due"),
                      "state": c.get("state", "met" if c.get("met") else "running")}
            done = session.execute(update(SlaClock).where(
                SlaClock.record_id == record_id, SlaClock.metric == metric).values(**values))
            assert done.rowcount == 1, f"{number} has no {metric} clock"
        session.commit()


RESOLVE = ("resolve", {"resolution_code": "solved", "resolution_notes": "fixed"})


@pytest.fixture
def incidents(app, desk):
    """Six incidents with known timings; five of them opened in the last 90 days."""
    now = utcnow()
    a_at, b_at = now - timedelta(days=20), now - timedelta(days=20, hours=1)
    c_at, d_at = now - timedelta(days=3), now - timedelta(days=1)
    a = open_incident(app, {"title": "VPN drops", "category": "network",
                            "subcategory": "vpn"}, created=a_at, moves=[("start", {}), RESOLVE])
    b = open_incident(app, {"title": "Printer jams", "category": "hardware",
                            "subcategory": "printer"}, created=b_at, moves=[RESOLVE])
    c = open_incident(app, {"title": "Mail slow", "category": "software"}, created=c_at,
                      moves=[("start", {})])
    d = open_incident(app, {"title": "Password expired", "category": "access"},
                      created=d_at)
    open_incident(app, {"title": "Duplicate of the VPN one", "category": "access"},
                  created=d_at, moves=[("cancel", {})])
    old = open_incident(app, {"title": "Old wifi trouble", "category": "network"},
                        created=now - timedelta(days=200))
    # A: answered in 30 min, solved in 4 h, both in time.
    set_times(app, a, resolved=a_at + timedelta(hours=4),
              response={"started": a_at, "met": a_at + timedelta(minutes=30)},
              resolution={"started": a_at, "met": a_at + timedelta(hours=4)})
    # B: answered late after 90 min, solved late after 10 h.
    set_times(app, b, resolved=b_at + timedelta(hours=10),
              response={"started": b_at, "met": b_at + timedelta(minutes=90),
                        "breached": True},
              resolution={"started": b_at, "met": b_at + timedelta(hours=10),
                          "breached": True})
    # C: answered in 60 min; still unsolved past its target (the sweep has not run yet).
    set_times(app, c, response={"started": c_at, "met": c_at + timedelta(minutes=60)},
              resolution={"started": c_at, "due": now - timedelta(hours=1)})
    # D: nothing met, inside both targets: not decided yet.
    set_times(app, d, response={"started": d_at, "due": now + timedelta(hours=2)},
              resolution={"started": d_at, "due": now + timedelta(days=2)})
    return {"a": a, "b": b, "c": c, "d": d, "old": old, "a_at": a_at, "b_at": b_at,
            "c_at": c_at, "d_at": d_at}


def test_agent_gets_exact_figures_from_the_api(client, make_token, incidents):
    response = client.get("/api/v1/incidents/reports/summary?days=90",
                          headers=make_token("manager@example.org", role="agent"))
    assert response.status_code == 200, response.json
    report = response.json
    assert report["counts"]["total"] == 5
    assert report["counts"]["by_state"] == {"cancelled": 1, "in_progress": 1, "new": 1,
                                            "resolved": 2}
    assert report["counts"]["by_category"] == {"access": 2, "hardware": 1, "network": 1,
                                               "software": 1}
    # impact 3 x urgency 3 -> priority 5 on the default matrix
    assert report["counts"]["by_priority"] == {"5": 5}
    assert report["counts"]["by_agency"] == {"(none)": 5}
    assert report["mean_minutes"] == {"response": 60.0, "resolution": 420.0}
    assert report["sla"]["response"] == {"met": 2, "breached": 1, "compliance": 66.7}
    assert report["sla"]["resolution"] == {"met": 1, "breached": 2, "compliance": 33.3}
    # Open now, whatever the period: C (Applications), D (Service Desk), the old one.
    assert report["open"] == 3
    assert report["backlog_by_group"] == [{"group": "Applications", "open": 1},
                                          {"group": "Network", "open": 1},
                                          {"group": "Service Desk", "open": 1}]


def test_weeks_count_openings_resolutions_and_top_categories(client, make_token, incidents):
    report = client.get("/api/v1/incidents/reports/summary?days=30",
                        headers=make_token("manager@example.org")).json
    weeks = {w["week"]: w for w in report["weeks"]}
    assert len(report["weeks"]) in (5, 6)  # every ISO week the 30 days touch
    assert all(w1["start"] < w2["start"] for w1, w2 in zip(report["weeks"],
                                                            report["weeks"][1:], strict=False))
    assert sum(w["opened"] for w in report["weeks"]) == 5
    assert sum(w["resolved"] for w in report["weeks"]) == 2
    a_week = weeks[week_label(week_of(incidents["a_at"]))]
    if week_of(incidents["b_at"]) == week_of(incidents["a_at"]):
        assert a_week["opened"] == 2
        assert a_week["top_categories"] == [{"category": "hardware", "count": 1},
                                            {"category": "network", "count": 1}]
        assert a_week["compliance"] == {"response": 50.0, "resolution": 50.0}
    d_week = weeks[week_label(week_of(incidents["d_at"]))]
    assert {"category": "access", "count": 2} in d_week["top_categories"]


def test_group_narrows_the_report(client, make_token, incidents):
    report = client.get("/api/v1/incidents/reports/summary?days=90&group=Network",
                        headers=make_token("manager@example.org")).json
    assert report["period"]["group"] == "Network"
    assert report["counts"]["total"] == 1
    assert report["mean_minutes"] == {"response": 30.0, "resolution": 240.0}
    assert report["sla"]["resolution"]["compliance"] == 100.0
    assert report["backlog_by_group"] == [{"group": "Network", "open": 1}]


def test_unknown_group_and_bad_days_answer_422_with_the_field(client, make_token, desk):
    headers = make_token("manager@example.org")
    for days in ("0", "abc", "3651", "-5", "1.5"):
        response = client.get(f"/api/v1/incidents/reports/summary?days={days}",
                              headers=headers)
        assert response.status_code == 422, days
        assert "days" in response.json["error"]["fields"]
    response = client.get("/api/v1/incidents/reports/summary?group=Nobody", headers=headers)
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"group": ["unknown group"]}


def test_requester_may_not_see_reports(client, make_token, incidents):
    response = client.get("/api/v1/incidents/reports/summary",
                          headers=make_token("pat@example.org", role="requester",
                                             agency="DOT"))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_reports_need_authentication(client, desk):
    assert client.get("/api/v1/incidents/reports/summary").status_code == 401


def test_empty_install_reports_zeros_not_errors(client, make_token, desk):
    report = client.get("/api/v1/incidents/reports/summary?days=7",
                        headers=make_token("manager@example.org")).json
    assert report["counts"]["total"] == 0
    assert report["mean_minutes"] == {"response": None, "resolution": None}
    assert report["sla"]["response"] == {"met": 0, "breached": 0, "compliance": None}
    assert report["backlog_by_group"] == [] and report["open"] == 0
    assert all(w["opened"] == 0 for w in report["weeks"]) and len(report["weeks"]) in (2, 3)


def test_openapi_document_lists_the_report_route(client):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/incidents/reports/summary"]["get"]
    assert "Incident" in operation["tags"]
    assert {p["name"] for p in operation["parameters"]} == {"days", "group"}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema  # the ReportSummary schema, by reference


def test_cli_report_as_json_matches_the_api(runner, client, make_token, incidents):
    result = runner.invoke(["incident", "report", "--json"])
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.output)
    from_api = client.get("/api/v1/incidents/reports/summary?days=90",
                          headers=make_token("manager@example.org")).json
    for key in ("counts", "mean_minutes", "sla", "open", "backlog_by_group"):
        assert from_cli[key] == from_api[key]
    assert from_cli["mean_minutes"] == {"response": 60.0, "resolution": 420.0}


def test_cli_report_prints_a_readable_table(runner, incidents):
    result = runner.invoke(["incident", "report", "--days", "90"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "opened 5; open now 3" in result.output
    response = next(line for line in lines if line.startswith("Response"))
    assert response.split() == ["Response", "1", "h", "2", "1", "66.7", "%"]
    resolution = next(line for line in lines if line.startswith("Resolution"))
    assert resolution.split() == ["Resolution", "7", "h", "1", "2", "33.3", "%"]
    assert "By priority  P5: 5" in result.output
    assert "By category  access: 2, hardware: 1, network: 1, software: 1" in result.output
    assert any(line.strip().startswith("Applications") for line in lines)


def test_cli_report_refuses_bad_input_in_one_line(runner, desk):
    result = runner.invoke(["incident", "report", "--days", "0"])
    assert result.exit_code != 0
    result = runner.invoke(["incident", "report", "--group", "Nobody"])
    assert result.exit_code == 1
    assert "no assignment group named 'Nobody'" in result.output
