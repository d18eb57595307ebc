"""What each process says about one agency: its situation over a period and the people
it knows as the agency's contacts — the contract between the processes (incidents,
requests, agreements, billing…) and a plugin that shows or writes to an agency as a whole
(a relationship manager's agency page, the monthly service review), neither importing the
other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.core.context import current_itsm
from itsm.core.models import User

#: Why an agency is written to (``itsm_agency_contacts``'s ``purpose``).
CONTACT_PURPOSES = ("review", "agreement", "billing")


@dataclass(frozen=True)
class AgencySection:
    """One process's part of an agency's situation.

    :param title: the heading (``Incidents``).
    :param facts: ``(label, value)`` pairs in reading order (``("Opened", "42")``),
        values already worded for people.
    :param items: notable things, one line each (an open major incident), with an
        optional link: ``(text, url or None)``.
    :param order: where it goes among the sections (lower first).
    """

    title: str
    facts: tuple[tuple[str, str], ...] = ()
    items: tuple[tuple[str, str | None], ...] = field(default=())
    order: int = 50

    def to_dict(self) -> dict:
        return {"title": self.title, "order": self.order,
                "facts": [{"label": label, "value": value} for label, value in self.facts],
                "items": [{"text": text, "url": url} for text, url in self.items]}


def agency_sections(session: Session, agency_id: int, start: datetime,
                    end: datetime) -> list[AgencySection]:
    """Every enabled process's section for the agency over ``[start, end)``, in order."""
    found: list[AgencySection] = []
    for answer in current_itsm().hook.itsm_agency_sections(
            session=session, agency_id=agency_id, start=start, end=end):
        found.extend(answer or ())
    return sorted(found, key=lambda s: (s.order, s.title))


def agency_contacts(session: Session, agency_id: int, purpose: str) -> list[User]:
    """The agency's contacts for ``purpose`` (one of :data:`CONTACT_PURPOSES`) as every
    enabled process names them: each person once, by e-mail address, active users of that
    agency only — a process that names someone else (a leaver, another agency's person)
    is not followed, so one agency's mail never reaches another agency."""
    if purpose not in CONTACT_PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(CONTACT_PURPOSES)}")
    named: set[int] = set()
    for answer in current_itsm().hook.itsm_agency_contacts(
            session=session, agency_id=agency_id, purpose=purpose):
        named.update(user.id for user in answer or () if user is not None)
    if not named:
        return []
    # Read again rather than trusting the rows handed over: the filter is the core's.
    return list(session.scalars(select(User).where(
        User.id.in_(named), User.agency_id == agency_id, User.active.is_(True))
        .order_by(User.email)))
