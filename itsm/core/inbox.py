"""In-app notifications: the ``inbox`` channel, who hears of what, and each person's list.

The inbox is an ordinary notification channel of the core, delivered from the outbox like
e-mail and webhooks. For every committed event the core's own
``itsm_notification_recipients`` implementation (see :mod:`itsm.core.defaults`) decides,
from what every record and event already carries, which people should find it in their
inbox, and why (its *kind*):

- ``assigned``: a record was assigned to you (created, edited or moved with you as
  assignee) by someone else;
- ``reply``: someone else commented publicly on a record assigned to you;
- ``mention``: a work note names you (``@ann@example.org``, or ``@ann`` when exactly one
  person's address starts with ``ann@``);
- ``approval``: an event names you among its ``approvers`` (a list of e-mail addresses)
  or as its ``approver`` (one address): change CAB approvals, transition deliverables and
  any plugin's event shaped like them;
- ``sla``: an SLA warning or breach on a record assigned to you (or, unassigned, of one of
  your groups).

So every plugin's events reach the inbox without the plugin doing anything. Nobody is told
of their own action, and nobody hears of a record they may not read (an agency's records
stay inside the agency); the list checks read access again when it is shown. A person
chooses in their preferences which kinds also come by e-mail (when the ``email`` channel is
enabled): the recipient is then also given to that channel.

A delivery's address is ``<user id>:<kind>``; delivering it twice (a retry) stores one row.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Select,
    String,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from itsm.core.auth import Actor
from itsm.core.context import current_itsm
from itsm.core.models import Base, GroupMember, Record, User, utcnow
from itsm.core.notify import EventMessage, Recipient

if TYPE_CHECKING:
    from itsm.core.state import Itsm

log = logging.getLogger("itsm.inbox")

CHANNEL = "inbox"
EMAIL_CHANNEL = "email"

# In the order a person's one notification of an event is classified: an event that
# both assigns a record to Ann and mentions her is an assignment.
KINDS: dict[str, str] = {
    "approval": "An approval waiting for me",
    "assigned": "A record assigned to me",
    "mention": "An @mention of me in a work note",
    "reply": "A reply on a record I work",
    "sla": "An SLA warning on my record",
    "follow_up": "A low satisfaction score in a group I manage",
}
# What a notification's badge says of its kind.
SHORT: dict[str, str] = {"approval": "Approval", "assigned": "Assigned", "mention": "Mention",
                         "reply": "Reply", "sla": "Service level",
                         "follow_up": "Follow-up"}
UNREAD_SHOWN_UP_TO = 99  # the bell says "99+" beyond
EXCERPT = 280
MENTION = re.compile(r"(?<![\w@])@([\w.+-]+(?:@[\w-]+(?:\.[\w-]+)+)?)")


class Notification(Base):
    """One notification in one person's inbox."""

    __tablename__ = "inbox_notification"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[int | None] = mapped_column(
        ForeignKey("record.id", ondelete="SET NULL"))
    record_type: Mapped[str] = mapped_column(String(64), default="")
    record_number: Mapped[str] = mapped_column(String(32), default="")
    title: Mapped[str] = mapped_column(String(300), default="")
    summary: Mapped[str] = mapped_column(String(500), default="")
    excerpt: Mapped[str] = mapped_column(String(300), default="")
    actor: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("user_id", "event_id", name="uq_inbox_notification_user_event"),
        # The list (newest first) and the bell's count (unread only) of one person.
        Index("ix_inbox_notification_user", "user_id", "id"),
        Index("ix_inbox_notification_unread", "user_id", "read_at"),
        # Opening a record marks its notifications read; deleting it clears their link.
        Index("ix_inbox_notification_record", "record_id"),
    )


class InboxPreference(Base):
    """Whether one kind of notification also goes to a person by e-mail."""

    __tablename__ = "inbox_preference"
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean, default=False)


# -- who hears of an event ------------------------------------------------------------------


