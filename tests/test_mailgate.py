"""Inbound e-mail: real RFC 822 messages through `itsm mail ingest` and the SMTP listener."""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import func, select

import itsm.adapters.mailgate as mailgate_plugin
import itsm.plugins.incident as incident_plugin
from itsm.adapters.mailgate.listener import start_listener
from itsm.adapters.mailgate.reading import html_to_text, strip_quoted
from itsm.core.models import Attachment, JournalEntry, Record, User
from itsm.core.notify import reply_token
from itsm.testing import schema_drift

INCIDENTS = "/api/v1/incidents"
ANN = "ann@north.example"


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, mailgate_plugin]


@pytest.fixture
def itsm_config(itsm_config):
    return {**itsm_config, "plugins.initial": [],
            "plugins.email.sender": "Service Desk <desk@itsm.example>"}


@pytest.fixture
def ann(make_token):
    return make_token(ANN, role="requester", agency="NORTH")


def mail(subject="Printer on fire", body="The printer on floor 2 is smoking.",
         sender=ANN, **headers) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Ann <{sender}>"
    message["To"] = "desk@itsm.example"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="north.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def ingest(runner, message: EmailMessage):
    return runner.invoke(["mail", "ingest"], input=message.as_bytes())


def counts(itsm) -> tuple[int, int, int]:
    with itsm.Session() as session:
        return (session.scalar(select(func.count()).select_from(Record)),
                session.scalar(select(func.count()).select_from(JournalEntry)),
                session.scalar(select(func.count()).select_from(User)))


def test_new_mail_opens_an_incident_in_the_senders_agency(runner, client, ann):
    result = ingest(runner, mail())
    assert result.exit_code == 0, result.output
    assert result.output.startswith("created INC")
    number = result.output.split()[1]
    incident = client.get(f"{INCIDENTS}/{number}", headers=ann).json
    assert incident["title"] == "Printer on fire"
    assert incident["description"] == "The printer on floor 2 is smoking."
    assert incident["agency"] == "NORTH"
    assert incident["requester"] == ANN
    assert incident["channel"] == "email"


def test_reply_with_number_in_subject_becomes_a_public_comment(runner, client, ann):
    number = ingest(runner, mail()).output.split()[1]
    reply = mail(subject=f"Re: [{number}] Printer on fire (new)",
                 body="It is out now, thanks.\n\nOn Mon, Desk wrote:\n> We are on it.\n")
    reply.replace_header("To", f"desk+{reply_token('test-secret', number, ANN)}@itsm.example")
    result = ingest(runner, reply)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"commented {number}"
    journal = client.get(f"{INCIDENTS}/{number}/journal", headers=ann).json["items"]
    comments = [e for e in journal if e["kind"] == "commented"]
    assert [(c["body"], c["public"]) for c in comments] == [("It is out now, thanks.", True)]


def test_reply_to_a_record_of_another_agency_is_rejected(runner, client, ann, make_token):
    number = ingest(runner, mail()).output.split()[1]
    make_token("bob@south.example", role="requester", agency="SOUTH")
    before = counts(runner.app.extensions["itsm"])
    # Even with a valid reply token (say Bob was mailed about it once) permissions apply.
    token = reply_token("test-secret", number, "bob@south.example")
    result = ingest(runner, mail(subject=f"Re: [{number}]", body="me too",
                                 sender="bob@south.example",
                                 In_Reply_To=f"<itsm.{number}.{token}@itsm.example>"))
    assert result.exit_code == 1
    assert f"{number} does not exist or bob@south.example may not see it" in result.output
    assert counts(runner.app.extensions["itsm"]) == before


def test_attachment_is_stored_and_downloadable(runner, client, ann):
    message = mail(subject="Error screenshot")
    png = bytes(range(256)) * 4
    message.add_attachment(png, maintype="image", subtype="png", filename="error.png")
    result = ingest(runner, message)
    assert result.exit_code == 0, result.output
    number = result.output.split()[1]
    items = client.get(f"{INCIDENTS}/{number}/attachments", headers=ann).json["items"]
    assert [(a["filename"], a["content_type"], a["size"]) for a in items] == \
        [("error.png", "image/png", len(png))]
    download = client.get(f"{INCIDENTS}/{number}/attachments/{items[0]['id']}", headers=ann)
    assert download.status_code == 200
    assert download.data == png
    incident = client.get(f"{INCIDENTS}/{number}", headers=ann).json
    assert incident["description"] == "The printer on floor 2 is smoking."


