"""What each process says about one agency over a period: the contract between the
processes (incidents, requests, agreements, changes…) and a plugin that shows an agency's
whole situation (a relationship manager's agency page, the monthly service review),
neither importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from itsm.core.context import current_itsm


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
