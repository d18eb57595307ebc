"""The relationship plugin's operations, shared by its API, pages, CLI and periodic pass.

A relationship manager is a staff member with agencies in their portfolio (an admin puts
them there); they see each agency's situation as the processes report it (through
``itsm_agency_sections``). On the first days of a month the periodic pass keeps last
month's review of every agency, as it stood, and mails it as a PDF to the agency's
relationship managers and to the people every process names as the agency's contacts
(the core's ``itsm_agency_contacts``: the agreement's designated contacts, the billing
contacts); the agency's own people read their reviews in the portal.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    Event,
    NotFound,
    Permission,
    RecordService,
    User,
    ValidationError,
    agency_by_code,
    agency_contacts,
    agency_sections,
    parse_month,
    user_by_email,
    utcnow,
)
from itsm.plugins.relationship.models import Portfolio, Review

MANAGE = "relationship.manage"
PERMISSIONS = [Permission(MANAGE, "put agencies in relationship managers' portfolios and "
                          "see every agency's situation", ("admin",))]
REVIEW_EVENT = "relationship.review"


def month_of(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) that holds ``now``."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, parse_month(f"{start:%Y-%m}")[1]


# -- who sees which agency ---------------------------------------------------------------


def portfolio_query(svc: RecordService) -> Select | None:
    """The ``select`` of the agencies the actor looks after (every agency for those who
    manage portfolios); None for those who look after none (requesters)."""
    query = select(Agency).order_by(Agency.name)
    if not svc.can(MANAGE):
        if not svc.is_staff:
            return None
        query = query.join(Portfolio, Portfolio.agency_id == Agency.id).where(
            Portfolio.user_id == svc.actor.id)
    return query


def portfolio(svc: RecordService) -> list[Agency]:
    """The agencies the actor looks after (every agency for those who manage portfolios)."""
    query = portfolio_query(svc)
    return [] if query is None else list(svc.session.scalars(query))


def agency_for(svc: RecordService, code: str, *, reviews: bool = False) -> Agency:
    """The agency ``code`` if the actor may see it: in their portfolio, everything for
    those who manage portfolios, and (for ``reviews``) their own agency's people."""
    try:
        agency = agency_by_code(svc.session, (code or "").strip().upper())
    except NotFound:
        raise NotFound(f"no agency {code!r}") from None
    if svc.can(MANAGE):
        return agency
    if reviews and not svc.is_staff and svc.actor.agency_id == agency.id:
        return agency
    mine = svc.session.get(Portfolio, (svc.actor.id, agency.id)) if svc.actor.id else None
    if mine is None or not svc.is_staff:
        raise NotFound(f"no agency {code!r}")  # another's agency is answered as missing
    return agency


def assign(svc: RecordService, email: str, code: str) -> None:
    """Put the agency in the staff member's portfolio."""
    svc.require(MANAGE)
    user = user_by_email(svc.session, email)
    if user.role == "requester" or not user.active:
        raise ValidationError(f"{user.email} is not an active member of IT staff",
                              fields={"email": ["an active staff member"]})
    agency = agency_by_code(svc.session, code.strip().upper())
    if svc.session.get(Portfolio, (user.id, agency.id)) is None:
        svc.session.add(Portfolio(user_id=user.id, agency_id=agency.id))
        svc.session.flush()


def managers_of(session: Session, agency_id: int) -> list[str]:
    return list(session.scalars(select(User.email).join(
        Portfolio, Portfolio.user_id == User.id).where(
        Portfolio.agency_id == agency_id, User.active.is_(True)).order_by(User.email)))


# -- the situation and the reviews --------------------------------------------------------------


def situation(svc: RecordService, code: str, now: datetime | None = None) -> dict[str, Any]:
    """The agency this month so far: every process's section."""
    agency = agency_for(svc, code)
    now = now or utcnow()
    start, _ = month_of(now)
    return {"agency": agency.code, "agency_name": agency.name, "from": start.isoformat(),
            "to": now.isoformat(), "managers": managers_of(svc.session, agency.id),
            "sections": [s.to_dict() for s in
                         agency_sections(svc.session, agency.id, start, now)]}


def keep_review(session: Session, agency: Agency, period: str) -> Review | None:
    """Keep the agency's review of ``period`` as the processes report it now; None when
    it was kept already (a review never changes)."""
    start, end = parse_month(period)
    row = Review(agency_id=agency.id, period=period, sections=[
        s.to_dict() for s in agency_sections(session, agency.id, start, end)])
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


def review_dict(session: Session, row: Review) -> dict[str, Any]:
    agency = session.get(Agency, row.agency_id)
    return {"id": row.id, "agency": agency.code, "agency_name": agency.name,
            "period": row.period, "created_at": row.created_at.isoformat(),
            "sections": row.sections}


def reviews(svc: RecordService, code: str) -> list[Review]:
    agency = agency_for(svc, code, reviews=True)
    return list(svc.session.scalars(select(Review).where(Review.agency_id == agency.id)
                                    .order_by(Review.period.desc())))


def review(svc: RecordService, review_id: int) -> Review:
    row = svc.session.get(Review, review_id)
    if row is None:
        raise NotFound(f"no review {review_id}")
    agency = svc.session.get(Agency, row.agency_id)
    agency_for(svc, agency.code, reviews=True)
    return row


def review_recipients(session: Session, agency_id: int) -> list[str]:
    """Who receives the agency's review: its relationship managers and its contacts
    (active users of that agency only, see ``agency_contacts``), each address once."""
    addresses = managers_of(session, agency_id)
    for user in agency_contacts(session, agency_id, "review"):
        if user.email not in addresses:
            addresses.append(user.email)
    return addresses


def announce(session: Session, row: Review, pdf: bytes) -> Event:
    """The outbox event that mails the review as a PDF to the relationship managers and
    the agency's contacts."""
    data = review_dict(session, row)
    event = Event(name=REVIEW_EVENT, record_id=None, payload={
        "agency": data["agency"], "agency_name": data["agency_name"],
        "period": row.period, "review": row.id,
        "link_path": f"/relationship/reviews/{row.id}",
        "recipients": review_recipients(session, row.agency_id),
        "attachments": [{"filename": f"service-review-{data['agency']}-{row.period}.pdf",
                         "content_type": "application/pdf",
                         "data": base64.b64encode(pdf).decode()}]})
    session.add(event)
    return event


def monthly(itsm, now: datetime, render_pdf) -> int:
    """Keep and mail last month's review of every agency that has none yet; return how
    many were kept. ``render_pdf(data) -> bytes`` draws the PDF from the page template."""
    start, _ = month_of(now)
    period = f"{(start - timedelta(days=1)):%Y-%m}"
    kept = 0
    with itsm.unit_of_work(Actor.system()) as svc:
        for agency in svc.session.scalars(select(Agency).order_by(Agency.id)):
            row = keep_review(svc.session, agency, period)
            if row is None:
                continue
            svc.session.flush()
            svc.events.append(announce(svc.session, row, render_pdf(
                review_dict(svc.session, row))))
            kept += 1
    return kept