def test_html_only_mail_is_converted_to_text(runner, client, ann):
    message = mail(subject="  ")
    message.set_content("<html><body><p>Screen is <b>black</b></p><p>since 9:00</p>"
                        "</body></html>", subtype="html")
    result = ingest(runner, message)
    number = result.output.split()[1]
    incident = client.get(f"{INCIDENTS}/{number}", headers=ann).json
    assert incident["title"] == "(no subject)"
    assert incident["description"] == "Screen is black\n\nsince 9:00"


@pytest.mark.parametrize("headers, why", [
    ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
    ({"Precedence": "bulk"}, "Precedence: bulk"),
    ({"Precedence": "junk"}, "Precedence: junk"),
    ({"Precedence": "list"}, "Precedence: list"),
    ({"X_Autoreply": "yes"}, "automatic reply (X-Autoreply)"),
    ({"X_Autorespond": "Out of office"}, "automatic reply (X-Autoreply)"),
    ({"X_Auto_Response_Suppress": "All"}, "X-Auto-Response-Suppress"),
    ({"List_Id": "<staff.north.example>"}, "List-Id"),
    ({"X_Itsm_Event_Id": "17", "Auto_Submitted": "auto-generated"}, "X-Itsm-Event-Id"),
])
def test_auto_replies_bulk_and_our_own_mails_are_ignored(runner, ann, headers, why):
    itsm = runner.app.extensions["itsm"]
    before = counts(itsm)
    result = ingest(runner, mail(subject="Out of office: [INC0000001]", **headers))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ignored: ") and why in result.output
    assert counts(itsm) == before


def test_a_mail_sent_by_the_outbound_adapter_is_ignored(runner, ann):
    from datetime import UTC, datetime

    from itsm.adapters.email.channel import build_message
    from itsm.core.notify import EventMessage

    event = EventMessage(id=5, name="record.created", actor="agent@example.org",
                         record={"number": "INC0000001", "title": "x", "type": "incident"},
                         payload={}, created_at=datetime.now(UTC))
    settings = {"sender": "Service Desk <desk@itsm.example>", "templates_path": "",
                "message_id_domain": ""}
    outgoing = build_message(event, ANN, settings, None)
    result = ingest(runner, outgoing)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ignored: our own notification")


def test_a_forwarded_copy_of_our_own_mail_is_recognised_by_sender_and_message_id(
        app, runner, ann):
    outgoing = mail(sender="desk@itsm.example")
    result = ingest(runner, outgoing)
    assert result.output.startswith("ignored: sent by itsm itself"), result.output
    copy = mail(subject="Fwd: [INC0000001]")
    del copy["Message-ID"]
    copy["Message-ID"] = "<itsm.INC0000001.abc123@itsm.example>"
    result = ingest(runner, copy)
    assert result.output.startswith("ignored: our own notification (Message-ID)"), \
        result.output


def test_bounce_with_empty_return_path_is_ignored(runner, ann):
    result = ingest(runner, mail(Return_Path="<>"))
    assert result.exit_code == 0
    assert result.output.startswith("ignored: bounce"), result.output


def test_unknown_sender_is_rejected_and_nothing_is_written(runner):
    itsm = runner.app.extensions["itsm"]
    before = counts(itsm)
    message = mail(sender="stranger@elsewhere.example")
    message.add_attachment(b"data", maintype="application", subtype="octet-stream",
                           filename="a.bin")
    result = ingest(runner, message)
    assert result.exit_code == 1
    assert "unknown sender stranger@elsewhere.example" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert counts(itsm) == before