def _emails(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _assigned_to(event: EventMessage) -> str | None:
    """The address a record was assigned to by this event, if it assigned one."""
    if event.name == "record.created":
        new = event.payload.get("assignee")
    else:
        pair = (event.payload.get("changes") or {}).get("assignee")
        new = pair[1] if isinstance(pair, list) and len(pair) == 2 else None
    return new if isinstance(new, str) and new else None


def _mentioned(session: Session, body: str) -> set[int]:
    """Ids of the people a work note names with ``@address`` or ``@name``."""
    found: set[int] = set()
    for handle in {m.lower().rstrip(".") for m in MENTION.findall(body or "")}:
        if "@" in handle:
            user_id = session.scalar(select(User.id).where(User.email == handle))
            ids = [user_id] if user_id else []
        else:
            ids = session.scalars(select(User.id).where(
                User.email.like(handle.replace("%", "").replace("_", "\\_") + "@%",
                                escape="\\")).limit(2)).all()
        if len(ids) == 1:
            found.add(ids[0])
    return found


def _workers(session: Session, record: Record) -> set[int]:
    """Who works the record: its assignee, or the members of its group while unassigned."""
    if record.assignee_id:
        return {record.assignee_id}
    if record.group_id:
        return set(session.scalars(select(GroupMember.user_id).where(
            GroupMember.group_id == record.group_id)))
    return set()


def _manager(session: Session, event: EventMessage) -> list[int]:
    """The group manager a low-satisfaction event names (see :mod:`itsm.core.satisfaction`)."""
    email = str(event.payload.get("manager") or "").strip().lower()
    return list(session.scalars(select(User.id).where(User.email == email))) if email else []


def kinds_for(event: EventMessage, session: Session, record: Record | None) \
        -> dict[int, str]:
    """``{user id: kind}`` of the people this event concerns (before access checks)."""
    wanted: dict[int, str] = {}

    def add(ids, kind: str) -> None:
        for user_id in ids:
            wanted.setdefault(user_id, kind)

    approvers = _emails(event.payload.get("approvers")) + _emails(event.payload.get("approver"))
    if approvers and not event.name.startswith("record."):
        lowered = [a.strip().lower() for a in approvers]
        add(session.scalars(select(User.id).where(User.email.in_(lowered))), "approval")
    if record is None:
        return wanted
    assignee = _assigned_to(event)
    if assignee and event.name in ("record.created", "record.updated", "record.transitioned"):
        add(session.scalars(select(User.id).where(User.email == assignee.lower())), "assigned")
    if event.name == "record.work_noted":
        add(sorted(_mentioned(session, str(event.payload.get("body") or ""))), "mention")
    if event.name == "record.commented" and event.payload.get("public", True) \
            and record.assignee_id:
        add([record.assignee_id], "reply")
    if event.name == "satisfaction.low":  # the follow-up of a low score: the manager's
        add(_manager(session, event), "follow_up")
    if event.name in ("sla.warning", "sla.breached"):
        add(sorted(_workers(session, record)), "sla")
    return wanted


def recipients(itsm: Itsm, event: EventMessage, session: Session) -> list[Recipient]:
    """The inbox deliveries of ``event`` (and e-mails for those who asked for them)."""
    summary = event.record or {}
    number = summary.get("number")
    record = session.scalar(select(Record).where(Record.number == number)) if number else None
    wanted = kinds_for(event, session, record)
    if not wanted:
        return []
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted),
                                                                 User.active.is_(True)))}
    by_email = email_kinds(session, list(users)) if EMAIL_CHANNEL in itsm.channels else {}
    out = []
    for user_id, kind in wanted.items():
        user = users.get(user_id)
        if user is None or (event.actor and user.email == event.actor.lower()):
            continue  # nobody is told of their own action
        if not _may_read(itsm, session, user, record, summary.get("type")):
            continue
        if event.payload.get("public", True) is False and user.role == "requester":
            continue  # a work note, or a plugin's staff-only news: not for requesters
        out.append(Recipient(CHANNEL, f"{user.id}:{kind}"))
        if kind in by_email.get(user.id, ()):
            out.append(Recipient(EMAIL_CHANNEL, user.email))
    return out


def _may_read(itsm: Itsm, session: Session, user: User, record: Record | None,
              type_name: str | None) -> bool:
    from itsm.core.records import RecordService

    if record is None:
        return not type_name  # an event about a record that is gone tells nobody
    rt = itsm.types.by_name.get(record.type)
    if rt is None:
        return False
    return RecordService(itsm, session, Actor.of(session, user)).can(f"{rt.name}.read",
                                                                     record)


# -- the channel ------------------------------------------------------------------------------


def _summary(kind: str, actor: str, number: str, event: EventMessage) -> str:
    what = number or "a record"
    if kind == "assigned":
        return f"{actor} assigned {what} to you"
    if kind == "reply":
        return f"{actor} replied on {what}"
    if kind == "mention":
        return f"{actor} mentioned you in a work note on {what}"
    if kind == "approval":
        return f"Your approval is asked on {what}"
    if kind == "follow_up":
        return (f"{what} was rated {event.payload.get('score')}/5: follow it up with the "
                "requester")
    metric = str(event.payload.get("metric") or "service level").replace("_", " ")
    state = "breached" if event.name == "sla.breached" else "about to breach"
    return f"The {metric} target of {what} is {state}"


class InboxChannel:
    """Stores each delivery as a row of the recipient's inbox."""

    name = CHANNEL

    def deliver(self, message: EventMessage, recipient: Recipient) -> None:
        user_part, _, kind = recipient.address.partition(":")
        if not user_part.isdigit() or kind not in KINDS:
            raise ValueError(f"an inbox address is <user id>:<kind>, not {recipient.address!r}")
        itsm = current_itsm()
        record = message.record or {}
        number = str(record.get("number") or "")
        with itsm.Session() as session:
            if session.scalar(select(Notification.id).where(
                    Notification.user_id == int(user_part),
                    Notification.event_id == message.id)):
                return  # delivered before (a retry after a lost answer)
            record_id = session.scalar(select(Record.id).where(Record.number == number)) \
                if number else None
            actor = "itsm"
            if message.actor and message.actor != "system":
                user = session.scalar(select(User).where(User.email == message.actor))
                actor = (user.name or user.email) if user else message.actor
            body = str(message.payload.get("body") or "") if kind in ("reply", "mention") \
                else ""
            session.add(Notification(
                user_id=int(user_part), event_id=message.id, kind=kind, record_id=record_id,
                record_type=str(record.get("type") or "")[:64], record_number=number[:32],
                title=str(record.get("title") or "")[:300],
                summary=_summary(kind, actor, number, message)[:500],
                excerpt=body[:EXCERPT], actor=actor[:254], created_at=message.created_at))
            try:
                session.commit()
            except IntegrityError:  # another worker stored it meanwhile
                session.rollback()


