"""Satisfaction: the contract between plugins whose records are rated and the report.

A process whose requesters rate its work (incidents, fulfilled requests) answers
:func:`itsm_satisfaction_ratings`; the core aggregates every answer by group, service,
agency or month, and a low score opens a follow-up for the group's manager through
:func:`follow_up` without the core knowing which plugin asked.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.core.context import current_itsm
from itsm.core.models import Agency, Event, Group, Record, User, utcnow

#: The outbox event of a score at or below the follow-up threshold.
LOW_EVENT = "satisfaction.low"
#: What a report groups by.
DIMENSIONS = ("group", "service", "agency", "month", "type")
#: Who reads the reports (staff).
READ = "satisfaction.read"


@dataclass(frozen=True)
class Rating:
    """One rating a requester gave, as the plugin that keeps the record states it.

    :param number: the rated record's number (``INC0000012``).
    :param type: the record type's name (``incident``, ``request``).
    :param agency_id: the requester's agency, or None.
    :param agency: the agency's name, or "".
    :param group: the resolver group's name, or "".
    :param service: the service's name, or "".
    :param score: 1 (very unhappy) to 5 (very happy).
    :param comment: what the requester wrote, or "".
    :param rated_at: when the work was finished (resolved, fulfilled), UTC.
    """

    number: str
    type: str
    agency_id: int | None
    agency: str
    group: str
    service: str
    score: int
    comment: str
    rated_at: datetime


def ratings(session: Session, start: datetime, end: datetime,
            agency_id: int | None = None) -> list[Rating]:
    """Every enabled plugin's ratings of work finished in ``[start, end)``, oldest first;
    only ``agency_id``'s when given."""
    out: list[Rating] = []
    for answer in current_itsm().hook.itsm_satisfaction_ratings(
            session=session, start=start, end=end):
        out.extend(r for r in answer or () if agency_id is None or r.agency_id == agency_id)
    return sorted(out, key=lambda r: (r.rated_at, r.number))


def key_of(rating: Rating, by: str) -> str:
    """The label of ``rating`` along the dimension ``by``."""
    if by == "month":
        return f"{rating.rated_at:%Y-%m}"
    value = getattr(rating, by)
    return value or "(none)"


def report(rows: list[Rating], by: str) -> list[dict[str, Any]]:
    """Count, average and spread of scores per ``by`` (one of :data:`DIMENSIONS`),
    sorted by label; the average is rounded to two decimals."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}")
    groups: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        groups[key_of(r, by)].append(r.score)
    return [{"label": label, "count": len(scores),
             "average": round(sum(scores) / len(scores), 2),
             "low": sum(1 for s in scores if s <= threshold()),
             "scores": {str(n): scores.count(n) for n in range(1, 6)}}
            for label, scores in sorted(groups.items())]


def threshold() -> int:
    """The score at or below which a rating opens a follow-up (setting
    ``satisfaction.follow_up_at``, default 2)."""
    try:
        return int(current_itsm().settings.get("satisfaction.follow_up_at", 2))
    except (TypeError, ValueError):
        return 2


def follow_up(session: Session, record: Record, score: int, comment: str,
              actor_id: int | None, previous: int | None = None) -> Event | None:
    """Open the follow-up of a low score, in the rating's transaction: an outbox event
    that puts the record in the group manager's inbox (and mail, if they asked for it)
    and that the agency's relationship managers hear of.

    A record is followed up once per low episode: ``previous`` is the score the record
    had before this rating (None when it had none); a requester who changes a low score
    into another low one is already being followed up, so nobody is told again, while a
    record rated well and then low again starts a new episode. None when no follow-up is
    opened (the score is above the threshold, or the episode's follow-up exists)."""
    if score > threshold():
        return None
    if previous is not None and previous <= threshold():
        return None
    group = session.get(Group, record.group_id) if record.group_id else None
    manager = session.get(User, group.manager_id) if group and group.manager_id else None
    agency = session.get(Agency, record.agency_id) if record.agency_id else None
    event = Event(name=LOW_EVENT, record_id=record.id, actor_id=actor_id, created_at=utcnow(),
                  payload={"record": {"number": record.number, "type": record.type,
                                      "title": record.title, "state": record.state,
                                      "priority": record.priority},
                           "public": False, "score": score, "comment": comment[:2000],
                           "group": group.name if group else "",
                           "manager": manager.email if manager else "",
                           "agency_id": record.agency_id,
                           "agency": agency.name if agency else ""})
    session.add(event)
    session.flush()
    return event


def manager_of(session: Session, event_payload: dict[str, Any]) -> list[int]:
    """The user id of the manager a low-score event names, if they still exist."""
    email = str(event_payload.get("manager") or "").lower()
    if not email:
        return []
    return list(session.scalars(select(User.id).where(User.email == email)))


def period(first: str, last: str) -> tuple[datetime, datetime]:
    """The instants from the start of month ``first`` (``YYYY-MM``) to the end of month
    ``last``; an empty value is the current month.

    :raises InputError: naming ``from`` or ``to`` when a month is not ``YYYY-MM`` or the
        period ends before it starts.
    """
    from itsm.core.inputs import InputError, parse_month

    now = f"{utcnow():%Y-%m}"
    start = parse_month(first.strip() or now, "from")[0]
    end = parse_month(last.strip() or first.strip() or now, "to")[1]
    if end <= start:
        raise InputError("the period ends before it starts", field="to")
    return start, end


def read(itsm: Any, actor: Any, by: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The report a person may read: staff holding :data:`READ`; someone of an agency
    only their agency's ratings (never another's).

    :raises Forbidden: without the permission.
    """
    from itsm.core.inputs import InputError

    if by not in DIMENSIONS:
        raise InputError(f"must be one of {', '.join(DIMENSIONS)}", field="by")
    with itsm.unit_of_work(actor) as svc:
        svc.require(READ)
        rows = ratings(svc.session, start, end, agency_id=actor.agency_id) \
            if actor.agency_id is not None else ratings(svc.session, start, end)
    lines = report(rows, by)
    total = [{"count": len(rows), "average": round(sum(r.score for r in rows) / len(rows), 2)
              if rows else None}]
    return {"by": by, "from": f"{start:%Y-%m-%d}", "to": f"{end:%Y-%m-%d}",
            "threshold": threshold(), "total": total[0], "items": lines,
            "low": [{"number": r.number, "type": r.type, "agency": r.agency,
                     "group": r.group, "service": r.service, "score": r.score,
                     "comment": r.comment, "rated_at": r.rated_at.isoformat()}
                    for r in rows if r.score <= threshold()]}


def chart(items: list[dict[str, Any]], width: int = 360) -> dict[str, Any]:
    """Geometry of a horizontal bar chart of the averages (0-5), for the page's SVG."""
    left, bar, gap = 120, 18, 8
    scale = (width - left - 40) / 5
    bars = [{"label": i["label"][:18], "average": i["average"], "count": i["count"],
             "x": left, "y": 10 + n * (bar + gap), "w": round(i["average"] * scale, 1),
             "h": bar} for n, i in enumerate(items)]
    return {"width": width, "height": 20 + len(bars) * (bar + gap), "left": left,
            "bars": bars, "ticks": [{"x": round(left + k * scale, 1), "text": str(k)}
                                    for k in range(6)]}
