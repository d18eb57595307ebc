"""The "email" channel: one event to one address, rendered from templates, sent over SMTP.

Rendering: ``templates/email/<event name>.txt`` and ``.html`` (``record.created.txt``),
else ``default.txt`` / ``default.html``; a folder named by the ``templates_path`` setting
is searched first, so an install can restyle every mail without touching the package,
then this channel's own folder, then each plugin's ``templates/email/`` beside its module
(a plugin ships the mails of its own events, as it ships its pages). The HTML template is
autoescaped; the text one is not (it is not HTML). A text template that sets ``subject``
at its top level (``{% set subject = "Service review of " ~ payload.agency %}``) gives the
mail its subject; otherwise the subject is the record's number and title, or the event.
Links: a record's page for an event about a record, else the payload's ``link_path`` (a
path such as ``/billing/statements/7``) under the ``base_url`` setting.

Threading: every mail about one record carries ``References: <itsm.INC0000042.…@domain>``,
the Message-ID of the mail that announced the record (``record.created``); later mails
answer it (``In-Reply-To``), so a mail client groups them by record. The Message-ID of
each mail is derived from the event id and the recipient, so a mail sent twice (a retry
after a lost answer of the server) is recognisable as the same one.

Reply tokens: a mail about a record carries the recipient's reply token for that record
(:func:`itsm.core.notify.reply_token`, an HMAC under the secret key) in its Reply-To
(``desk+<token>@domain``, setting ``reply_to``) and in its Message-ID, so the inbound mail
gateway can tell a real reply of that person from a mail that merely says it is from
them.

Attachments: an event whose payload carries ``attachments`` (a list of ``{"filename",
"content_type", "data"}``, ``data`` in base64, at most :data:`MAX_ATTACHMENT` bytes each)
is mailed with them, such as an agency's monthly service review as a PDF.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from sqlalchemy import select

from itsm.adapters.email.models import NotificationPreference
from itsm.plugin import (
    EventMessage,
    Recipient,
    User,
    current_itsm,
    priority_label,
    reply_token,
)

log = logging.getLogger("itsm.notify.email")
MAX_ATTACHMENT = 10 * 1024 * 1024

TEMPLATES = Path(__file__).parent / "templates"
CHANNEL = "email"

# How an event reads in a subject line; others are shown as their name's last part.
EVENT_LABELS = {
    "record.created": "new",
    "record.updated": "updated",
    "record.transitioned": "state changed",
    "record.commented": "new comment",
    "record.work_noted": "work note",
    "record.linked": "linked",
    "record.attached": "new attachment",
    "incident.escalated": "escalated",
    "mail.rejected": "your mail was not accepted",
    "mail.held": "your mail is held for review",
    "account.password_reset": "choose a new password",
}


def event_label(name: str) -> str:
    return EVENT_LABELS.get(name) or name.rsplit(".", 1)[-1].replace("_", " ")


# -- preferences ---------------------------------------------------------------------------


def rule_matches(pattern: str, name: str) -> int:
    """How specifically ``pattern`` matches the event ``name`` (0: not at all).

    ``*`` matches everything (1), ``record.*`` every name under ``record.`` (its length),
    and an exact name beats every wildcard.
    """
    if pattern == name:
        return 10_000
    if pattern == "*":
        return 1
    if pattern.endswith(".*") and name.startswith(pattern[:-1]):
        return len(pattern)
    return 0


def wanted(rules: list[tuple[str, bool]], name: str) -> bool:
    """The user's choice for event ``name``: the most specific rule wins, default yes."""
    best, choice = 0, True
    for pattern, enabled in rules:
        score = rule_matches(pattern, name)
        if score > best:
            best, choice = score, enabled
    return choice


def user_wants(session, address: str, channel: str, name: str) -> bool:
    """False when the user behind ``address`` turned ``name`` off for ``channel``."""
    rows = session.execute(
        select(NotificationPreference.event, NotificationPreference.enabled)
        .join(User, User.id == NotificationPreference.user_id)
        .where(User.email == address.lower(), NotificationPreference.channel == channel)).all()
    return wanted([(event, enabled) for event, enabled in rows], name)


# -- rendering -----------------------------------------------------------------------------


def plugin_template_folders() -> tuple[str, ...]:
    """The ``templates`` folder of every loaded plugin that ships mail templates
    (``templates/email/``); none outside an application."""
    from flask import has_app_context

    from itsm.plugin import current_itsm

    if not has_app_context():
        return ()
    folders = []
    plugins = current_itsm().host.plugins
    for name in sorted(plugins):
        info = plugins[name]
        path = info.path
        if info.usable and path is not None and (path / "templates" / "email").is_dir():
            folders.append(str(path / "templates"))
    return tuple(folders)


