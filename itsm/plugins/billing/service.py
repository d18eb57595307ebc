"""Billing's operations, shared by the API, the pages and the CLI.

Charges come from the other processes through the core's contract (``itsm_service_rates``
and ``itsm_billable_charges``): fulfilled requests are one-off charges; subscriptions to
recurring services are charged per unit and month, a part month by the days it was
active; time recorded on a record is charged by the hour when its service's rate is hourly.
Months are calendar months in UTC. Every amount is a Decimal rounded half up to the cent
per line, so a statement equals what a finance office computes by hand from its lines.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, select

from itsm.plugin import (
    Agency,
    Conflict,
    Event,
    Forbidden,
    NotFound,
    Permission,
    Rate,
    Record,
    RecordService,
    User,
    ValidationError,
    agency_by_code,
    billable_charges,
    check_text,
    parse_int,
    parse_month,
    service_rates,
    user_by_email,
    utcnow,
)
from itsm.plugins.billing.models import (
    LINE_KINDS,
    STATE_LABELS,
    BillingContact,
    Credit,
    Statement,
    StatementLine,
    Subscription,
    TimeEntry,
)

MANAGE = "billing.manage"
READ = "billing.read"
#: The outbox event of an issued statement, mailed to the agency's billing contacts.
ISSUED_EVENT = "billing.statement_issued"
PERMISSIONS = [
    Permission(MANAGE, "compute, review and issue agencies' statements; record "
               "subscriptions, time and credits", ("admin",)),
    Permission(READ, "read every agency's statements", ("admin",)),
]
CENT = Decimal("0.01")
# How many months one price of a recurring rate covers.
MONTHS_PER_PERIOD = {"monthly": 1, "quarterly": 3, "yearly": 12}
MAX_QUANTITY = 1_000_000
MAX_AMOUNT = Decimal("100000000")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# -- reading what people typed ---------------------------------------------------------


def month(period: str) -> tuple[datetime, datetime]:
    """The first instant of month ``YYYY-MM`` and of the month after it (UTC)."""
    return parse_month(period, "period")


def day(value: str | date | None, field: str) -> date | None:
    if value is None or value == "" or isinstance(value, date):
        return value or None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError(f"{field}: {value!r} is not a date written YYYY-MM-DD",
                              fields={field: ["a date written YYYY-MM-DD"]}) from None


def amount(value: str | Decimal, field: str = "amount") -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        number = Decimal("NaN")
    if not number.is_finite() or number <= 0 or number >= MAX_AMOUNT \
            or number != cents(number):
        raise ValidationError(f"{field}: {value!r} is not an amount above 0 in cents",
                              fields={field: ["an amount above 0 with at most two decimals"]})
    return number


def quantity(value: str | int, field: str = "quantity") -> int:
    return parse_int(str(value), field, minimum=1, maximum=MAX_QUANTITY)


def rate_of(svc: RecordService, value: str, periods: tuple[str, ...]) -> Rate:
    """The rate of the service named ``value`` (its id, ``#id`` or its name)."""
    key = (value or "").strip()
    rates = service_rates(svc.session)
    rate = rates.get(key.removeprefix("#"))
    if rate is None:
        by_name = [r for r in rates.values() if r.service.casefold() == key.casefold()]
        rate = by_name[0] if len(by_name) == 1 else None
    if rate is None:
        raise ValidationError(f"service: no priced service {key!r}",
                              fields={"service": ["a service with a price in the catalog"]})
    if rate.period not in periods:
        raise ValidationError(
            f"service: {rate.service} is charged {rate.period.replace('_', ' ')}, not "
            f"{' or '.join(p.replace('_', ' ') for p in periods)}",
            fields={"service": [f"a service charged {' or '.join(periods)}"]})
    return rate


# -- who may see what ------------------------------------------------------------------


def contact_agencies(svc: RecordService) -> set[int]:
    """The agencies whose statements the actor receives as a billing contact."""
    if svc.actor.id is None:
        return set()
    return set(svc.session.scalars(contact_agencies_query(svc.actor.id)))


def contact_agencies_query(user_id: int) -> Select:
    """The ``select`` of the agencies whose statements ``user_id`` receives."""
    return select(BillingContact.agency_id).where(BillingContact.user_id == user_id)


def may_read(svc: RecordService, statement: Statement) -> bool:
    if svc.can(READ):
        return True
    return statement.state == "issued" and statement.agency_id in contact_agencies(svc)


def statement(svc: RecordService, statement_id: int) -> Statement:
    found = svc.session.get(Statement, statement_id)
    if found is None or not may_read(svc, found):
        # Another agency's statement is answered as missing, not as forbidden.
        raise NotFound(f"no statement {statement_id}")
    return found


def statements(svc: RecordService, agency: str | None = None,
               period: str | None = None) -> list[Statement]:
    """The statements the actor may read, newest month first."""
    query = select(Statement).order_by(Statement.period.desc(), Statement.agency_id)
    if not svc.can(READ):
        mine = contact_agencies(svc)
        if not mine:
            raise Forbidden(f"{svc.actor.email} may not read statements: only the "
                            "agency's billing contacts and billing staff may")
        query = query.where(Statement.agency_id.in_(mine), Statement.state == "issued")
    if agency:
        query = query.where(Statement.agency_id == agency_by_code(svc.session, agency).id)
    if period:
        month(period)
        query = query.where(Statement.period == period.strip())
    return list(svc.session.scalars(query))


# -- what an agency owes ----------------------------------------------------------------


@dataclass
class Line:
    kind: str
    key: str
    service_id: str
    service: str
    description: str
    quantity: Decimal
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return cents(self.quantity * self.unit_price)


def _active_days(sub: Subscription, first: date, last: date) -> int:
    start = max(sub.starts_on, first)
    end = min(sub.ends_on or last, last)
    return max((end - start).days + 1, 0)


def _subscription_lines(svc: RecordService, agency_id: int, start: datetime,
                        rates: dict[str, Rate]) -> list[Line]:
    first = start.date()
    days = calendar.monthrange(first.year, first.month)[1]
    last = first.replace(day=days)
    lines = []
    subs = svc.session.scalars(select(Subscription).where(
        Subscription.agency_id == agency_id, Subscription.starts_on <= last,
        (Subscription.ends_on.is_(None)) | (Subscription.ends_on >= first))
        .order_by(Subscription.id))
    for sub in subs:
        rate = rates.get(sub.service_id)
        if rate is None or rate.period not in MONTHS_PER_PERIOD:
            raise Conflict(f"subscription {sub.id}: service {sub.service_id} has no "
                           "recurring price any more: end the subscription or price the "
                           "service", fields={"subscriptions": [str(sub.id)]})
        active = _active_days(sub, first, last)
        monthly = rate.price / MONTHS_PER_PERIOD[rate.period]
        share = Decimal(active) / Decimal(days)
        unit_price = cents(monthly * share)
        part = "" if active == days else f", {active} of {days} days"
        lines.append(Line("subscription", f"subscription:{sub.id}:{first:%Y-%m}",
                          rate.service_id, rate.service,
                          f"{rate.service} {rate.unit or 'per unit'}, {first:%B %Y}{part}",
                          Decimal(sub.quantity), unit_price))
    return lines


def _time_lines(svc: RecordService, agency_id: int, start: datetime, end: datetime,
                rates: dict[str, Rate]) -> list[Line]:
    rows = svc.session.execute(
        select(TimeEntry, Record.number).join(Record, Record.id == TimeEntry.record_id)
        .where(TimeEntry.agency_id == agency_id, TimeEntry.worked_on >= start.date(),
               TimeEntry.worked_on < end.date())
        .order_by(TimeEntry.worked_on, TimeEntry.id))
    lines = []
    for entry, number in rows:
        rate = rates.get(entry.service_id)
        if rate is None or rate.period != "hourly":
            continue  # the service is no longer charged by the hour: nothing to bill
        hours = (Decimal(entry.minutes) / 60).quantize(CENT, rounding=ROUND_HALF_UP)
        lines.append(Line("time", f"time:{entry.id}", rate.service_id, rate.service,
                          f"{number} {rate.service}, {entry.minutes} min on "
                          f"{entry.worked_on:%Y-%m-%d}", hours, rate.price))
    return lines


def compute_lines(svc: RecordService, agency_id: int, period: str,
                  billed_elsewhere: set[str]) -> list[Line]:
    """The month's lines before credits: requests, subscriptions and time."""
    start, end = month(period)
    rates = service_rates(svc.session)
    lines = [Line("one_time", c.key, c.service_id, c.service, c.description, c.quantity,
                  c.unit_price)
             for c in billable_charges(svc.session, start, end, agency_id)
             if c.agency_id == agency_id and c.key not in billed_elsewhere]
    lines += _subscription_lines(svc, agency_id, start, rates)
    lines += _time_lines(svc, agency_id, start, end, rates)
    return lines


def generate(svc: RecordService, agency_code: str, period: str) -> Statement:
    """Compute (or compute again) the agency's draft statement for ``period``."""
    svc.require(MANAGE)
    agency = agency_by_code(svc.session, agency_code)
    month(period)
    period = period.strip()
    found = svc.session.scalar(select(Statement).where(
        Statement.agency_id == agency.id, Statement.period == period))
    if found is not None and found.state != "draft":
        raise Conflict(f"{found.number} is {found.state}: "
                       + ("an issued statement never changes; record a credit against it"
                          if found.state == "issued" else "reopen it as a draft first"))
    if found is None:
        found = Statement(agency_id=agency.id, period=period)
        svc.session.add(found)
        svc.session.flush()
    for credit in svc.session.scalars(select(Credit).where(Credit.applied_to_id == found.id)):
        credit.applied_to_id = None
    found.lines.clear()
    svc.session.flush()
    billed = set(svc.session.scalars(
        select(StatementLine.key).join(Statement)
        .where(Statement.agency_id == agency.id, Statement.id != found.id)))
    lines = compute_lines(svc, agency.id, period, billed)
    credits = svc.session.scalars(select(Credit).where(
        Credit.agency_id == agency.id, Credit.applied_to_id.is_(None),
        Credit.corrects_id != found.id).order_by(Credit.id)).all()
    for credit in credits:
        corrected = svc.session.get(Statement, credit.corrects_id)
        lines.append(Line("credit", f"credit:{credit.id}", "", "",
                          f"Credit on {corrected.number}: {credit.reason}", Decimal(1),
                          -credit.amount))
        credit.applied_to_id = found.id
    currencies = {rate.currency for rate in service_rates(svc.session).values()}
    found.currency = sorted(currencies)[0] if len(currencies) == 1 else "USD"
    for position, line in enumerate(lines, start=1):
        found.lines.append(StatementLine(
            position=position, kind=line.kind, key=line.key, service_id=line.service_id,
            service=line.service, description=line.description[:500],
            quantity=cents(line.quantity), unit_price=cents(line.unit_price),
            amount=line.amount))
    found.total = sum((line.amount for line in lines), Decimal("0.00"))
    found.computed_at = utcnow()
    svc.session.flush()
    return found


def _move(svc: RecordService, statement_id: int, source: str, target: str) -> Statement:
    svc.require(MANAGE)
    found = statement(svc, statement_id)
    if found.state != source:
        raise Conflict(f"{found.number} is {found.state}, not {source}")
    found.state = target
    now = utcnow()
    if target == "reviewed":
        found.reviewed_by_id, found.reviewed_at = svc.actor.id, now
    elif target == "issued":
        found.issued_by_id, found.issued_at = svc.actor.id, now
    else:
        found.reviewed_by_id = found.reviewed_at = None
    svc.session.flush()
    return found


def review(svc: RecordService, statement_id: int) -> Statement:
    """A draft has been checked: it can now be issued."""
    return _move(svc, statement_id, "draft", "reviewed")


def reopen(svc: RecordService, statement_id: int) -> Statement:
    """A reviewed statement goes back to draft, to be computed again."""
    return _move(svc, statement_id, "reviewed", "draft")


def issue(svc: RecordService, statement_id: int) -> Statement:
    """Send the reviewed statement to the agency; from now on it never changes. Its
    billing contacts are told, in the same transaction (an outbox event)."""
    found = _move(svc, statement_id, "reviewed", "issued")
    agency = svc.session.get(Agency, found.agency_id)
    event = Event(name=ISSUED_EVENT, record_id=None, actor_id=svc.actor.id, payload={
        "statement": found.id, "number": found.number, "period": found.period,
        "agency": agency.code, "agency_name": agency.name,
        "total": f"{found.total:.2f}", "currency": found.currency,
        "link_path": f"/billing/statements/{found.id}",
        "recipients": contacts_of(svc.session, found.agency_id)})
    svc.session.add(event)
    svc.events.append(event)
    return found


def contacts_of(session, agency_id: int) -> list[str]:
    """The e-mail addresses of the agency's active billing contacts."""
    return list(session.scalars(select(User.email).join(
        BillingContact, BillingContact.user_id == User.id).where(
        BillingContact.agency_id == agency_id, User.active.is_(True),
        User.agency_id == agency_id).order_by(User.email)))


def credit(svc: RecordService, statement_id: int, value: str | Decimal,
           reason: str) -> Credit:
    """Correct an issued statement: the amount is credited on the agency's next one."""
    svc.require(MANAGE)
    found = statement(svc, statement_id)
    if found.state != "issued":
        raise Conflict(f"{found.number} is {found.state}: compute it again instead of "
                       "crediting it")
    owed = amount(value)
    reason = check_text(reason or "", "reason").strip()
    if not reason or len(reason) > 500:
        raise ValidationError("reason: say why, in at most 500 characters",
                              fields={"reason": ["required, at most 500 characters"]})
    entry = Credit(agency_id=found.agency_id, corrects_id=found.id, amount=owed,
                   reason=reason, created_by_id=svc.actor.id)
    svc.session.add(entry)
    svc.session.flush()
    return entry


# -- subscriptions, time, contacts --------------------------------------------------------


def subscribe(svc: RecordService, agency_code: str, service: str, units: str | int,
              starts_on: str | date, ends_on: str | date | None = None,
              note: str = "") -> Subscription:
    """The agency uses so many units of a recurring service from a date on."""
    svc.require(MANAGE)
    agency = agency_by_code(svc.session, agency_code)
    rate = rate_of(svc, service, tuple(MONTHS_PER_PERIOD))
    first, last = day(starts_on, "starts_on"), day(ends_on, "ends_on")
    if first is None:
        raise ValidationError("starts_on: required", fields={"starts_on": ["required"]})
    if last is not None and last < first:
        raise ValidationError("ends_on: before starts_on",
                              fields={"ends_on": ["on or after the start"]})
    sub = Subscription(agency_id=agency.id, service_id=rate.service_id,
                       quantity=quantity(units), starts_on=first, ends_on=last,
                       note=check_text(note, "note")[:300])
    svc.session.add(sub)
    svc.session.flush()
    return sub


def change_subscription(svc: RecordService, sub_id: int, *, units: str | int | None = None,
                        ends_on: str | date | None = None) -> Subscription:
    """A new quantity, or an end date (statements already issued keep theirs)."""
    svc.require(MANAGE)
    sub = svc.session.get(Subscription, sub_id)
    if sub is None:
        raise NotFound(f"no subscription {sub_id}")
    if units is not None:
        sub.quantity = quantity(units)
    if ends_on is not None:
        last = day(ends_on, "ends_on")
        if last is not None and last < sub.starts_on:
            raise ValidationError("ends_on: before starts_on",
                                  fields={"ends_on": ["on or after the start"]})
        sub.ends_on = last
    svc.session.flush()
    return sub


def subscriptions(svc: RecordService, agency: str | None = None) -> list[Subscription]:
    svc.require(READ)
    query = select(Subscription).order_by(Subscription.agency_id, Subscription.id)
    if agency:
        query = query.where(Subscription.agency_id == agency_by_code(svc.session, agency).id)
    return list(svc.session.scalars(query))


def record_time(svc: RecordService, number: str, minutes: str | int, service: str,
                worked_on: str | date | None = None, note: str = "") -> TimeEntry:
    """Time worked on a record for its agency, under a service charged by the hour."""
    svc.require(MANAGE)
    record = svc.get(number.strip().upper())
    if record.agency_id is None:
        raise ValidationError(f"{record.number} belongs to no agency: there is no one to "
                              "bill", fields={"record": ["a record of an agency"]})
    rate = rate_of(svc, service, ("hourly",))
    entry = TimeEntry(record_id=record.id, agency_id=record.agency_id,
                      service_id=rate.service_id,
                      minutes=parse_int(str(minutes), "minutes", minimum=1, maximum=24 * 60),
                      worked_on=day(worked_on, "worked_on") or utcnow().date(),
                      user_id=svc.actor.id, note=check_text(note, "note")[:300])
    svc.session.add(entry)
    svc.session.flush()
    return entry


def add_contact(svc: RecordService, agency_code: str, email: str) -> User:
    """A person of the agency receives and may read its issued statements."""
    svc.require(MANAGE)
    agency = agency_by_code(svc.session, agency_code)
    user = user_by_email(svc.session, email)
    if user.agency_id != agency.id:
        raise ValidationError(f"{user.email} is not a person of {agency.code}",
                              fields={"email": ["a user of that agency"]})
    if svc.session.get(BillingContact, (agency.id, user.id)) is None:
        svc.session.add(BillingContact(agency_id=agency.id, user_id=user.id))
        svc.session.flush()
    return user


# -- what a statement looks like outside ----------------------------------------------------


def statement_dict(svc: RecordService, found: Statement) -> dict[str, Any]:
    agency = svc.session.get(Agency, found.agency_id)
    return {
        "id": found.id, "number": found.number, "agency": agency.code,
        "agency_name": agency.name, "period": found.period, "state": found.state,
        "state_label": STATE_LABELS[found.state], "currency": found.currency,
        "total": str(found.total), "computed_at": found.computed_at.isoformat(),
        "issued_at": found.issued_at.isoformat() if found.issued_at else None,
        "lines": [{"position": line.position, "kind": line.kind,
                   "kind_label": LINE_KINDS[line.kind], "key": line.key,
                   "service_id": line.service_id, "service": line.service,
                   "description": line.description, "quantity": str(line.quantity),
                   "unit_price": str(line.unit_price), "amount": str(line.amount)}
                  for line in found.lines],
    }


def subscription_dict(svc: RecordService, sub: Subscription) -> dict[str, Any]:
    agency = svc.session.get(Agency, sub.agency_id)
    rate = service_rates(svc.session).get(sub.service_id)
    return {"id": sub.id, "agency": agency.code, "service_id": sub.service_id,
            "service": rate.service if rate else sub.service_id,
            "quantity": sub.quantity, "starts_on": sub.starts_on.isoformat(),
            "ends_on": sub.ends_on.isoformat() if sub.ends_on else None, "note": sub.note}


#: The moves of a statement, by the name pages and the API use.
STEPS = {"review": review, "issue": issue, "reopen": reopen}
