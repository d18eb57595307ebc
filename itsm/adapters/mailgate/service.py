"""Turn one RFC 822 message into a record or a comment, through the record service.

:func:`ingest` is called by ``itsm mail ingest`` (a message on stdin) and by the SMTP
listener alike. It returns an :class:`Outcome` (``created``, ``commented`` or
``ignored`` with the reason) or raises :class:`MailRejected` with one line saying why;
a rejected message writes nothing.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import select

from itsm.adapters.mailgate.models import IngestedMessage
from itsm.plugin import (
    Actor,
    ItsmError,
    NotFound,
    RecordService,
    User,
    agency_by_code,
    create_user,
    known_roles,
)

log = logging.getLogger("itsm.mailgate")

PLUGIN = "mailgate"
NUMBER = re.compile(r"\[([A-Z]{2,8}[0-9]{1,12})\]")
QUOTE_HEADER = re.compile(r"^(On .+ wrote:|Am .+ schrieb .+:|Le .+ a écrit ?:)\s*$")
BULK_PRECEDENCE = ("bulk", "junk", "list")


class MailRejected(ItsmError):
    """The message is refused (unknown sender, record not theirs, too large, ...)."""

    status = 422
    code = "mail_rejected"


@dataclass
class Outcome:
    action: str  # created | commented | ignored
    number: str | None = None
    reason: str = ""
    attachments: int = 0

    def line(self) -> str:
        if self.action == "ignored":
            return f"ignored: {self.reason}"
        extra = f" with {self.attachments} attachment(s)" if self.attachments else ""
        return f"{self.action} {self.number}{extra}"


# -- reading the message ---------------------------------------------------------------------


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=default_policy).parsebytes(raw)  # type: ignore[return-value]


def _own_addresses(itsm) -> tuple[set[str], str]:
    """Our outgoing sender address(es) and the domain of our Message-IDs (if the e-mail
    adapter is installed)."""
    try:
        settings = itsm.plugin_settings("email")
    except Exception:  # the outbound adapter is not installed
        return set(), ""
    _, sender = parseaddr(str(settings.get("sender") or ""))
    domain = str(settings.get("message_id_domain") or "") or sender.rpartition("@")[2]
    return ({sender.lower()} if sender else set()), domain.lower()


def ignore_reason(itsm, mail: EmailMessage) -> str | None:
    """Why ``mail`` must not be answered with a record (a loop, an auto-reply, bulk)."""
    if mail.get("X-Itsm-Event-Id") is not None:
        return "our own notification (X-Itsm-Event-Id)"
    auto = str(mail.get("Auto-Submitted") or "").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"automatic message (Auto-Submitted: {auto})"
    precedence = str(mail.get("Precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return f"bulk message (Precedence: {precedence})"
    if mail.get("List-Id") is not None:
        return "mailing-list message (List-Id)"
    if mail.get("X-Auto-Response-Suppress") is not None:
        return "automatic message (X-Auto-Response-Suppress)"
    if mail.get("X-Autoreply") is not None or mail.get("X-Autorespond") is not None:
        return "automatic reply (X-Autoreply)"
    if mail.get_content_type() == "multipart/report":
        return "delivery report (multipart/report)"
    return_path = mail.get("Return-Path")
    if return_path is not None and str(return_path).strip() in ("<>", ""):
        return "bounce (empty Return-Path)"
    ours, domain = _own_addresses(itsm)
    _, sender = parseaddr(str(mail.get("From") or ""))
    if sender and sender.lower() in ours:
        return f"sent by itsm itself ({sender})"
    message_id = str(mail.get("Message-ID") or "").strip().lower()
    if domain and message_id.startswith("<itsm.") and message_id.endswith(f"@{domain}>"):
        return "our own notification (Message-ID)"
    return None


class _HtmlText(HTMLParser):
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
              "blockquote", "pre", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def body_text(mail: EmailMessage) -> str:
    """The text of the message: its text/plain body, else its HTML body as text."""
    part = mail.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset
        content = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        return html_to_text(content)
    return content.replace("\r\n", "\n").strip()


def strip_quoted(text: str) -> str:
    """A reply without the quoted message below it (``>`` lines, "On ... wrote:")."""
    kept: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    while kept and (not kept[-1].strip() or QUOTE_HEADER.match(kept[-1].strip())):
        kept.pop()
    return "\n".join(kept).strip()


def attachments(mail: EmailMessage) -> list[tuple[str, str, bytes]]:
    """(file name, content type, bytes) of every attachment."""
    out = []
    for index, part in enumerate(mail.iter_attachments(), start=1):
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True) or b""
        name = part.get_filename() or f"attachment-{index}.{part.get_content_subtype()}"
        out.append((name, part.get_content_type(), data))
    return out


# -- writing ---------------------------------------------------------------------------------


def _sender(mail: EmailMessage) -> str:
    pairs = getaddresses([str(mail.get("From") or "")])
    addresses = [a for _, a in pairs if a]
    if not addresses:
        raise MailRejected("the message has no sender address (From)")
    return addresses[0].strip().lower()


def _actor_for(itsm, session, address: str, settings: dict[str, Any]) -> Actor:
    user = session.scalar(select(User).where(User.email == address))
    if user is not None:
        if not user.active:
            raise MailRejected(f"sender {address} is deactivated")
        return Actor.of(session, user)
    policy = str(settings.get("unknown_senders") or "reject").strip().lower()
    if policy != "guest":
        raise MailRejected(f"unknown sender {address} (unknown_senders = reject)")
    code = str(settings.get("guest_agency") or "").strip() or None
    if code:
        try:
            agency_by_code(session, code)
        except NotFound:
            raise MailRejected(f"guest_agency {code!r} does not exist: create it with "
                               "`itsm agencies add` or change the setting") from None
    user = create_user(session, address, role="requester", agency=code,
                       roles=known_roles(list(itsm.permissions.values())))
    log.info("created guest requester %s from an e-mail", address)
    return Actor.of(session, user)


def ingest(itsm, raw: bytes) -> Outcome:
    """Ingest one raw message; raise :class:`MailRejected` (nothing written) to refuse it."""
    settings = itsm.plugin_settings(PLUGIN)
    limit = int(settings.get("max_bytes") or 0)
    if limit and len(raw) > limit:
        raise MailRejected(f"message of {len(raw)} bytes is larger than max_bytes ({limit})")
    mail = parse(raw)
    reason = ignore_reason(itsm, mail)
    if reason:
        return Outcome("ignored", reason=reason)
    address = _sender(mail)
    message_id = str(mail.get("Message-ID") or "").strip()[:255]
    subject = " ".join(str(mail.get("Subject") or "").split())
    match = NUMBER.search(subject)
    number = match.group(1) if match and itsm.types.for_number(match.group(1)) else None

    with itsm.unit_of_work(Actor.system()) as system:
        session = system.session
        if message_id:
            seen = session.scalar(select(IngestedMessage).where(
                IngestedMessage.message_id == message_id))
            if seen is not None:
                return Outcome("ignored", seen.record_number,
                               f"message {message_id} was already ingested "
                               f"({seen.outcome} {seen.record_number})")
        actor = _actor_for(itsm, session, address, settings)
        service = RecordService(itsm, session, actor)
        try:
            outcome = _write(itsm, service, mail, subject, number, settings)
        finally:
            itsm.record_denials(service)
        if message_id:
            session.add(IngestedMessage(message_id=message_id, sender=address[:254],
                                        record_number=outcome.number or "",
                                        outcome=outcome.action))
            session.flush()
    log.info("mail from %s: %s", address, outcome.line())
    return outcome


def _write(itsm, service: RecordService, mail: EmailMessage, subject: str,
           number: str | None, settings: dict[str, Any]) -> Outcome:
    text = body_text(mail)
    files = attachments(mail)
    if number:
        try:
            record = service.get(number)
        except NotFound:
            raise MailRejected(f"{number} does not exist or {service.actor.email} may not "
                               "see it; the reply was not added") from None
        body = strip_quoted(text) or text
        if body.strip():
            service.comment(record, body, public=True)
        elif not files:
            raise MailRejected(f"the reply to {number} has no text and no attachment")
        action = "commented"
    else:
        type_name = str(settings.get("record_type") or "incident")
        try:
            rt = itsm.types.get(type_name)
        except NotFound:
            raise MailRejected(f"record_type {type_name!r} is not enabled: enable its plugin "
                               "or change [plugins.mailgate] record_type") from None
        title = subject.strip()
        data: dict[str, Any] = {"title": (title or "(no subject)")[:300],
                                "description": text[:100_000]}
        if "channel" in itsm.types.schemas[rt.name]["in"]().fields:
            data["channel"] = "email"
        record = service.create(rt.name, data)
        action = "created"
    for name, content_type, content in files:
        service.attach(record, name, content_type, io.BytesIO(content))
    return Outcome(action, record.number, attachments=len(files))
