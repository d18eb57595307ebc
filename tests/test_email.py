"""E-mail notifications against a real SMTP server (aiosmtpd) on 127.0.0.1: templates,
threading by record, preferences, STARTTLS and login, retries while the server is down."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select, update

import itsm.adapters.email as email_plugin
import itsm.plugins.incident as incident_plugin
from itsm.adapters.email.channel import thread_ids, wanted
from itsm.core.models import Delivery, utcnow
from itsm.testing import schema_drift

INCIDENTS = "/api/v1/incidents"
REQUESTER = "ann@north.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mailbox:
    """aiosmtpd handler keeping every message it accepted, parsed."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    def __init__(self, **options) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self.options = options
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                     **self.options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, email_plugin]


@pytest.fixture
def itsm_config(itsm_config, smtp):
    return {**itsm_config, "plugins.initial": [],
            "plugins.email.host": "127.0.0.1", "plugins.email.port": smtp.port,
            "plugins.email.sender": "Service Desk <desk@itsm.example>",
            "plugins.email.base_url": "https://itsm.example"}


@pytest.fixture
def ann(make_token):
    return make_token(REQUESTER, role="requester", agency="NORTH")


def open_incident(client, agent, title="VPN drops <every> hour"):
    response = client.post(INCIDENTS, headers=agent, json={
        "title": title, "category": "network", "subcategory": "vpn", "requester": REQUESTER})
    assert response.status_code == 201, response.json
    return response.json["number"]


def comment(client, headers, number, body, public=True):
    response = client.post(f"{INCIDENTS}/{number}/comments", headers=headers,
                           json={"body": body, "public": public})
    assert response.status_code == 201, response.json


def parts(message):
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


def test_requester_gets_threaded_text_and_html_mails_per_record(client, agent, ann, itsm,
                                                               smtp):
    number = open_incident(client, agent)
    comment(client, agent, number, "We are on it & <b>testing</b>")
    stats = itsm.outbox.drain()
    assert stats.failed == 0
    created, commented = smtp.mailbox.to(REQUESTER)
    for message in (created, commented):
        assert f"[{number}]" in message["Subject"]
        assert message["From"] == "Service Desk <desk@itsm.example>"
        assert message["Auto-Submitted"] == "auto-generated"
    assert "(new)" in created["Subject"] and "(new comment)" in commented["Subject"]

    # Threading: the comment answers the mail that announced the record.
    root = created["Message-ID"]
    assert root.endswith("@itsm.example>") and number in root
    assert commented["In-Reply-To"] == root and commented["References"] == root
    assert commented["Message-ID"] != root
    assert created["X-Itsm-Event-Id"] != commented["X-Itsm-Event-Id"]

    text, html = parts(commented)
    assert "We are on it & <b>testing</b>" in text  # text is not escaped
    assert "We are on it &amp; &lt;b&gt;testing&lt;/b&gt;" in html  # HTML is
    assert f"https://itsm.example/records/incidents/{number}" in text
    created_text, created_html = parts(created)
    assert "VPN drops <every> hour" in created_text
    assert "VPN drops &lt;every&gt; hour" in created_html
    assert smtp.mailbox.envelopes[0][0] == "desk@itsm.example"
    # The state as the pages name it, the agent by name, not the stored code and address.
    assert "State: New" in created_text and "State: <b>New</b>" in created_html
    assert "Reported by agent." in created_text and "agent@example.org" not in created_text


def test_mails_about_a_record_carry_the_recipients_reply_token(client, agent, ann, itsm,
                                                               smtp):
    from itsm.core.notify import reply_token

    number = open_incident(client, agent)
    itsm.outbox.drain()
    [created] = smtp.mailbox.to(REQUESTER)
    token = reply_token(itsm.settings["secret_key"], number, REQUESTER)
    assert created["Reply-To"] == f"Service Desk <desk+{token}@itsm.example>"
    assert created["Message-ID"] == f"<itsm.{number}.{token}@itsm.example>"


def test_message_id_is_stable_per_event_and_recipient(itsm):
    from datetime import UTC, datetime

    from itsm.core.notify import EventMessage

    def message(event_id, name):
        return EventMessage(id=event_id, name=name, record={"number": "INC0000042"},
                            actor=None, payload={}, created_at=datetime.now(UTC))

    first = thread_ids(message(7, "record.commented"), "Ann@x.org", "d")
    assert first == thread_ids(message(7, "record.commented"), "ann@x.org", "d")
    assert first != thread_ids(message(7, "record.commented"), "bob@x.org", "d")
    assert first[1] == thread_ids(message(1, "record.created"), "ann@x.org", "d")[0]
    assert "[INC0000042]" not in first[0] and "INC0000042" in first[0]


