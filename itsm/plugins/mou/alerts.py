"""Tell the relationship manager when an agency falls below a target, once per month,
and when the agreement is about to end (90, 30 and 7 days before).

Run from ``itsm_periodic``: for every active MOU, the month so far is measured; each
target and metric below its required compliance writes one ``mou.compliance_below``
outbox event, claimed by a unique :class:`MouAlert` row so that several workers, and
every later cycle of the month, send it only once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from itsm.plugin import Actor, Agency, Event, utcnow
from itsm.plugins.mou import compliance
from itsm.plugins.mou.models import Mou, MouAlert, MouContact, MouReminder

EVENT = "mou.compliance_below"


def check(itsm, now: datetime | None = None) -> int:
    """Write the alerts due at ``now``; return how many were written."""
    now = now or utcnow()
    start, end = now.date().replace(day=1), now.date()
    period = f"{start.year}-{start.month:02d}"
    written: list[Event] = []
    with itsm.unit_of_work(Actor.system()) as service:
        session = service.session
        agreements = session.execute(select(Mou, Agency.code).join(
            Agency, Agency.id == Mou.agency_id).where(Mou.kind == "mou",
                                                      Mou.state == "active")).all()
        for mou, code in agreements:
            data = compliance.report(session, code, start, end, now)
            manager = session.scalar(select(MouContact).where(
                MouContact.mou_id == mou.id, MouContact.position == 0))
            for line in data["targets"]:
                if not line["below_target"]:
                    continue
                try:
                    with session.begin_nested():
                        session.add(MouAlert(mou_id=mou.id, target=line["target"],
                                             metric=line["metric"], period=period,
                                             compliance=line["compliance"]))
                except IntegrityError:
                    continue  # already announced this month
                event = Event(name=EVENT, record_id=mou.id, payload={
                    "record": {"number": mou.number, "type": mou.type, "title": mou.title,
                               "state": mou.state, "priority": mou.priority},
                    "agency": code, "period": period, "target": line["target"],
                    "metric": line["metric"], "compliance": line["compliance"],
                    "required_percent": line["required_percent"],
                    "measured": line["measured"], "breached": line["breached"],
                    "relationship_manager": manager.email if manager else None})
                session.add(event)
                written.append(event)
        session.flush()
        service.events.extend(written)
    return len(written)


# -- renewal reminders ------------------------------------------------------------------

EXPIRY_EVENT = "mou.expiring"
#: Days before an agreement ends at which its relationship manager is reminded.
REMINDER_DAYS = (90, 30, 7)


def remind_expiry(itsm, now: datetime | None = None) -> int:
    """Remind the relationship manager of agreements in force that end within 90, 30 or
    7 days: one reminder per window and end date (the nearest window only, when an
    agreement is first seen inside several); return how many were written."""
    today = (now or utcnow()).date()
    written: list[Event] = []
    with itsm.unit_of_work(Actor.system()) as service:
        session = service.session
        ending = session.execute(select(Mou, Agency.code).join(
            Agency, Agency.id == Mou.agency_id).where(
            Mou.kind == "mou", Mou.state == "active", Mou.effective_to.is_not(None),
            Mou.effective_to >= today,
            Mou.effective_to <= today + timedelta(days=max(REMINDER_DAYS))))
        for mou, code in ending.all():
            left = (mou.effective_to - today).days
            window = min(days for days in REMINDER_DAYS if left <= days)
            try:
                with session.begin_nested():
                    session.add(MouReminder(mou_id=mou.id, days=window,
                                            ends_on=mou.effective_to))
            except IntegrityError:
                continue  # this window's reminder went already
            manager = session.scalar(select(MouContact).where(
                MouContact.mou_id == mou.id, MouContact.position == 0))
            event = Event(name=EXPIRY_EVENT, record_id=mou.id, payload={
                "record": {"number": mou.number, "type": mou.type, "title": mou.title,
                           "state": mou.state, "priority": mou.priority},
                "agency": code, "ends_on": mou.effective_to.isoformat(),
                "days_left": left, "window": window,
                "relationship_manager": manager.email if manager else None})
            session.add(event)
            written.append(event)
        session.flush()
        service.events.extend(written)
    return len(written)