@lru_cache(maxsize=8)
def environments(extra: str, plugins: tuple[str, ...] = ()) -> tuple[Environment, Environment]:
    """Jinja environments for text (no escaping) and HTML (autoescaped) templates: the
    install's folder, this channel's, then the plugins' (which cannot replace the
    channel's own defaults)."""
    folders = [extra] if extra else []
    loader = ChoiceLoader([FileSystemLoader([*folders, str(TEMPLATES), *plugins])])
    # Lenient undefined values: a template an admin wrote for one event must not break
    # the mail of another whose payload lacks a field.
    text = Environment(loader=loader, autoescape=False, keep_trailing_newline=True)
    html = Environment(loader=loader, autoescape=True)
    return text, html


def render(env: Environment, name: str, suffix: str, context: dict[str, Any]) -> str:
    template = env.select_template([f"email/{name}.{suffix}", f"email/default.{suffix}"])
    return template.render(**context)


def render_with_subject(env: Environment, name: str, suffix: str,
                        context: dict[str, Any]) -> tuple[str, str | None]:
    """The rendered template and the ``subject`` it sets at its top level, if any."""
    template = env.select_template([f"email/{name}.{suffix}", f"email/default.{suffix}"])
    module = template.make_module(vars=context)
    subject = getattr(module, "subject", None)
    return str(module), (str(subject) if subject else None)


def _domain(settings: dict[str, Any]) -> str:
    if settings.get("message_id_domain"):
        return str(settings["message_id_domain"])
    _, address = parseaddr(str(settings["sender"]))
    return address.rpartition("@")[2] or "itsm.local"


def thread_ids(message: EventMessage, address: str, domain: str,
               token: str | None = None) -> tuple[str, str | None]:
    """(Message-ID, thread root) of the mail telling ``address`` about ``message``; with
    the recipient's reply ``token`` for the record as its last part, so that a reply's
    In-Reply-To proves what it answers."""
    number = (message.record or {}).get("number")
    who = token if number and token else hashlib.sha256(address.lower().encode()).hexdigest()[:12]
    if not number:
        return f"<itsm.event-{message.id}.{who}@{domain}>", None
    root = f"<itsm.{number}.{who}@{domain}>"
    if message.name == "record.created":
        return root, None
    return f"<itsm.{number}.event-{message.id}.{who}@{domain}>", root


def reply_address(settings: dict[str, Any], token: str) -> str:
    """``reply_to`` (default: the sender) with ``+<token>`` added to its local part."""
    name, address = parseaddr(str(settings.get("reply_to") or settings["sender"]))
    local, _, domain = address.rpartition("@")
    if not local:
        return ""
    return formataddr((name, f"{local}+{token}@{domain}"))


def state_label(record: dict[str, Any]) -> str:
    """The record's state as its workflow names it ("In progress"), as the pages show it;
    the code in words when the record's type is not known here."""
    state = str(record.get("state") or "")
    try:
        record_type = current_itsm().types.by_name.get(record.get("type"))
    except RuntimeError:  # rendered outside an application (a template test)
        record_type = None
    if record_type is None or not state:
        return state.replace("_", " ")
    return record_type.workflow.state(state).title


def person_name(actor: str | None) -> str | None:
    """Who acted, by display name as the pages show them (the address when the person
    has no name or is not a user here, or outside an application)."""
    if not actor or "@" not in actor:
        return actor
    try:
        with current_itsm().Session() as session:
            name = session.scalar(select(User.name).where(User.email == actor.lower()))
    except RuntimeError:  # rendered outside an application (a template test)
        return actor
    return name or actor


def build_message(message: EventMessage, address: str, settings: dict[str, Any],
                  link: str | None, secret_key: str = "") -> EmailMessage:
    """The complete mail (headers, text and HTML parts) for one event and one address;
    with ``secret_key``, a mail about a record carries the recipient's reply token."""
    record = message.record or {}
    label = event_label(message.name)
    number = record.get("number")
    subject = f"[{number}] {record.get('title', '')} ({label})" if number else \
        f"[itsm] {label}"
    context = {"event": message, "record": record, "label": label,
               "actor": person_name(message.actor),
               "payload": message.payload, "link": link, "recipient": address,
               "subject": subject, "state_label": state_label(record),
               "priority_label": priority_label(record.get("priority"))}
    text_env, html_env = environments(str(settings.get("templates_path") or ""),
                                      plugin_template_folders())
    text, own_subject = render_with_subject(text_env, message.name, "txt", context)
    if own_subject:
        subject = f"[{number}] {own_subject}" if number else own_subject
        context["subject"] = subject
    mail = EmailMessage()
    mail["Subject"] = " ".join(subject.split())  # no line breaks from a title in a header
    mail["From"] = str(settings["sender"])
    mail["To"] = address
    mail["Date"] = format_datetime(message.created_at)
    token = reply_token(secret_key, number, address) if number and secret_key else None
    message_id, root = thread_ids(message, address, _domain(settings), token)
    mail["Message-ID"] = message_id
    if token and settings.get("reply_to_token", True) and reply_address(settings, token):
        mail["Reply-To"] = reply_address(settings, token)
    answered = str(message.payload.get("in_reply_to") or "")
    if not root and answered.startswith("<") and answered.endswith(">"):
        root = answered  # a bounce answers the mail it refuses
    if root:
        mail["In-Reply-To"] = root
        mail["References"] = root
    mail["X-Itsm-Event-Id"] = str(message.id)
    mail["X-Itsm-Event"] = message.name
    # RFC 3834: replies by vacation responders must not come back to us in a loop; a
    # bounce is itself an automatic reply.
    mail["Auto-Submitted"] = "auto-replied" if answered else "auto-generated"
    mail.set_content(text)
    mail.add_alternative(render(html_env, message.name, "html", context), subtype="html")
    for item in message.payload.get("attachments") or ():
        _attach(mail, item)
    return mail


