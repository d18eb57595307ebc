"""Inbound mail that claims to be from someone: reply tokens, Authentication-Results, DKIM,
staff senders, bounces, held messages; and mail that is malformed on purpose (NUL, deep
MIME nesting, long Message-IDs), auto-replies without RFC 3834 headers, floods."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

import itsm.adapters.email as email_plugin
import itsm.adapters.mailgate as mailgate_plugin
import itsm.plugins.incident as incident_plugin
from itsm.adapters.email.channel import build_message
from itsm.adapters.mailgate.models import HeldMessage, IngestedMessage, SenderWindow
from itsm.adapters.mailgate.reading import parse_headers
from itsm.adapters.mailgate.service import MailRejected
from itsm.adapters.mailgate.service import ingest as ingest_raw
from itsm.adapters.mailgate.trust import (
    parse_authentication_results,
    verified_by_dkim,
    verified_by_mta,
)
from itsm.core.models import JournalEntry, Record, User
from itsm.core.notify import EventMessage, reply_token

INCIDENTS = "/api/v1/incidents"
ANN = "ann@north.example"
BOB = "bob@south.example"
ADMIN = "admin@itsm.example"
SECRET = "test-secret"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_port():
    return free_port()


@pytest.fixture
def mailbox(smtp_port):
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def itsm_plugins():
    return [incident_plugin, email_plugin, mailgate_plugin]


@pytest.fixture
def itsm_config(itsm_config, smtp_port):
    return {**itsm_config, "plugins.initial": [],
            "plugins.email.sender": "Service Desk <desk@itsm.example>",
            "plugins.email.host": "127.0.0.1", "plugins.email.port": smtp_port,
            "plugins.mailgate.dkim_verify": False}


@pytest.fixture
def people(make_token):
    return {"ann": make_token(ANN, role="requester", agency="NORTH"),
            "bob": make_token(BOB, role="requester", agency="SOUTH"),
            "admin": make_token(ADMIN, role="admin")}


def mail(subject="Printer on fire", body="The printer on floor 2 is smoking.",
         sender=ANN, to="desk@itsm.example", **headers) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="north.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def ingest(runner, message: EmailMessage | bytes):
    raw = message if isinstance(message, bytes) else message.as_bytes()
    return runner.invoke(["mail", "ingest"], input=raw)


def counts(itsm) -> tuple[int, int, int]:
    with itsm.Session() as session:
        return (session.scalar(select(func.count()).select_from(Record)),
                session.scalar(select(func.count()).select_from(JournalEntry)),
                session.scalar(select(func.count()).select_from(User)))


def comments(client, number, headers) -> list[tuple[str, str]]:
    journal = client.get(f"{INCIDENTS}/{number}/journal", headers=headers).json["items"]
    return [(e["actor"], e["body"]) for e in journal if e["kind"] == "commented"]


def open_incident(runner) -> str:
    result = ingest(runner, mail())
    assert result.exit_code == 0, result.output
    return result.output.split()[1]


def notification(number: str, event_id: int = 9, name: str = "record.commented"):
    return EventMessage(id=event_id, name=name, actor="agent@itsm.example",
                        record={"number": number, "title": "Printer on fire",
                                "type": "incident"},
                        payload={}, created_at=datetime.now(UTC))


def outgoing(number: str, to: str = ANN) -> EmailMessage:
    settings = {"sender": "Service Desk <desk@itsm.example>", "templates_path": "",
                "message_id_domain": "", "reply_to": "", "reply_to_token": True}
    return build_message(notification(number), to, settings, None, secret_key=SECRET)


def reply_to(sent: EmailMessage, body: str, sender: str = ANN, *, via: str) -> EmailMessage:
    """A reply as a mail client writes it: to the Reply-To, answering the Message-ID."""
    answer = mail(subject=f"Re: {sent['Subject']}", body=body, sender=sender)
    if via == "reply-to":
        answer.replace_header("To", str(sent["Reply-To"]))
    else:
        answer["In-Reply-To"] = str(sent["Message-ID"])
        answer["References"] = str(sent["Message-ID"])
    return answer


# -- reply tokens ----------------------------------------------------------------------------


def test_outgoing_mail_carries_the_recipients_reply_token():
    sent = outgoing("INC0000001")
    token = reply_token(SECRET, "INC0000001", ANN)
    assert str(sent["Reply-To"]) == f"Service Desk <desk+{token}@itsm.example>"
    assert f".{token}@itsm.example>" in str(sent["Message-ID"])
    assert token != reply_token(SECRET, "INC0000001", BOB)
    assert token != reply_token(SECRET, "INC0000002", ANN)
    assert token != reply_token("another-secret", "INC0000001", ANN)


@pytest.mark.parametrize("via", ["reply-to", "in-reply-to"])
def test_requesters_reply_to_a_notification_becomes_a_comment(runner, client, people, via):
    number = open_incident(runner)
    result = ingest(runner, reply_to(outgoing(number), "Thanks, it works again.", via=via))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"commented {number}"
    assert comments(client, number, people["ann"]) == [(ANN, "Thanks, it works again.")]


def test_reply_without_token_is_refused_with_a_bounce(runner, client, people, mailbox):
    itsm = runner.app.extensions["itsm"]
    number = open_incident(runner)
    before = counts(itsm)
    message = mail(subject=f"Re: [{number}]", body="Any news?")
    result = ingest(runner, message)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"rejected: the reply to {number} was not added")
    assert f"bounce mailed to {ANN}" in result.output
    assert counts(itsm) == before
    with runner.app.app_context():
        itsm.outbox.drain()
    [bounce] = [m for m in mailbox.messages if m["X-Itsm-Event"] == "mail.rejected"]
    assert bounce["To"] == ANN
    assert bounce["Auto-Submitted"] == "auto-replied"
    assert "not accepted" in str(bounce["Subject"])
    text = bounce.get_body(("plain",)).get_content()
    assert f"it carries no reply token of a mail itsm sent to {ANN} about {number}" in text
    # the same message delivered again is recognised and not bounced twice
    again = ingest(runner, message)
    assert again.output.startswith("ignored: ") and "already ingested (rejected" in again.output
    with runner.app.app_context():
        itsm.outbox.drain()
    assert len([m for m in mailbox.messages if m["X-Itsm-Event"] == "mail.rejected"]) == 1


def test_forged_admin_reply_to_another_agencys_incident_adds_nothing(
        runner, client, people, mailbox):
    """The reproduction: From admin@…, Subject Re: [INC…], piped to itsm mail ingest."""
    itsm = runner.app.extensions["itsm"]
    number = open_incident(runner)
    before = counts(itsm)
    forged = mail(subject=f"Re: [{number}]", body="Closing this, all fine.", sender=ADMIN,
                  Return_Path="<mallory@evil.example>")
    result = ingest(runner, forged)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("rejected: ") and "mallory@evil.example" in result.output
    assert counts(itsm) == before
    assert comments(client, number, people["ann"]) == []
    with runner.app.app_context():
        itsm.outbox.drain()
    assert [m["To"] for m in mailbox.messages] == ["mallory@evil.example"]


def test_token_of_another_recipient_does_not_verify(runner, client, people, make_token):
    number = open_incident(runner)
    make_token("carol@north.example", role="requester", agency="NORTH")
    forwarded = reply_to(outgoing(number), "me too", sender="carol@north.example",
                         via="reply-to")
    result = ingest(runner, forwarded)
    assert result.output.startswith("rejected: "), result.output
    assert "carries no reply token of a mail itsm sent to carol@north.example" in result.output


def test_verified_sender_not_on_the_record_is_refused(runner, client, people, make_token):
    number = open_incident(runner)
    make_token("carol@north.example", role="requester", agency="NORTH")
    # Carol may see the incident (her agency's) and her mail server vouches for her,
    # but she is neither requester, assignee nor in its group.
    runner.app.extensions["itsm"].settings[
        "plugins.mailgate.trusted_authserv_ids"] = ["mx.itsm.example"]
    result = ingest(runner, mail(
        subject=f"Re: [{number}]", body="me too", sender="carol@north.example",
        Authentication_Results="mx.itsm.example; dkim=pass header.d=north.example"))
    assert result.output.startswith("rejected: "), result.output
    assert f"carol@north.example is not the requester, the assignee or in the group of " \
        f"{number}" in result.output


def test_two_from_addresses_are_refused(runner, people):
    itsm = runner.app.extensions["itsm"]
    before = counts(itsm)
    result = ingest(runner, mail(sender=f"{ADMIN}, {ANN}"))
    assert result.exit_code == 1  # no one sender to tell: the MTA bounces it
    assert "names 2 senders in From" in result.output
    assert counts(itsm) == before


def test_staff_from_never_opens_a_record_unverified(runner, client, people):
    itsm = runner.app.extensions["itsm"]
    before = counts(itsm)
    result = ingest(runner, mail(sender=ADMIN, subject="Reset all passwords"))
    assert result.output.startswith("rejected: "), result.output
    assert f"{ADMIN} is IT staff" in result.output
    assert counts(itsm) == before
    # the same mail vouched for by the receiving MTA opens the record as the admin
    itsm.settings["plugins.mailgate.trusted_authserv_ids"] = ["mx.itsm.example"]
    verified = mail(sender=ADMIN, subject="Reset all passwords",
                    Authentication_Results="mx.itsm.example; spf=pass "
                                           "smtp.mailfrom=admin@itsm.example")
    result = ingest(runner, verified)
    assert result.exit_code == 0, result.output
    number = result.output.split()[1]
    assert client.get(f"{INCIDENTS}/{number}", headers=people["admin"]).json["requester"] \
        == ADMIN


# -- Authentication-Results ------------------------------------------------------------------


def test_authentication_results_are_parsed_with_comments_and_versions():
    authserv, results = parse_authentication_results(
        'mx.itsm.example 1; dkim=pass (good signature) header.d=north.example '
        'header.i="@north.example"; spf=fail (sender not permitted) '
        'smtp.mailfrom=ann@north.example; dmarc=pass header.from=North.Example')
    assert authserv == "mx.itsm.example"
    assert [(m, r) for m, r, _ in results] == [("dkim", "pass"), ("spf", "fail"),
                                               ("dmarc", "pass")]
    assert results[0][2]["header.d"] == "north.example"
    assert results[2][2]["header.from"] == "north.example"


@pytest.mark.parametrize("header, trusted, expected", [
    ("mx.itsm.example; dkim=pass header.d=north.example", ["mx.itsm.example"],
     "dkim=pass for north.example (mx.itsm.example)"),
    ("mx.itsm.example; spf=pass smtp.mailfrom=north.example", ["MX.itsm.example"],
     "spf=pass for north.example (mx.itsm.example)"),
    # anyone can write a header naming some other server: never believed
    ("mx.evil.example; dkim=pass header.d=north.example", ["mx.itsm.example"], None),
    # nothing is believed until an authserv-id is configured
    ("mx.itsm.example; dkim=pass header.d=north.example", [], None),
    # a pass for another domain says nothing about the From domain
    ("mx.itsm.example; dkim=pass header.d=evil.example", ["mx.itsm.example"], None),
    ("mx.itsm.example; dkim=fail header.d=north.example", ["mx.itsm.example"], None),
])
def test_authentication_results_only_from_a_trusted_authserv_id(header, trusted, expected):
    message = mail(Authentication_Results=header)
    assert verified_by_mta(parse_headers(message.as_bytes()), trusted, ANN) == expected


def test_a_forged_header_below_the_mtas_own_is_ignored():
    message = mail()
    # the MTA adds its verdict on top; the sender's forged "pass" lies below it
    message["Authentication-Results"] = "mx.itsm.example; dkim=none"
    message["Authentication-Results"] = "mx.itsm.example; dkim=pass header.d=north.example"
    assert verified_by_mta(parse_headers(message.as_bytes()), ["mx.itsm.example"], ANN) \
        is None


# -- DKIM verified here ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory):
    """An RSA key pair made with openssl, and a DNS lookup that serves its public half."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a DKIM key")
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True,
                   capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform",
                             "DER"], check=True, capture_output=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    lookups: list[str] = []

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        lookups.append(name)
        return record if name.rstrip(".") == "sel._domainkey.north.example" else None

    return private.read_bytes(), dnsfunc, lookups