def test_server_down_fails_nothing_and_everything_arrives_later(client, agent, ann, itsm,
                                                                smtp):
    smtp.stop()
    number = open_incident(client, agent)  # the request does not wait for the mail
    comment(client, agent, number, "first update")
    first = itsm.outbox.drain()
    assert first.delivered == 0 and first.failed == 2
    with itsm.Session() as session:
        rows = session.scalars(select(Delivery)).all()
        assert {(d.channel, d.state, d.attempts) for d in rows} == {("email", "pending", 1)}
        session.execute(update(Delivery).values(next_attempt_at=utcnow()))
        session.commit()
    smtp.start()
    assert itsm.outbox.drain().delivered == 2
    assert itsm.outbox.drain().delivered == 0
    assert len(smtp.mailbox.to(REQUESTER)) == 2


def test_preferences_turn_events_off_for_the_email_channel(client, agent, ann, itsm, smtp):
    prefs = client.put("/api/v1/notification-preferences", headers=ann, json={"items": [
        {"event": "record.*", "enabled": False},
        {"event": "record.commented", "enabled": True}]})
    assert prefs.status_code == 200, prefs.json
    assert client.get("/api/v1/notification-preferences", headers=ann).json["items"] == [
        {"event": "record.*", "channel": "email", "enabled": False},
        {"event": "record.commented", "channel": "email", "enabled": True}]
    number = open_incident(client, agent)
    comment(client, agent, number, "visible")
    itsm.outbox.drain()
    [mail] = smtp.mailbox.to(REQUESTER)
    assert "(new comment)" in mail["Subject"]
    with itsm.Session() as session:  # the unwanted mail counts as delivered, not failed
        assert {d.state for d in session.scalars(select(Delivery))} == {"delivered"}


def test_invalid_preferences_are_refused(client, ann):
    response = client.put("/api/v1/notification-preferences", headers=ann,
                          json={"items": [{"event": "no spaces allowed", "enabled": False}]})
    assert response.status_code == 422


def test_most_specific_preference_wins():
    rules = [("*", False), ("record.*", True), ("record.work_noted", False)]
    assert wanted(rules, "record.commented") is True
    assert wanted(rules, "record.work_noted") is False
    assert wanted(rules, "incident.escalated") is False
    assert wanted([], "anything") is True


def test_cli_changes_a_users_preferences_and_sends_a_test_mail(runner, ann, itsm, smtp):
    result = runner.invoke(["email", "preferences", REQUESTER, "--off", "record.updated"])
    assert result.exit_code == 0, result.output
    assert "record.updated" in result.output and "off" in result.output
    result = runner.invoke(["email", "test", "ops@example.org"])
    assert result.exit_code == 0, result.output
    [mail] = smtp.mailbox.to("ops@example.org")
    assert "test mail" in mail.get_body(("plain",)).get_content()
    bad = runner.invoke(["email", "preferences", REQUESTER, "--off", "bad pattern"])
    assert bad.exit_code != 0


def test_migration_creates_exactly_what_the_model_describes(itsm):
    assert schema_drift(itsm.engine, ["notification_preference"]) == []


# -- STARTTLS and login ------------------------------------------------------------------


def authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login, auth_data.password)
                      == (b"itsm", b"s3cret"))


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_smtp(certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(tls_context=context, require_starttls=True,
                        authenticator=authenticator, auth_required=True).start()
    yield server
    server.stop()


def test_starttls_and_login_are_used_when_configured(client, agent, ann, itsm, tls_smtp,
                                                     certificate):
    settings = itsm.settings
    settings["plugins.email.port"] = tls_smtp.port
    settings["plugins.email.starttls"] = True
    settings["plugins.email.ca_file"] = str(certificate[0])
    settings["plugins.email.username"] = "itsm"
    settings["plugins.email.password"] = "wrong"
    settings["plugins.email.timeout"] = 2.0  # aiosmtpd stalls after a refused login
    open_incident(client, agent)
    failed = itsm.outbox.drain()
    assert failed.failed == 1 and tls_smtp.mailbox.messages == []

    settings["plugins.email.password"] = "s3cret"
    with itsm.Session() as session:
        session.execute(update(Delivery).values(next_attempt_at=utcnow()))
        session.commit()
    assert itsm.outbox.drain().delivered == 1
    [mail] = tls_smtp.mailbox.to(REQUESTER)
    assert "[INC" in mail["Subject"]


def test_without_starttls_a_server_requiring_it_refuses(client, agent, ann, itsm, tls_smtp):
    itsm.settings["plugins.email.port"] = tls_smtp.port
    open_incident(client, agent)
    stats = itsm.outbox.drain()
    assert stats.failed == 1 and tls_smtp.mailbox.messages == []
