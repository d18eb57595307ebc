"""What work costs: the contract between plugins that do billable work and one that bills.

A process that keeps rates (a service catalog) answers :func:`itsm_service_rates`; a
process whose records are billable (fulfilled requests) answers
:func:`itsm_billable_charges`. A billing plugin reads both through the functions below and
never imports the plugins that answer; with none enabled there is nothing to bill.
Amounts are :class:`~decimal.Decimal`, never floats: a statement must add up to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from itsm.core.context import current_itsm

#: How often a rate is charged: once per piece of work, or per period of a subscription.
RATE_PERIODS = ("one_time", "per_use", "hourly", "monthly", "quarterly", "yearly")


@dataclass(frozen=True)
class Rate:
    """The price of a service, as the plugin that keeps the service states it.

    :param service_id: the service's stable id (the ``service`` reference kind's id).
    :param service: the service's name, for statements.
    :param price: the price of one ``unit`` per ``period``.
    :param currency: ISO 4217 code (``USD``).
    :param unit: what one is counted in (``per mailbox``, ``per hour``), for people.
    :param period: one of :data:`RATE_PERIODS`: ``one_time``/``per_use`` are charged per
        fulfilled piece of work, ``hourly`` per hour of time recorded on records,
        ``monthly``/``quarterly``/``yearly`` per subscribed unit and period.
    """

    service_id: str
    service: str
    price: Decimal
    currency: str
    unit: str
    period: str


@dataclass(frozen=True)
class Charge:
    """One billable piece of work done for an agency.

    :param key: unique and stable for the work (``request:REQ0000012``): a statement bills
        a key once, however often it is recomputed.
    :param agency_id: the agency that owes it.
    :param service_id: the stable id of the service it was done under.
    :param service: the service's name.
    :param description: what was done, for the statement line (``REQ0000012 New
        mailbox``).
    :param quantity: how many units.
    :param unit_price: the price of one unit.
    :param currency: ISO 4217 code.
    :param occurred_at: when the work was done (fulfilled), UTC: decides the month.
    """

    key: str
    agency_id: int
    service_id: str
    service: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    currency: str
    occurred_at: datetime


def service_rates(session: Session) -> dict[str, Rate]:
    """The rates every enabled plugin states, by service id (the first plugin wins)."""
    rates: dict[str, Rate] = {}
    for answer in current_itsm().hook.itsm_service_rates(session=session):
        for rate in answer or ():
            rates.setdefault(rate.service_id, rate)
    return rates


def billable_charges(session: Session, start: datetime, end: datetime,
                     agency_id: int | None = None) -> list[Charge]:
    """Every enabled plugin's charges for work done in ``[start, end)``, oldest first."""
    charges: list[Charge] = []
    for answer in current_itsm().hook.itsm_billable_charges(
            session=session, start=start, end=end, agency_id=agency_id):
        charges.extend(answer or ())
    return sorted(charges, key=lambda c: (c.occurred_at, c.key))