def signed(message: EmailMessage, key: bytes, domain: str = "north.example") -> bytes:
    import dkim

    raw = message.as_bytes()
    signature = dkim.sign(raw, b"sel", domain.encode(), key,
                          include_headers=[b"from", b"to", b"subject", b"message-id"])
    return signature + raw


def test_dkim_signature_verified_with_the_domains_key(dkim_key):
    key, dnsfunc, lookups = dkim_key
    raw = signed(mail(), key)
    assert verified_by_dkim(raw, ANN, dnsfunc) == \
        "dkim=pass for north.example (verified by itsm)"
    assert "sel._domainkey.north.example" in [name.rstrip(".") for name in lookups]
    # a body changed after signing does not verify
    tampered = raw.replace(b"smoking", b"on fire!")
    assert verified_by_dkim(tampered, ANN, dnsfunc) is None
    # a signature of north.example says nothing about a From in another domain
    assert verified_by_dkim(raw, BOB, dnsfunc) is None


def test_dkim_signed_staff_mail_opens_a_record(runner, people, dkim_key):
    key, dnsfunc, _ = dkim_key
    itsm = runner.app.extensions["itsm"]
    with runner.app.app_context():
        itsm.settings["plugins.mailgate.dkim_verify"] = True
        from itsm.core.auth import create_user, known_roles

        with itsm.Session() as session:
            create_user(session, "lead@north.example", role="agent",
                        roles=known_roles(list(itsm.permissions.values())))
            session.commit()
        with pytest.raises(MailRejected, match="is IT staff"):
            ingest_raw(itsm, mail(sender="lead@north.example").as_bytes(), dnsfunc=dnsfunc,
                       bounce=False)
        outcome = ingest_raw(itsm, signed(mail(sender="lead@north.example"), key),
                             dnsfunc=dnsfunc)
    assert outcome.action == "created", outcome.line()


