"""Tell the relationship manager when an agency falls below a target, once per month.

Run from ``itsm_periodic``: for every active MOU, the month so far is measured; each
target and metric below its required compliance writes one ``mou.compliance_below``
outbox event, claimed by a unique :class:`MouAlert` row so that several workers, and
every later cycle of the month, send it only once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from itsm.plugin import Actor, Agency, Event, utcnow
from itsm.plugins.mou import compliance
from itsm.plugins.mou.models import Mou, MouAlert, MouContact

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