class TestGuestPolicy:
    @pytest.fixture
    def itsm_config(self, itsm_config):
        return {**itsm_config, "plugins.mailgate.unknown_senders": "guest",
                "plugins.mailgate.guest_agency": "GUESTS"}

    def test_unknown_sender_becomes_a_guest_requester(self, runner, client, make_token):
        make_token("lead@example.org", role="agent", agency="GUESTS")
        result = ingest(runner, mail(sender="New.Person@Elsewhere.example"))
        assert result.exit_code == 0, result.output
        number = result.output.split()[1]
        itsm = runner.app.extensions["itsm"]
        with itsm.Session() as session:
            user = session.scalar(select(User).where(
                User.email == "new.person@elsewhere.example"))
            assert (user.role, user.password_hash) == ("requester", None)
            record = session.scalar(select(Record).where(Record.number == number))
            assert record.requester_id == user.id
            assert record.agency_id == user.agency_id is not None
        # the guest's next mail finds the same account
        again = ingest(runner, mail(sender="new.person@elsewhere.example"))
        assert again.exit_code == 0, again.output
        with itsm.Session() as session:
            assert session.scalar(select(func.count()).select_from(User).where(
                User.email == "new.person@elsewhere.example")) == 1


def test_the_same_message_twice_is_ingested_once(runner, ann):
    message = mail()
    first = ingest(runner, message)
    assert first.exit_code == 0, first.output
    number = first.output.split()[1]
    itsm = runner.app.extensions["itsm"]
    before = counts(itsm)
    second = ingest(runner, message)
    assert second.exit_code == 0, second.output
    assert second.output.startswith("ignored: ") and "already ingested" in second.output
    assert number in second.output
    assert counts(itsm) == before


def test_ingest_reads_a_file_too(runner, ann, tmp_path):
    path = tmp_path / "message.eml"
    path.write_bytes(mail(subject="From a file").as_bytes())
    result = runner.invoke(["mail", "ingest", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("created INC")


def test_empty_input_is_refused(runner):
    result = runner.invoke(["mail", "ingest"], input=b"")
    assert result.exit_code == 1
    assert "no message" in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_smtp_listener_opens_a_record_and_refuses_unknown_senders(app, client, ann):
    port = free_port()
    controller = start_listener(app, "127.0.0.1", port)
    try:
        message = mail(subject="Sent over SMTP")
        message.add_attachment(b"log line\n", maintype="text", subtype="plain",
                               filename="vpn.log")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.send_message(mail(sender="stranger@elsewhere.example"))
        assert refused.value.smtp_code == 550
        assert b"unknown sender" in refused.value.smtp_error
    finally:
        controller.stop()
    items = client.get(INCIDENTS, headers=ann).json["items"]
    assert [i["title"] for i in items] == ["Sent over SMTP"]
    number = items[0]["number"]
    files = client.get(f"{INCIDENTS}/{number}/attachments", headers=ann).json["items"]
    assert [f["filename"] for f in files] == ["vpn.log"]
    with app.app_context(), app.extensions["itsm"].Session() as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 1


def test_strip_quoted_and_html_to_text():
    assert strip_quoted("Thanks!\n\nOn Tue, 1 Jan, Desk wrote:\n> old\n> text") == "Thanks!"
    assert html_to_text("<style>p{}</style><p>a &amp; b</p>") == "a & b"


def test_migration_creates_exactly_what_the_model_describes(app):
    assert schema_drift(app.extensions["itsm"].engine, ["mailgate_message", "mailgate_held",
                                                        "mailgate_sender_window"]) == []


def test_upgrade_keeps_ingested_messages_recognised_and_downgrades_cleanly(app):
    """mailgate_0002 hashes the Message-IDs stored by 0001, and a purge can undo it."""
    import hashlib
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import inspect, text

    from itsm.core.migrate import _config

    itsm = app.extensions["itsm"]
    with itsm.engine.begin() as connection:
        cfg = _config(itsm, connection)
        command.downgrade(cfg, "mailgate_0001")
        connection.execute(text(
            "INSERT INTO mailgate_message (message_id, sender, record_number, outcome, "
            "created_at) VALUES ('<old@north.example>', 'ann@north.example', 'INC0000001', "
            "'created', :now)"), {"now": datetime.now(UTC).replace(tzinfo=None)})
        command.upgrade(cfg, "mailgate@head")
    with itsm.engine.connect() as connection:
        stored = connection.execute(text(
            "SELECT message_hash FROM mailgate_message")).scalar_one()
    assert stored == hashlib.sha256(b"<old@north.example>").hexdigest()
    with itsm.engine.begin() as connection:
        command.downgrade(_config(itsm, connection), "mailgate@base")
        assert not inspect(connection).has_table("mailgate_message")
        assert not inspect(connection).has_table("mailgate_held")
