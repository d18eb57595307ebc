"""Turn one RFC 822 message into a record or a comment, through the record service.

:func:`ingest` is called by ``itsm mail ingest`` (a message on stdin) and by the SMTP
listener alike. It returns an :class:`Outcome`: ``created``, ``commented``, ``ignored``
(an auto-reply, a message seen before), or ``rejected``/``held`` when itsm mailed the
sender a bounce saying why (or kept the message for review). When itsm cannot tell the
sender itself it raises :class:`MailRejected` with one line instead, and the MTA (or
the SMTP client) bounces the message; :class:`MailDeferred` asks the MTA to try later
(the sender's rate limit). A message that is not taken writes no record, comment or
user.

Who may act by mail: a reply becomes a comment only when its From address is on the
record (requester, assignee, a member of its group) and the sender is verified (see
:mod:`itsm.adapters.mailgate.trust`); IT staff open records by mail only when verified.
Requesters open records by mail as before.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from itsm.adapters.mailgate.models import HeldMessage, IngestedMessage, SenderWindow
from itsm.adapters.mailgate.reading import (
    TooDeep,
    attachments,
    body_text,
    from_addresses,
    ignore_reason,
    parse,
    parse_headers,
    return_path,
    strip_quoted,
)
from itsm.adapters.mailgate.trust import (
    DnsFunc,
    domain_of,
    has_reply_token,
    verified_by_dkim,
    verified_by_mta,
)
from itsm.plugin import (
    Actor,
    Event,
    InputError,
    ItsmError,
    NotFound,
    Record,
    RecordService,
    User,
    agency_by_code,
    check_text,
    create_user,
    known_roles,
)

log = logging.getLogger("itsm.mailgate")

PLUGIN = "mailgate"
NUMBER = re.compile(r"\[([A-Z]{2,8}[0-9]{1,12})\]")
BOUNCE_EVENTS = ("mail.rejected", "mail.held")


class MailRejected(ItsmError):
    """The message is refused and nobody was told yet: the MTA bounces it."""

    status = 422
    code = "mail_rejected"


class MailDeferred(ItsmError):
    """Not now: the sender is over the rate limit; the MTA tries again later."""

    status = 429
    code = "mail_deferred"


class _Refused(Exception):
    """Why the message is not taken; ``holdable`` refusals may be held for review."""

    def __init__(self, reason: str, *, holdable: bool = False, number: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.holdable = holdable
        self.number = number


@dataclass
class Outcome:
    action: str  # created | commented | ignored | rejected | held
    number: str | None = None
    reason: str = ""
    attachments: int = 0
    bounce_to: str = ""

    def line(self) -> str:
        if self.action == "ignored":
            return f"ignored: {self.reason}"
        if self.action in ("rejected", "held"):
            told = f" (bounce mailed to {self.bounce_to})" if self.bounce_to else ""
            return f"{self.action}: {self.reason}{told}"
        extra = f" with {self.attachments} attachment(s)" if self.attachments else ""
        return f"{self.action} {self.number}{extra}"


def _own_addresses(itsm) -> tuple[set[str], str]:
    """Our outgoing sender and reply addresses, and the domain of our Message-IDs (if the
    e-mail adapter is installed)."""
    try:
        settings = itsm.plugin_settings("email")
    except Exception:  # the outbound adapter is not installed
        return set(), ""
    ours = set()
    for name in ("sender", "reply_to"):
        _, address = parseaddr(str(settings.get(name) or ""))
        if address:
            ours.add(address.lower())
    _, sender = parseaddr(str(settings.get("sender") or ""))
    domain = str(settings.get("message_id_domain") or "") or sender.rpartition("@")[2]
    return ours, domain.lower()


def _printable(value: str, size: int) -> str:
    """``value`` cut to ``size``, with what no database stores (NUL, lone surrogates)
    replaced: for the names and subjects that a refusal records and a bounce quotes."""
    return re.sub("[\x00\ud800-\udfff]", "\ufffd", " ".join(value.split()))[:size]


def _message_key(headers: EmailMessage) -> tuple[str, str] | None:
    """(SHA-256 of the whole Message-ID, its start for people to read), or None."""
    message_id = str(headers.get("Message-ID") or "").strip()
    if not message_id:
        return None
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()
    return digest, _printable(message_id, 255)


def _setting_list(value: Any) -> list[str]:
    """A list setting that may come from the environment as "a, b"."""
    if isinstance(value, str):
        return [v for v in re.split(r"[,\s]+", value) if v]
    return [str(v) for v in value or ()]


# -- the rate limit --------------------------------------------------------------------------


def count_mail(itsm, sender: str, limit: int, window: float) -> None:
    """Count one mail of ``sender``; raise :class:`MailDeferred` when that makes more than
    ``limit`` in the last ``window`` seconds.

    The count is a row per sender and window, raised by one UPDATE in the database, so
    mails that arrive at the same moment are all counted. The last ``window`` seconds
    are estimated from this window's count and the part of the previous one's that
    still lies within them, so a burst at a window's edge is not counted twice as low.
    """
    if limit <= 0 or window <= 0:
        return
    now = time.time()
    number = int(now // window)
    with itsm.Session() as session:
        for _ in range(3):
            raised = session.execute(
                update(SenderWindow)
                .where(SenderWindow.sender == sender, SenderWindow.window_number == number)
                .values(mails=SenderWindow.mails + 1)).rowcount
            if raised:
                break
            session.add(SenderWindow(sender=sender, window_number=number, mails=1))
            try:
                session.flush()
                break
            except IntegrityError:  # another process made the row first: raise it instead
                session.rollback()
        rows = dict(session.execute(
            select(SenderWindow.window_number, SenderWindow.mails)
            .where(SenderWindow.sender == sender,
                   SenderWindow.window_number.in_((number, number - 1)))).all())
        session.execute(delete(SenderWindow).where(SenderWindow.window_number < number - 1))
        session.commit()
    elapsed = (now % window) / window
    recent = rows.get(number, 1) + rows.get(number - 1, 0) * (1 - elapsed)
    if recent > limit:
        raise MailDeferred(f"{sender} sent {round(recent)} mails in the last {window:g} s "
                           f"(rate_limit is {limit}): try again later")


# -- ingesting -------------------------------------------------------------------------------


def ingest(itsm, raw: bytes, *, bounce: bool = True, dnsfunc: DnsFunc | None = None,
           released: int | None = None) -> Outcome:
    """Ingest one raw message (see the module's description).

    :param bounce: mail the sender why a message was refused (False: raise
        :class:`MailRejected` instead, for the SMTP listener, which answers 550).
    :param dnsfunc: how DKIM keys are looked up (dkimpy's DNS lookup by default).
    :param released: the id of a held message a person released: taken without the
        sender checks, the rate limit and the duplicate check.
    """
    settings = itsm.plugin_settings(PLUGIN)
    limit = int(settings.get("max_bytes") or 0)
    if limit and len(raw) > limit:
        raise MailRejected(f"message of {len(raw)} bytes is larger than max_bytes ({limit})")
    headers = parse_headers(raw)
    ours, domain = _own_addresses(itsm)
    reason = ignore_reason(headers, ours, domain)
    if reason and released is None:
        return Outcome("ignored", reason=reason)
    senders = from_addresses(headers)
    key = _message_key(headers)
    if released is None:
        if key is not None:
            with itsm.Session() as session:
                seen = session.scalar(select(IngestedMessage).where(
                    IngestedMessage.message_hash == key[0]))
            if seen is not None:
                what = " ".join(filter(None, (seen.outcome, seen.record_number)))
                return Outcome("ignored", seen.record_number or None,
                               f"message {key[1]} was already ingested ({what})")
        if senders:
            count_mail(itsm, _printable(senders[0], 254), int(settings.get("rate_limit") or 0),
                       float(settings.get("rate_window_seconds") or 0))
    try:
        outcome = _take(itsm, raw, senders, key, settings, dnsfunc, released)
    except _Refused as refusal:
        if released is not None:  # a person chose to take it: tell them why not
            raise MailRejected(refusal.reason) from None
        return _refuse(itsm, raw, headers, senders, key, refusal, settings,
                       bounce=bounce, ours=ours)
    log.info("mail from %s: %s", senders[0], outcome.line())
    return outcome


def _take(itsm, raw: bytes, senders: list[str], key: tuple[str, str] | None,
          settings: dict[str, Any], dnsfunc: DnsFunc | None, released: int | None) -> Outcome:
    if not senders:
        raise _Refused("the message has no sender address (From)")
    if len(senders) > 1:
        raise _Refused(f"the message names {len(senders)} senders in From "
                       f"({', '.join(_printable(s, 80) for s in senders[:5])}); itsm takes "
                       "a mail from one sender only")
    try:
        address = check_text(senders[0], "sender address")
        mail = parse(raw, int(settings.get("max_depth") or 50))
        subject = check_text(" ".join(str(mail.get("Subject") or "").split()), "subject")
        text = check_text(body_text(mail), "body")
        files = [(check_text(name, "attachment name"), kind, data)
                 for name, kind, data in attachments(mail)]
    except TooDeep as exc:
        raise _Refused(f"the message was not read: {exc}") from None
    except InputError as exc:  # names the part: "body: contains a NUL character ..."
        raise _Refused(f"the message was not read: {exc}") from None
    match = NUMBER.search(subject)
    number = match.group(1) if match and itsm.types.for_number(match.group(1)) else None

    service: RecordService | None = None
    try:
        with itsm.unit_of_work(Actor.system()) as system:
            session = system.session
            actor = _actor_for(itsm, session, address, settings)
            service = RecordService(itsm, session, actor)
            if released is None:
                _check_sender(itsm, service, mail, raw, number, settings, dnsfunc)
            outcome = _write(itsm, service, text, files, subject, number, settings)
            if released is not None:
                session.execute(delete(HeldMessage).where(HeldMessage.id == released))
                if key is not None:
                    session.execute(delete(IngestedMessage).where(
                        IngestedMessage.message_hash == key[0]))
            if key is not None:
                session.add(IngestedMessage(message_hash=key[0], message_id=key[1],
                                            sender=address[:254],
                                            record_number=outcome.number or "",
                                            outcome=outcome.action))
                session.flush()
    finally:
        if service is not None:
            itsm.record_denials(service)
    return outcome


def _check_sender(itsm, service: RecordService, mail: EmailMessage, raw: bytes,
                  number: str | None, settings: dict[str, Any],
                  dnsfunc: DnsFunc | None) -> None:
    """Refuse (holdably) what the sender may not do by mail without verification."""
    actor = service.actor
    address = actor.email
    if number is None and actor.role == "requester":
        return  # requesters (and guests) open records by mail as before
    how = verification(itsm, mail, raw, address, number, settings, dnsfunc)
    domain = domain_of(address)
    if number is None:
        if how is None:
            raise _Refused(
                f"{address} is IT staff, and itsm opens records by mail for staff only "
                f"when the sender is verified (Authentication-Results of a trusted mail "
                f"server, or a DKIM signature of {domain}); nothing was opened: use the "
                "console or the API", holdable=True)
        return
    if how is None:
        raise _Refused(
            f"the reply to {number} was not added: it carries no reply token of a mail "
            f"itsm sent to {address} about {number}, and the sender could not be verified "
            f"(no Authentication-Results of a trusted mail server, no valid DKIM signature "
            f"of {domain}); answer the latest mail itsm sent you about {number}",
            holdable=True, number=number)
    try:
        record = service.get(number)  # permission first: say nothing of others' records
    except NotFound:
        raise _Refused(f"{number} does not exist or {address} may not see it; the reply "
                       "was not added", holdable=True, number=number) from None
    if not on_record(record, actor):
        raise _Refused(f"{address} is not the requester, the assignee or in the group of "
                       f"{number}; the reply was not added", holdable=True, number=number)


def on_record(record: Record, actor: Actor) -> bool:
    """True when ``actor`` is on ``record``: its requester, its assignee or a member of its
    assignment group (the people itsm mails about it)."""
    return actor.id is not None and (
        actor.id in (record.requester_id, record.assignee_id)
        or (record.group_id is not None and record.group_id in actor.group_ids))


def verification(itsm, mail: EmailMessage, raw: bytes, address: str, number: str | None,
                 settings: dict[str, Any], dnsfunc: DnsFunc | None = None) -> str | None:
    """How the sender ``address`` is verified (a reply token for ``number``, a trusted
    MTA's Authentication-Results, a DKIM signature verified here), or None."""
    secret = str(itsm.settings.get("secret_key") or "")
    if number and has_reply_token(mail, secret, number, address):
        return f"reply token for {number}"
    how = verified_by_mta(mail, _setting_list(settings.get("trusted_authserv_ids")), address)
    if how is None and settings.get("dkim_verify", True):
        how = verified_by_dkim(raw, address, dnsfunc)
    return how


def _actor_for(itsm, session, address: str, settings: dict[str, Any]) -> Actor:
    user = session.scalar(select(User).where(User.email == address))
    if user is not None:
        if not user.active:
            raise _Refused(f"sender {address} is deactivated")
        return Actor.of(session, user)
    policy = str(settings.get("unknown_senders") or "reject").strip().lower()
    if policy != "guest":
        raise _Refused(f"unknown sender {address} (unknown_senders = reject)")
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


def _write(itsm, service: RecordService, text: str, files: list[tuple[str, str, bytes]],
           subject: str, number: str | None, settings: dict[str, Any]) -> Outcome:
    if number:
        try:
            record = service.get(number)
        except NotFound:
            raise _Refused(f"{number} does not exist or {service.actor.email} may not see "
                           "it; the reply was not added", holdable=True, number=number) \
                from None
        body = strip_quoted(text) or text
        if body.strip():
            service.comment(record, body, public=True)
        elif not files:
            raise _Refused(f"the reply to {number} has no text and no attachment")
        action = "commented"
    else:
        type_name = str(settings.get("record_type") or "incident")
        try:
            rt = itsm.types.get(type_name)
        except NotFound:
            raise MailRejected(f"record_type {type_name!r} is not enabled: enable its plugin "
                               "or change [plugins.mailgate] record_type") from None
        data: dict[str, Any] = {"title": (subject.strip() or "(no subject)")[:300],
                                "description": text[:100_000]}
        if "channel" in itsm.types.schemas[rt.name]["in"]().fields:
            data["channel"] = "email"
        record = service.create(rt.name, data)
        action = "created"
    for name, content_type, content in files:
        service.attach(record, name, content_type, io.BytesIO(content))
    return Outcome(action, record.number, attachments=len(files))


# -- refusing --------------------------------------------------------------------------------


def _bounce_address(headers: EmailMessage, senders: list[str], ours: set[str]) -> str:
    """Where a bounce goes: the envelope sender the MTA recorded, else the one From."""
    address = return_path(headers) or (senders[0] if len(senders) == 1 else "")
    if not address or "@" not in address or address in ours:
        return ""
    try:
        return check_text(address, "bounce address")[:254]
    except InputError:
        return ""


def _refuse(itsm, raw: bytes, headers: EmailMessage, senders: list[str],
            key: tuple[str, str] | None, refusal: _Refused, settings: dict[str, Any], *,
            bounce: bool, ours: set[str]) -> Outcome:
    """Hold or reject the message: record it, mail the sender why; or raise
    :class:`MailRejected` when there is nobody itsm can tell."""
    hold = refusal.holdable and str(settings.get("untrusted") or "reject").lower() == "hold"
    to = _bounce_address(headers, senders, ours) if bounce else ""
    if not (settings.get("bounces", True) and "email" in itsm.channels):
        to = ""
    if not hold and not to:
        raise MailRejected(refusal.reason)
    action = "held" if hold else "rejected"
    sender = _printable(senders[0] if senders else "", 254)
    subject = _printable(str(headers.get("Subject") or ""), 300)
    events: list[Event] = []
    with itsm.Session() as session:
        if key is not None:
            session.add(IngestedMessage(message_hash=key[0], message_id=key[1],
                                        sender=sender, record_number=refusal.number or "",
                                        outcome=action))
        if hold:
            session.add(HeldMessage(message_hash=key[0] if key is not None else None,
                                    sender=sender, subject=subject, reason=refusal.reason,
                                    raw=raw))
        if to:
            events.append(Event(name=f"mail.{action}", payload={
                "to": to, "reason": refusal.reason, "subject": subject, "sender": sender,
                "record": None, "actor": None,
                "in_reply_to": key[1] if key is not None else ""}))
            session.add_all(events)
        try:
            session.commit()
        except IntegrityError:  # the same message, refused by another process just now
            session.rollback()
            return Outcome("ignored", refusal.number, "the message was refused already")
    itsm.outbox.committed(events)
    log.info("mail from %s %s: %s", sender, action, refusal.reason)
    return Outcome(action, refusal.number, refusal.reason, bounce_to=to)


# -- held messages ---------------------------------------------------------------------------


def held_messages(itsm) -> list[HeldMessage]:
    with itsm.Session() as session:
        return list(session.scalars(select(HeldMessage).order_by(HeldMessage.id)))


def release(itsm, held_id: int) -> Outcome:
    """Take a held message as if its sender had been verified (a person checked it)."""
    with itsm.Session() as session:
        held = session.get(HeldMessage, held_id)
        if held is None:
            raise NotFound(f"no held message {held_id} (see `itsm mail held`)")
        raw = held.raw
    return ingest(itsm, raw, released=held_id)


def discard(itsm, held_id: int) -> None:
    """Drop a held message; a copy that comes again stays recognised and is ignored."""
    with itsm.Session() as session:
        held = session.get(HeldMessage, held_id)
        if held is None:
            raise NotFound(f"no held message {held_id} (see `itsm mail held`)")
        if held.message_hash:
            session.execute(update(IngestedMessage).where(
                IngestedMessage.message_hash == held.message_hash)
                .values(outcome="discarded"))
        session.delete(held)
        session.commit()