# -- held for review -------------------------------------------------------------------------


class TestHoldForReview:
    @pytest.fixture
    def itsm_config(self, itsm_config):
        return {**itsm_config, "plugins.mailgate.untrusted": "hold"}

    def test_unverified_reply_is_held_and_released_by_a_person(
            self, runner, client, people, mailbox):
        itsm = runner.app.extensions["itsm"]
        number = open_incident(runner)
        result = ingest(runner, mail(subject=f"Re: [{number}]", body="Still broken."))
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"held: the reply to {number} was not added")
        assert comments(client, number, people["ann"]) == []
        with runner.app.app_context():
            itsm.outbox.drain()
        [notice] = [m for m in mailbox.messages if m["X-Itsm-Event"] == "mail.held"]
        assert "held for review" in notice.get_body(("plain",)).get_content()

        listed = runner.invoke(["mail", "held"])
        assert ANN in listed.output and f"Re: [{number}]" in listed.output
        with itsm.Session() as session:
            held_id = session.scalar(select(HeldMessage.id))
        released = runner.invoke(["mail", "release", str(held_id)])
        assert released.exit_code == 0, released.output
        assert released.output.strip() == f"commented {number}"
        assert comments(client, number, people["ann"]) == [(ANN, "Still broken.")]
        assert runner.invoke(["mail", "held"]).output.strip() == "no held messages"

    def test_discarded_message_stays_out(self, runner, client, people):
        number = open_incident(runner)
        message = mail(subject=f"Re: [{number}]", body="Still broken.")
        ingest(runner, message)
        itsm = runner.app.extensions["itsm"]
        with itsm.Session() as session:
            held_id = session.scalar(select(HeldMessage.id))
        assert runner.invoke(["mail", "discard", str(held_id)]).exit_code == 0
        again = ingest(runner, message)
        assert again.output.startswith("ignored: ") and "discarded" in again.output
        assert comments(client, number, people["ann"]) == []
        missing = runner.invoke(["mail", "release", "999"])
        assert missing.exit_code == 1 and "no held message 999" in missing.output


