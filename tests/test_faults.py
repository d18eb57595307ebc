"""Faults: the database going away under load, a worker killed mid-delivery, plugins
raising inside hooks. Each story ends with nothing half-written and the service back.

The mail server and the webhook receiver being down for a while are in test_email.py
(``test_server_down_fails_nothing_and_everything_arrives_later``) and test_webhooks.py
(``test_receiver_down_is_retried_with_backoff_and_each_event_arrives_once``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from itsm.core.models import Delivery, Event, JournalEntry, Record
from itsm.testing import TEST_DATABASE_ENV, make_plugin

INCIDENTS = "/api/v1/incidents"


def postgres_url() -> str | None:
    for name in (TEST_DATABASE_ENV, "ITSM_TEST_POSTGRES_URL"):
        url = os.environ.get(name, "")
        if url.startswith(("postgresql", "postgres:")):
            return url
    return None


def call(method: str, url: str, headers: dict, body: dict | None = None):
    request = urllib.request.Request(url, method=method,
                                     headers={"Content-Type": "application/json", **headers},
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


# -- the database goes away --------------------------------------------------------------------


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of the database server, that can be cut: open
    connections are closed and new ones are hung up on at once, as when the server or the
    network goes down; restored, it passes traffic again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.up = True
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self.lock:
            self.open.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    def cut(self) -> None:
        self.up = False
        with self.lock:
            victims = list(self.open)
        for s in victims:
            self._close(s)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
def proxy():
    url = make_url(postgres_url())
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.close()


needs_postgres = pytest.mark.skipif(postgres_url() is None,
                                    reason="needs a PostgreSQL server: set "
                                           "ITSM_TEST_POSTGRES_URL")


@pytest.fixture
def itsm_config(request, itsm_config):
    config = {**itsm_config, "plugins.initial": ["notify_log", "incident"]}
    if "proxy" in request.fixturenames:
        proxy = request.getfixturevalue("proxy")
        url = make_url(postgres_url()).set(host="127.0.0.1", port=proxy.port)
        config["database.url"] = url.render_as_string(hide_password=False)
    return config


@needs_postgres
def test_database_outage_fails_requests_cleanly_and_service_resumes_by_itself(
        proxy, app, live_server, make_token):
    agent = make_token("agent@example.org", role="agent")
    itsm = app.extensions["itsm"]
    results: list[tuple[int, dict, dict]] = []
    stop = threading.Event()

    def load() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            results.append(call("POST", live_server + INCIDENTS, agent,
                                {"title": f"load {n}", "category": "network"}))

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    proxy.cut()
    time.sleep(1.5)
    status, headers, body = call("GET", live_server + INCIDENTS, agent)
    assert status == 503 and headers["Retry-After"] == "5"
    assert body["error"]["code"] == "unavailable"
    page = app.test_client()
    with page.session_transaction() as session:
        session["sid"] = "any"  # looked up in the database, which is down
    answer = page.get("/home")
    assert answer.status_code == 503 and answer.mimetype == "text/html"  # a page, not JSON
    assert answer.headers["Retry-After"] == "5" and b"database is unavailable" in answer.data
    proxy.restore()
    time.sleep(1.0)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)

    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {201, 503}, sorted(set(statuses))
    assert statuses.count(503) >= 1 and statuses[-1] == 201  # back by itself, no restart
    failed = [(h, b) for s, h, b in results if s == 503]
    assert all(h.get("Retry-After") == "5" and b["error"]["code"] == "unavailable"
               for h, b in failed)
    created = {b["number"] for s, _, b in results if s == 201}
    with app.app_context(), itsm.Session() as session:
        numbers = set(session.scalars(select(Record.number)))
        # Every answered record is there. A request cut off while its COMMIT travelled
        # may have been applied without hearing so (at most one per client thread);
        # every other failed request left nothing behind.
        assert created <= numbers and len(numbers - created) <= len(workers)
        # Nothing half-written: each record with its journal entry and its event.
        journals = session.scalar(select(func.count()).select_from(JournalEntry)
                                  .where(JournalEntry.kind == "created"))
        events = session.scalar(select(func.count()).select_from(Event)
                                .where(Event.name == "record.created"))
        assert journals == events == len(numbers)


# -- a worker killed mid-delivery -----------------------------------------------------------


class HoldingReceiver:
    """A webhook receiver that holds the first request (its worker is killed meanwhile)
    and acts once per Idempotency-Key, as a careful receiver does."""

    def __init__(self) -> None:
        self.seen: list[str] = []  # every request's key, repeats included
        self.acted: list[str] = []  # the keys acted upon
        self.holding = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                receiver.seen.append(key)
                if len(receiver.seen) == 1:
                    receiver.holding.set()
                    receiver.release.wait(30)
                    return  # the sender is dead by now: no answer
                if key not in receiver.acted:
                    receiver.acted.append(key)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def start_worker(app) -> subprocess.Popen:
    settings = app.extensions["itsm"].settings
    env = {**os.environ, "ITSM_HOME": str(settings.home),
           "ITSM_DATABASE_URL": settings.database_url, "ITSM_SECRET_KEY": "test-secret",
           "ITSM_OUTBOX_LEASE_SECONDS": "1", "ITSM_ATTACHMENTS_PATH": str(settings.home)}
    return subprocess.Popen([sys.executable, "-c", "from itsm.cli import main; main()",
                             "worker", "--interval", "0.3"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def receiver():
    receiver = HoldingReceiver()
    yield receiver
    receiver.close()


def test_worker_killed_mid_delivery_another_delivers_and_the_receiver_acts_once(
        app, client, make_token, receiver):
    itsm = app.extensions["itsm"]
    from itsm.core import plugin_admin

    with app.app_context():
        plugin_admin.enable(itsm, "webhooks")
    admin = make_token("admin@example.org", role="admin")
    agent = make_token("agent@example.org", role="agent")
    assert client.post("/api/v1/webhooks", headers=admin,
                       json={"url": receiver.url, "events": ["record.created"]}
                       ).status_code == 201
    assert client.post(INCIDENTS, headers=agent,
                       json={"title": "printer on fire", "category": "network"}
                       ).status_code == 201

    first = start_worker(app)
    try:
        assert receiver.holding.wait(60), "the first worker never sent the webhook"
        first.send_signal(signal.SIGKILL)  # dies while the receiver holds its request
        first.wait(10)
    finally:
        first.kill()
    second = start_worker(app)

    def delivery() -> Delivery:
        with app.app_context(), itsm.Session() as session:
            return session.scalar(select(Delivery).where(Delivery.channel == "webhook"))

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and delivery().state != "delivered":
            time.sleep(0.2)
        time.sleep(1.5)  # a lease more: nothing is sent again
    finally:
        second.terminate()
        second.wait(10)
    assert len(receiver.seen) == 2 and len(set(receiver.seen)) == 1  # sent twice, one key
    assert receiver.seen[0].startswith("itsm-event-")
    assert len(receiver.acted) == 1  # acted upon once
    assert delivery().state == "delivered" and delivery().attempts == 1


# -- plugins raising inside hooks ------------------------------------------------------------


def _boom(*args, **kwargs):
    raise RuntimeError("plugin bug")


def _count(itsm, model) -> int:
    with itsm.Session() as session:
        return session.scalar(select(func.count()).select_from(model))


def _tickets(with_plugin, **hooks):
    application = with_plugin(make_plugin("buggy", **hooks))
    itsm = application.extensions["itsm"]
    from itsm.core import auth

    with application.app_context(), itsm.Session() as session:
        user = auth.create_user(session, "agent@example.org", role="agent")
        _, secret = auth.create_token(session, user)
        session.commit()
    return application, itsm, {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("hook", ["itsm_record_changed", "itsm_transition_guard"])
def test_a_hook_raising_inside_the_transaction_fails_the_request_and_writes_nothing(
        with_plugin, hook):
    def record_changed(session, record, change):
        if change.kind == "transitioned":
            raise RuntimeError("plugin bug")

    application, itsm, headers = _tickets(
        with_plugin, **{hook: record_changed if hook == "itsm_record_changed" else _boom})
    client = application.test_client()
    created = client.post("/api/v1/tickets", headers=headers, json={"title": "x"})
    assert created.status_code == 201
    number = created.get_json()["number"]
    with application.app_context():
        before = (_count(itsm, JournalEntry), _count(itsm, Event))
    answer = client.post(f"/api/v1/tickets/{number}/transitions", headers=headers,
                         json={"name": "start"})
    assert answer.status_code == 500
    assert answer.get_json()["error"] == {"code": "internal",
                                          "message": "internal error; it has been logged"}
    with application.app_context():
        assert (_count(itsm, JournalEntry), _count(itsm, Event)) == before
    again = client.get(f"/api/v1/tickets/{number}", headers=headers).get_json()
    assert again["state"] == "new" and again["version"] == created.get_json()["version"]


def test_a_suggestions_hook_raising_still_answers_the_created_record(with_plugin):
    # Suggestions are looked up after the commit: the record exists, so the client gets
    # its 201 (and no reason to send the create again), with no suggestions.
    application, itsm, headers = _tickets(with_plugin, itsm_suggestions=_boom)
    client = application.test_client()
    created = client.post("/api/v1/tickets", headers=headers, json={"title": "printer jam"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["suggestions"] == []
    again = client.get(f"/api/v1/tickets/{body['number']}", headers=headers)
    assert again.status_code == 200 and again.get_json()["title"] == "printer jam"
    journal = client.get(f"/api/v1/tickets/{body['number']}/journal", headers=headers)
    assert [e["kind"] for e in journal.get_json()["items"]] == ["created"]
    with application.app_context():
        assert _count(itsm, Event) == 1


def test_a_recipients_hook_raising_holds_up_only_its_event(with_plugin):
    calls = []

    def recipients(event, session):
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("plugin bug")
        return None

    application, itsm, headers = _tickets(with_plugin, itsm_notification_recipients=recipients)
    client = application.test_client()
    for title in ("first", "second"):
        assert client.post("/api/v1/tickets", headers=headers,
                           json={"title": title}).status_code == 201
    with application.app_context():
        assert itsm.outbox.fan_out() == 1  # the first event's lookup fails, the second goes on
        with itsm.Session() as session:
            pending = session.scalars(select(Event.id).where(Event.dispatched_at.is_(None)))
            assert list(pending) == [calls[0]]
        itsm.outbox.drain()  # next cycle: the plugin works again, nothing was lost
        assert itsm.outbox.backlog()["events not fanned out"] == 0


def test_a_periodic_hook_raising_leaves_the_other_plugins_work_running(itsm_config):
    from itsm.core import plugin_admin
    from itsm.core.app import create_app
    from itsm.core.install import initialise
    from itsm.core.jobs import run_periodic
    from itsm.testing import empty_database

    ran = []
    modules = [make_plugin("buggy", itsm_periodic=_boom),
               make_plugin("steady", itsm_periodic=lambda now: ran.append(now))]
    if not itsm_config["database.url"].startswith("sqlite"):
        empty_database(itsm_config["database.url"])
    application = create_app({**itsm_config, "plugins.extra": modules})
    itsm = application.extensions["itsm"]
    try:
        with application.app_context():
            initialise(itsm)
            for module in modules:
                plugin_admin.enable(itsm, module.plugin.name)
            assert run_periodic(itsm) == ["buggy"]
        assert len(ran) == 1
    finally:
        itsm.engine.dispose()