def _attach(mail: EmailMessage, item: dict[str, Any]) -> None:
    """One attachment of the event's payload; a malformed one is left out and logged."""
    try:
        data = base64.b64decode(str(item["data"]), validate=True)
        maintype, subtype = str(item.get("content_type") or
                                "application/octet-stream").split("/", 1)
        filename = str(item["filename"])[:200]
    except (KeyError, ValueError, binascii.Error):
        log.warning("an attachment of event mail %s is malformed: left out", mail["Subject"])
        return
    if len(data) > MAX_ATTACHMENT:
        log.warning("attachment %s is over %d bytes: left out", filename, MAX_ATTACHMENT)
        return
    mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


# -- sending -------------------------------------------------------------------------------


def tls_context(settings: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.get("ca_file") or None)
    if not settings.get("verify_tls", True):  # a test server's self-signed certificate
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def send(mail: EmailMessage, settings: dict[str, Any]) -> None:
    """Hand ``mail`` to the SMTP server of the settings; raise when it was not accepted."""
    host, port = str(settings["host"]), int(settings["port"])
    timeout = float(settings["timeout"])
    if settings.get("ssl"):
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                              context=tls_context(settings))
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if settings.get("starttls") and not settings.get("ssl"):
            smtp.starttls(context=tls_context(settings))
            smtp.ehlo()
        if settings.get("username"):
            smtp.login(str(settings["username"]), str(settings.get("password") or ""))
        _, sender = parseaddr(str(settings["sender"]))
        refused = smtp.send_message(mail, from_addr=sender, to_addrs=[str(mail["To"])])
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)


class EmailChannel:
    """Delivers events as e-mail; ``deliver`` raises when the server did not accept it."""

    name = CHANNEL

    def deliver(self, message: EventMessage, recipient: Recipient) -> None:
        from itsm.plugin import current_itsm

        itsm = current_itsm()
        settings = itsm.plugin_settings("email")
        address = recipient.address
        with itsm.Session() as session:
            # Account mails (a password reset) are asked for by the person: always sent.
            if not message.name.startswith("account.") and \
                    not user_wants(session, address, CHANNEL, message.name):
                log.info("event %s not mailed to %s: turned off in their preferences",
                         message.id, address)
                return
        link = record_link(itsm, settings, message) or account_link(settings, message) \
            or payload_link(settings, message)
        mail = build_message(message, address, settings, link,
                             secret_key=str(itsm.settings.get("secret_key") or ""))
        send(mail, settings)
        log.info("event %s mailed to %s as %s", message.id, address, mail["Message-ID"])


def record_link(itsm, settings: dict[str, Any], message: EventMessage) -> str | None:
    record = message.record or {}
    base = str(settings.get("base_url") or "").rstrip("/")
    rt = itsm.types.by_name.get(record.get("type", ""))
    if not base or rt is None or not record.get("number"):
        return None
    return f"{base}/records/{rt.collection}/{record['number']}"


def payload_link(settings: dict[str, Any], message: EventMessage) -> str | None:
    """The page an event that is not about a record points to (its payload's
    ``link_path``: a review, a statement, a piece of catalog feedback)."""
    path = str(message.payload.get("link_path") or "")
    base = str(settings.get("base_url") or "").rstrip("/")
    # Only a path on this install: a payload never sends a reader elsewhere.
    if not base or not path.startswith("/") or path.startswith("//"):
        return None
    return base + path


def account_link(settings: dict[str, Any], message: EventMessage) -> str | None:
    """The link of an account mail (a password reset), made when the mail is sent: the
    outbox never holds the secret it carries."""
    from itsm.plugin import password_reset_link

    if message.name != "account.password_reset" or "reset_id" not in message.payload:
        return None
    base = str(settings.get("base_url") or message.payload.get("base") or "")
    return password_reset_link(int(message.payload["reset_id"]), base)