# -- malformed and automatic mail ------------------------------------------------------------


@pytest.mark.parametrize("subject", [
    "Automatic reply: [INC0000001] Printer on fire",
    "Out of Office: Re: [INC0000001]",
    "Auto: Re: [INC0000001] Printer",
    "Abwesenheitsnotiz: [INC0000001]",
])
def test_auto_reply_without_rfc3834_headers_is_ignored(runner, people, subject):
    itsm = runner.app.extensions["itsm"]
    before = counts(itsm)
    result = ingest(runner, mail(subject=subject, body="I am away until Monday."))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ignored: automatic reply (its subject says so)"
    assert counts(itsm) == before


def test_two_message_ids_with_the_same_first_255_characters_are_two_mails(runner, people):
    prefix = "<" + "x" * 260
    first = ingest(runner, with_id(mail(subject="First"), prefix + "1@north.example>"))
    second = ingest(runner, with_id(mail(subject="Second"), prefix + "2@north.example>"))
    assert first.output.startswith("created "), first.output
    assert second.output.startswith("created "), second.output
    assert first.output != second.output
    again = ingest(runner, with_id(mail(subject="Second"), prefix + "2@north.example>"))
    assert again.output.startswith("ignored: ") and "already ingested" in again.output


def with_id(message: EmailMessage, message_id: str) -> EmailMessage:
    del message["Message-ID"]
    message["Message-ID"] = message_id
    return message


