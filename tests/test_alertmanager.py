"""Prometheus Alertmanager webhook: alert groups open, update and resolve incidents.

Through the Flask test client, then with a real Alertmanager (the Debian package
``prometheus-alertmanager``) sending its webhook to itsm served on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

import itsm.adapters.alertmanager as alertmanager_plugin
import itsm.plugins.incident as incident_plugin
from itsm.adapters.alertmanager.models import AlertIncident
from itsm.core.models import JournalEntry, Record
from itsm.testing import schema_drift

URL = "/api/v1/integrations/alertmanager"
BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, alertmanager_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config,
            "plugins.alertmanager.rules": [
                {"match": {"team": "network"}, "set": {"category": "network"}},
                {"match": {"team": ["db", "storage"]}, "set": {"urgency": 1}}],
            "plugins.alertmanager.severity.page": [1, 2]}


@pytest.fixture
def bot(make_token):
    return make_token("alerts@example.org", role="agent")


def alert(name="DiskFull", status="firing", **labels):
    ends = "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T10:05:00Z"
    return {"status": status, "labels": {"alertname": name, **labels},
            "annotations": {"summary": f"{name} is happening"},
            "startsAt": "2026-01-01T10:00:00Z", "endsAt": ends,
            "generatorURL": "http://prometheus.example/graph",
            "fingerprint": f"{abs(hash((name, *sorted(labels.items())))):x}"}


def payload(*alerts, status="firing", key='{}:{alertname="DiskFull"}'):
    common = dict(alerts[0]["labels"])
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    return {"version": "4", "groupKey": key, "status": status, "receiver": "itsm",
            "groupLabels": {"alertname": common.get("alertname", "")},
            "commonLabels": common, "commonAnnotations": {},
            "externalURL": "http://alertmanager.example", "truncatedAlerts": 0,
            "alerts": list(alerts)}


def incidents(itsm):
    with itsm.Session() as session:
        found = session.scalars(select(Record).where(Record.type == "incident")
                                .order_by(Record.id)).all()
        for record in found:  # load every column before the session closes
            session.refresh(record)
            session.expunge(record)
        return found


def notes(itsm, record_id):
    with itsm.Session() as session:
        return session.scalars(select(JournalEntry.body).where(
            JournalEntry.record_id == record_id, JournalEntry.kind == "work_noted")
            .order_by(JournalEntry.id)).all()


def test_firing_opens_one_incident_with_mapped_fields(client, bot, itsm):
    response = client.post(URL, headers=bot, json=payload(alert(
        severity="critical", service="payments", team="network", instance="db1")))
    assert response.status_code == 201, response.json
    number = response.json["number"]
    assert response.json["action"] == "created"
    incident = client.get(f"/api/v1/incidents/{number}", headers=bot).json
    assert incident["channel"] == "monitoring"
    assert (incident["impact"], incident["urgency"], incident["priority"]) == (1, 1, 1)
    assert incident["affected_service"] == "payments"
    assert incident["category"] == "network"
    assert incident["title"].startswith("DiskFull on payments")
    assert "team=network" in incident["description"]
    assert incident["requester"] == "alerts@example.org"
    assert len(incidents(itsm)) == 1


def test_rules_and_severity_table_from_settings(client, bot):
    low = client.post(URL, headers=bot, json=payload(alert(severity="info"), key="a")).json
    warn = client.post(URL, headers=bot, json=payload(
        alert(severity="warning", team="db"), key="b")).json
    page = client.post(URL, headers=bot, json=payload(alert(severity="page"), key="c")).json
    got = {}
    for name, result in (("low", low), ("warn", warn), ("page", page)):
        body = client.get(f"/api/v1/incidents/{result['number']}", headers=bot).json
        got[name] = (body["impact"], body["urgency"])
    assert got == {"low": (3, 3), "warn": (2, 1), "page": (1, 2)}


def test_same_group_updates_the_incident_and_repeats_add_nothing(client, bot, itsm):
    first = payload(alert(severity="warning"))
    number = client.post(URL, headers=bot, json=first).json["number"]
    again = client.post(URL, headers=bot, json=first)
    assert again.status_code == 200 and again.json == {
        "action": "unchanged", "number": number, "state": "new"}
    second = payload(alert(severity="warning"), alert(severity="warning", instance="db2"))
    updated = client.post(URL, headers=bot, json=second)
    assert updated.json["action"] == "updated" and updated.json["number"] == number
    client.post(URL, headers=bot, json=second)  # Alertmanager repeating itself
    [record] = incidents(itsm)
    [note] = notes(itsm, record.id)
    assert "2 alert(s) firing" in note and "instance=db2" in note


def test_resolved_adds_a_note_and_resolves_then_firing_again_opens_a_new_one(
        client, bot, itsm):
    number = client.post(URL, headers=bot, json=payload(alert())).json["number"]
    resolved = payload(alert(status="resolved"), status="resolved")
    response = client.post(URL, headers=bot, json=resolved)
    assert response.status_code == 200, response.json
    assert response.json == {"action": "resolved", "number": number, "state": "resolved"}
    incident = client.get(f"/api/v1/incidents/{number}", headers=bot).json
    assert incident["state"] == "resolved" and incident["resolution_code"] == "solved"
    assert "every alert of this group is resolved" in incident["resolution_notes"]
    [record] = incidents(itsm)
    assert any("resolved" in n for n in notes(itsm, record.id))
    assert client.post(URL, headers=bot, json=resolved).json["action"] == "unchanged"
    again = client.post(URL, headers=bot, json=payload(alert()))
    assert again.status_code == 201 and again.json["number"] != number
    assert len(incidents(itsm)) == 2


def test_resolve_policy_off_only_notes(app, client, bot, itsm):
    itsm.settings["plugins.alertmanager.resolve_on_resolved"] = False
    number = client.post(URL, headers=bot, json=payload(alert())).json["number"]
    response = client.post(URL, headers=bot, json=payload(alert(status="resolved"),
                                                          status="resolved"))
    assert response.json == {"action": "updated", "number": number, "state": "new"}


def test_resolved_for_an_unknown_group_is_ignored(client, bot, itsm):
    response = client.post(URL, headers=bot, json=payload(alert(status="resolved"),
                                                          status="resolved"))
    assert response.status_code == 200 and response.json["action"] == "ignored"
    assert incidents(itsm) == []


@pytest.mark.parametrize("body, field", [
    ({**payload(alert()), "version": "3"}, "version"),
    ({**payload(alert()), "status": "burning"}, "status"),
    ({k: v for k, v in payload(alert()).items() if k != "groupKey"}, "groupKey"),
    ({**payload(alert()), "alerts": []}, "alerts"),
    ({**payload(alert()), "alerts": [{"labels": {}}]}, "alerts"),
])
def test_bad_payload_is_refused_with_the_field(client, bot, itsm, body, field):
    response = client.post(URL, headers=bot, json=body)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["fields"]
    assert incidents(itsm) == []


def test_no_token_is_401_and_requesters_may_not_open_monitoring_incidents(
        client, make_token, itsm):
    response = client.post(URL, json=payload(alert()))
    assert response.status_code == 401
    requester = make_token("pat@example.org", role="requester")
    assert client.post(URL, headers=requester, json=payload(alert())).status_code == 403
    assert incidents(itsm) == []


def test_route_is_in_the_openapi_document(client):
    document = client.get("/api/v1/openapi.json").json
    assert "post" in document["paths"][URL]


def test_migration_creates_exactly_what_the_model_describes(itsm):
    assert schema_drift(itsm.engine, ["alert_incident"]) == []


# -- served for real -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_json(url, body, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_concurrent_deliveries_open_one_incident(live_server, bot, itsm):
    body = payload(alert(severity="critical"))
    results: list[int] = []

    def deliver():
        results.append(post_json(live_server + URL, body, bot)[0])

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results)[-1] < 300, results
    assert len(incidents(itsm)) == 1
    assert results.count(201) == 1
    with itsm.Session() as session:
        assert session.scalar(select(func.count()).select_from(AlertIncident)) == 1


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager is not installed "
                    "(apt-get install prometheus-alertmanager)")
def test_a_real_alertmanager_opens_and_resolves_an_incident(live_server, bot, itsm, tmp_path):
    token = bot["Authorization"].removeprefix("Bearer ")
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "route": {"receiver": "itsm", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "itsm", "webhook_configs": [{
            "url": live_server + URL, "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": token}}}]}],
    }))
    storage = tmp_path / "alertmanager-data"
    storage.mkdir()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--storage.path={storage}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v2"
    try:
        def ready():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready",
                                            timeout=2) as r:
                    return r.status == 200
            except OSError:
                assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
                return False

        wait_for(ready, 30, "alertmanager to start")
        labels = {"alertname": "RealDiskFull", "severity": "critical",
                  "service": "mail", "instance": "mx1"}
        now = datetime.now(UTC)
        status, text = post_json(api + "/alerts", [{
            "labels": labels, "annotations": {"summary": "disk almost full"},
            "startsAt": now.isoformat(), "generatorURL": "http://prometheus.example/g"}])
        assert status == 200, text

        def opened():
            found = incidents(itsm)
            return found if found else None

        [record] = wait_for(opened, 60, "the incident")
        assert record.title.startswith("RealDiskFull on mail")
        assert (record.impact, record.urgency, record.affected_service) == (1, 1, "mail")
        status, text = post_json(api + "/alerts", [{
            "labels": labels, "annotations": {"summary": "disk almost full"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(milliseconds=10)).isoformat()}])
        assert status == 200, text

        def resolved():
            with itsm.Session() as session:
                return session.get(Record, record.id).state == "resolved"

        wait_for(resolved, 90, "the incident to be resolved")
        assert len(incidents(itsm)) == 1
        assert any("resolved" in n for n in notes(itsm, record.id))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