# -- reading and marking ----------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[Notification]
    next_cursor: int | None


def unread_count_query(user_id: int) -> Select:
    """The ``select`` of how many notifications ``user_id`` has not read (up to 100)."""
    ids = select(Notification.id).where(Notification.user_id == user_id,
                                         Notification.read_at.is_(None)) \
        .limit(UNREAD_SHOWN_UP_TO + 1).subquery()
    return select(func.count()).select_from(ids)


def unread_count(session: Session, user_id: int) -> int:
    """How many notifications ``user_id`` has not read (counted up to 100)."""
    return int(session.scalar(unread_count_query(user_id)) or 0)


def readable(itsm: Itsm, session: Session, actor: Actor, items: list[Notification]) \
        -> list[Notification]:
    """The notifications whose record ``actor`` may still read (agency moves, lost roles)."""
    from itsm.core.records import RecordService

    ids = {n.record_id for n in items if n.record_id}
    records = {r.id: r for r in session.scalars(select(Record).where(Record.id.in_(ids)))} \
        if ids else {}
    service = RecordService(itsm, session, actor)
    out = []
    for item in items:
        record = records.get(item.record_id) if item.record_id else None
        if record is None:
            continue
        rt = itsm.types.by_name.get(record.type)
        if rt is not None and service.can(f"{rt.name}.read", record):
            out.append(item)
    return out


def page_of(itsm: Itsm, session: Session, actor: Actor, *, unread: bool = False,
            limit: int = 50, before: int | None = None) -> Page:
    """One page of ``actor``'s notifications, newest first, from before id ``before``."""
    query = select(Notification).where(Notification.user_id == actor.id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    if before is not None:
        query = query.where(Notification.id < before)
    rows = list(session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(readable(itsm, session, actor, rows), rows[-1].id if more and rows else None)


def mark_read(session: Session, user_id: int, notification_id: int | None = None) -> int:
    """Mark one notification (or all) of ``user_id`` read; how many changed."""
    query = update(Notification).where(Notification.user_id == user_id,
                                       Notification.read_at.is_(None))
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    return session.execute(query.values(read_at=utcnow())
                           .execution_options(synchronize_session=False)).rowcount


def mark_read_for_record(session: Session, user_id: int, number: str) -> int:
    """Mark ``user_id``'s unread notifications about record ``number`` read."""
    unread = (Notification.user_id == user_id, Notification.read_at.is_(None),
              Notification.record_number == number)
    # Most records opened have nothing unread: a read then starts no write (on SQLite an
    # UPDATE takes the write lock even when it matches nothing).
    if session.scalar(select(Notification.id).where(*unread).limit(1)) is None:
        return 0
    return session.execute(
        update(Notification).where(*unread)
        .values(read_at=utcnow()).execution_options(synchronize_session=False)).rowcount


def email_kinds(session: Session, user_ids: list[int]) -> dict[int, set[str]]:
    """``{user id: kinds that also go by e-mail}``."""
    out: dict[int, set[str]] = {}
    if not user_ids:
        return out
    for pref in session.scalars(select(InboxPreference).where(
            InboxPreference.user_id.in_(user_ids), InboxPreference.email.is_(True))):
        out.setdefault(pref.user_id, set()).add(pref.kind)
    return out


def set_email_kinds(session: Session, user_id: int, kinds: set[str]) -> None:
    """Replace which kinds also go to ``user_id`` by e-mail."""
    unknown = kinds - set(KINDS)
    if unknown:
        from itsm.core.errors import ValidationError

        raise ValidationError("unknown kinds of notification", fields={
            "email": [f"unknown kind {k!r}" for k in sorted(unknown)]})
    current = {p.kind: p for p in session.scalars(select(InboxPreference).where(
        InboxPreference.user_id == user_id))}
    for kind in KINDS:
        pref = current.get(kind)
        if pref is None:
            session.add(InboxPreference(user_id=user_id, kind=kind, email=kind in kinds))
        else:
            pref.email = kind in kinds


def as_dict(item: Notification, url: str | None = None) -> dict[str, Any]:
    """A notification as the API gives it."""
    return {"id": item.id, "kind": item.kind, "kind_label": SHORT.get(item.kind, item.kind),
            "summary": item.summary, "excerpt": item.excerpt, "actor": item.actor,
            "record": {"number": item.record_number, "type": item.record_type,
                       "title": item.title, "url": url},
            "created_at": item.created_at.isoformat(), "read": item.read_at is not None,
            "read_at": item.read_at.isoformat() if item.read_at else None}