@pytest.mark.parametrize("part, raw", [
    ("body", b"Subject: Broken\r\n\r\nThe printer\x00 is smoking.\r\n"),
    ("subject", b"Subject: =?utf-8?b?" + base64.b64encode(b"Broken\x00 printer") +
     b"?=\r\n\r\nThe printer is smoking.\r\n"),
    ("attachment name", b"Subject: Log\r\nMIME-Version: 1.0\r\n"
     b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     b"Content-Type: text/plain\r\n\r\nsee log\r\n--b\r\n"
     b"Content-Type: text/plain\r\nContent-Disposition: attachment; "
     b"filename*=utf-8''vpn%00.log\r\n\r\nline\r\n--b--\r\n"),
])
# Lone surrogates do not come out of Python's e-mail package (it replaces bytes it cannot
# decode with U+FFFD); the gate refuses them all the same (test_input_gate).
def test_nul_and_lone_surrogates_are_refused_and_nothing_is_stored(runner, people, part, raw):
    itsm = runner.app.extensions["itsm"]
    before = counts(itsm)
    message = (b"From: " + ANN.encode() + b"\r\nTo: desk@itsm.example\r\n"
               b"Message-ID: <nul-" + part.encode() + b"@north.example>\r\n" + raw)
    result = ingest(runner, message)
    assert result.exit_code == 0, result.output  # refused, and the bounce says why
    assert result.output.startswith("rejected: the message was not read: "), result.output
    assert part in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output and "DataError" not in result.output
    assert counts(itsm) == before


def deep_message(depth: int) -> bytes:
    head = b"From: " + ANN.encode() + b"\r\nSubject: Deep\r\nMIME-Version: 1.0\r\n"
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n'
                       % (i, i) for i in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello\r\n" + closing


@pytest.mark.parametrize("depth, says", [(2000, "deeper than 50 levels"),
                                         (60, "nest 61 levels deep (the limit is 50)")])
def test_deeply_nested_mime_is_refused_with_a_clear_reason(runner, people, depth, says):
    itsm = runner.app.extensions["itsm"]
    before = counts(itsm)
    result = ingest(runner, deep_message(depth))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("rejected: the message was not read: its MIME parts")
    assert says in result.output
    assert counts(itsm) == before


def test_a_mail_nested_within_the_limit_is_taken(runner, people):
    result = ingest(runner, deep_message(10))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("created ")


class TestRateLimit:
    @pytest.fixture
    def itsm_config(self, itsm_config):
        return {**itsm_config, "plugins.mailgate.rate_limit": 3,
                "plugins.mailgate.rate_window_seconds": 600.0}

    def test_a_sender_over_the_limit_is_deferred(self, runner, people):
        itsm = runner.app.extensions["itsm"]
        for n in range(3):
            result = ingest(runner, mail(subject=f"Mail {n}"))
            assert result.output.startswith("created "), result.output
        before = counts(itsm)
        result = ingest(runner, mail(subject="Mail 4"))
        assert result.exit_code == 75  # EX_TEMPFAIL: the MTA keeps it and tries later
        assert result.output.strip() == (
            f"Error: deferred: {ANN} sent 4 mails in the last 600 s (rate_limit is 3): "
            "try again later")
        assert counts(itsm) == before
        # another sender is not held back by Ann's mails
        assert ingest(runner, mail(subject="Mine", sender=BOB)).output.startswith("created")
        with itsm.Session() as session:
            assert session.scalar(select(SenderWindow.mails).where(
                SenderWindow.sender == ANN)) == 4

    def test_the_smtp_listener_answers_451_over_the_limit(self, app, people):
        import smtplib

        from itsm.adapters.mailgate.listener import start_listener

        port = free_port()
        controller = start_listener(app, "127.0.0.1", port)
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                for n in range(3):
                    smtp.send_message(mail(subject=f"Mail {n}"))
                with pytest.raises(smtplib.SMTPDataError) as deferred:
                    smtp.send_message(mail(subject="Mail 4"))
        finally:
            controller.stop()
        assert deferred.value.smtp_code == 451
        assert b"rate_limit is 3" in deferred.value.smtp_error


# -- the input gate --------------------------------------------------------------------------


def test_ingested_rows_keep_the_hash_of_the_whole_message_id(runner, people):
    message = with_id(mail(), "<" + "y" * 300 + "@north.example>")
    assert ingest(runner, message).exit_code == 0
    itsm = runner.app.extensions["itsm"]
    with itsm.Session() as session:
        row = session.scalar(select(IngestedMessage))
    assert row.message_hash == hashlib.sha256(
        ("<" + "y" * 300 + "@north.example>").encode()).hexdigest()
    assert len(row.message_id) == 255
