"""Webhooks against a real HTTP receiver on 127.0.0.1: signed JSON, retries while the
receiver is down, every event delivered exactly once per subscription when it is back."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sample_plugin
from sqlalchemy import select, update

import itsm.adapters.webhooks as webhooks_plugin
from itsm.adapters.webhooks.delivery import SCHEMA
from itsm.core.models import Delivery, utcnow
from itsm.testing import schema_drift

SECRET_A = "first-subscription-secret"
SECRET_B = "second-subscription-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """A webhook receiver: records each POST with its headers, checks signatures against
    the secrets it knows, and can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict] = []
        self.secrets: dict[str, str] = {}  # path -> secret
        self.status = 200
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                secret = receiver.secrets.get(self.path, "")
                expected = "sha256=" + hmac.new(secret.encode(), body,
                                                hashlib.sha256).hexdigest()
                receiver.received.append({
                    "path": self.path, "body": json.loads(body), "headers": dict(self.headers),
                    "signed": hmac.compare_digest(expected,
                                                  self.headers.get("X-Itsm-Signature", ""))})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver():
    peer = Receiver().start()
    yield peer
    peer.stop()


@pytest.fixture
def itsm_plugins():
    return [sample_plugin, webhooks_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.initial": []}  # no log channel: only webhooks count


def subscribe(client, admin, receiver, path, events, secret, fmt="json"):
    receiver.secrets[path] = secret
    response = client.post("/api/v1/webhooks", headers=admin, json={
        "url": receiver.url + path, "events": events, "secret": secret, "format": fmt})
    assert response.status_code == 201, response.json
    return response.json


def open_ticket(client, agent, title="Printer on fire"):
    response = client.post("/api/v1/tickets", json={"title": title}, headers=agent)
    assert response.status_code == 201, response.json
    return response.json["number"]


def make_due(itsm):
    with itsm.Session() as session:
        session.execute(update(Delivery).where(Delivery.state == "pending")
                        .values(next_attempt_at=utcnow()))
        session.commit()


def deliveries(itsm, channel="webhook"):
    with itsm.Session() as session:
        return session.scalars(select(Delivery).where(Delivery.channel == channel)
                               .order_by(Delivery.id)).all()


def test_subscriber_receives_the_documented_signed_payload(client, admin, agent, itsm,
                                                           receiver):
    sub = subscribe(client, admin, receiver, "/hooks/a", ["record.created"], SECRET_A)
    number = open_ticket(client, agent)
    stats = itsm.outbox.drain()
    assert stats.delivered == 1
    [got] = receiver.received
    assert got["signed"]
    body, headers = got["body"], got["headers"]
    assert set(body) == {"schema", "id", "event", "time", "record", "actor", "data"}
    assert body["schema"] == SCHEMA and body["event"] == "record.created"
    assert body["record"]["number"] == number and body["actor"] == "agent@example.org"
    assert headers["X-Itsm-Event-Id"] == str(body["id"])
    assert headers["X-Itsm-Event"] == "record.created"
    assert headers["Content-Type"] == "application/json"
    assert sub["secret"] == SECRET_A


def test_slack_format_sends_text_only_and_patterns_filter_events(client, admin, agent, itsm,
                                                                 receiver):
    subscribe(client, admin, receiver, "/slack", ["record.commented"], SECRET_A, "slack")
    subscribe(client, admin, receiver, "/all", ["*"], SECRET_B)
    number = open_ticket(client, agent, "Mail is down")
    client.post(f"/api/v1/tickets/{number}/comments", headers=agent,
                json={"body": "Looking into it", "public": True})
    itsm.outbox.drain()
    by_path = {}
    for got in receiver.received:
        assert got["signed"]
        by_path.setdefault(got["path"], []).append(got)
    assert [g["body"] for g in by_path["/slack"]] == [
        {"text": f"[{number}] Mail is down: record.commented by agent@example.org "
                 "(state new)"}]
    assert sorted(g["body"]["event"] for g in by_path["/all"]) == [
        "record.commented", "record.created"]


def test_receiver_down_is_retried_with_backoff_and_each_event_arrives_once(
        client, admin, agent, itsm, receiver):
    subscribe(client, admin, receiver, "/a", ["record.*"], SECRET_A)
    subscribe(client, admin, receiver, "/b", ["record.created"], SECRET_B)
    receiver.stop()

    started = time.monotonic()
    numbers = [open_ticket(client, agent, f"Outage {i}") for i in range(3)]
    assert time.monotonic() - started < 3  # nothing is sent inside the requests

    first = itsm.outbox.drain()
    assert (first.delivered, first.failed) == (0, 6)
    rows = deliveries(itsm)
    assert {(d.state, d.attempts) for d in rows} == {("pending", 1)}
    backoff = itsm.settings["outbox.backoff_seconds"]
    for d in rows:
        assert "Connection refused" in d.last_error or "URLError" in d.last_error
        wait = (d.next_attempt_at - utcnow()).total_seconds()
        assert backoff - 5 < wait <= backoff
    assert itsm.outbox.drain().failed == 0  # the backoff is respected

    make_due(itsm)
    assert itsm.outbox.drain().failed == 6
    for d in deliveries(itsm):  # exponential: the second wait is twice the first
        assert d.attempts == 2
        assert d.next_attempt_at - utcnow() > timedelta(seconds=2 * backoff - 5)

    receiver.start()
    make_due(itsm)
    assert itsm.outbox.drain().delivered == 6
    make_due(itsm)
    assert itsm.outbox.drain().delivered == 0
    seen = [(g["path"], g["body"]["id"]) for g in receiver.received]
    assert len(seen) == len(set(seen)) == 6  # once per event and subscription
    assert all(g["signed"] for g in receiver.received)
    assert sorted(g["body"]["record"]["number"] for g in receiver.received
                  if g["path"] == "/b") == sorted(numbers)
    assert {d.state for d in deliveries(itsm)} == {"delivered"}


def test_receiver_error_status_counts_as_a_failure(client, admin, agent, itsm, receiver):
    subscribe(client, admin, receiver, "/a", ["*"], SECRET_A)
    receiver.status = 503
    open_ticket(client, agent)
    assert itsm.outbox.drain().failed == 1
    [d] = deliveries(itsm)
    assert "503" in d.last_error and d.state == "pending"


def test_in_process_worker_delivers_after_the_request_without_slowing_it(
        client, admin, agent, itsm, receiver):
    subscribe(client, admin, receiver, "/a", ["record.created"], SECRET_A)
    receiver.stop()
    itsm.outbox.start_thread(interval=0.2)
    started = time.monotonic()
    open_ticket(client, agent)
    assert time.monotonic() - started < 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(d.attempts for d in deliveries(itsm)):
        time.sleep(0.1)
    [d] = deliveries(itsm)
    assert d.attempts == 1 and d.state == "pending"
    receiver.start()
    make_due(itsm)
    itsm.outbox._wake.set()
    while time.monotonic() < deadline and deliveries(itsm)[0].state != "delivered":
        time.sleep(0.1)
    itsm.outbox.stop_thread()
    assert deliveries(itsm)[0].state == "delivered"
    assert len(receiver.received) == 1


def test_removed_subscription_gets_nothing_more(client, admin, agent, itsm, receiver):
    sub = subscribe(client, admin, receiver, "/a", ["*"], SECRET_A)
    open_ticket(client, agent)
    itsm.outbox.fan_out()
    assert client.delete(f"/api/v1/webhooks/{sub['id']}", headers=admin).status_code == 200
    itsm.outbox.drain()
    open_ticket(client, agent)
    itsm.outbox.drain()
    assert receiver.received == []


def test_only_admins_manage_webhooks_and_the_secret_is_shown_once(client, admin, agent,
                                                                   receiver):
    body = {"url": receiver.url, "events": ["record.*"]}
    assert client.post("/api/v1/webhooks", headers=agent, json=body).status_code == 403
    assert client.get("/api/v1/webhooks", headers=agent).status_code == 403
    created = client.post("/api/v1/webhooks", headers=admin, json=body)
    assert created.status_code == 201
    secret = created.json["secret"]
    assert len(secret) >= 32 and created.json["secret_prefix"] == secret[:4]
    listed = client.get("/api/v1/webhooks", headers=admin).json["items"]
    assert listed[0]["events"] == ["record.*"]
    assert "secret" not in listed[0] and secret not in json.dumps(listed)
    assert client.delete("/api/v1/webhooks/999", headers=admin).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://x.example/", "events": ["*"]}, "url"),
    ({"url": "http://x.example/", "events": ["bad pattern!"]}, "events"),
    ({"url": "http://x.example/", "events": []}, "events"),
    ({"url": "http://x.example/", "events": ["*"], "format": "xml"}, "format"),
    ({"url": "http://x.example/", "events": ["*"], "secret": "short"}, "secret"),
    ({"url": "http://x.example/", "events": ["*"], "extra": 1}, "extra"),
])
def test_invalid_subscriptions_are_refused_with_the_field(client, admin, body, field):
    response = client.post("/api/v1/webhooks", headers=admin, json=body)
    assert response.status_code == 422
    assert field in response.json["error"]["fields"]


def test_webhook_routes_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/webhooks"])
    assert "delete" in paths["/api/v1/webhooks/{subscription_id}"]


def test_cli_adds_lists_and_removes_subscriptions(runner, itsm, receiver):
    added = runner.invoke(["webhooks", "add", receiver.url + "/cli", "--event", "record.*",
                           "--event", "incident.escalated", "--format", "slack"])
    assert added.exit_code == 0, added.output
    secret = added.output.split("secret (shown once): ")[1].strip()
    listed = runner.invoke(["webhooks", "list", "--json"])
    [row] = json.loads(listed.output)
    assert row["events"] == ["record.*", "incident.escalated"] and row["format"] == "slack"
    assert secret not in listed.output
    assert runner.invoke(["webhooks", "remove", str(row["id"])]).exit_code == 0
    assert json.loads(runner.invoke(["webhooks", "list", "--json"]).output) == []
    bad = runner.invoke(["webhooks", "add", "nota url", "--event", "*"])
    assert bad.exit_code != 0


def test_migration_creates_exactly_what_the_model_describes(itsm):
    assert schema_drift(itsm.engine, ["webhook_subscription"]) == []
