"""The billing plugin's hook implementations (its declaration is in __init__.py)."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    DemoContext,
    EventMessage,
    NavItem,
    Permission,
    Recipient,
    RecordService,
    User,
    current_itsm,
    hookimpl,
    service_rates,
    utcnow,
)
from itsm.plugins.billing import service as billing


@hookimpl
def itsm_permissions() -> list[Permission]:
    """``billing.manage`` and ``billing.read``, for admins by default."""
    return billing.PERMISSIONS


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """The API routes and the pages."""
    from itsm.plugins.billing.api import api
    from itsm.plugins.billing.pages import pages

    return [api, pages]


@hookimpl
def itsm_cli_commands() -> list[click.Command]:
    """``itsm billing …``."""
    from itsm.plugins.billing.cli import billing_group

    return [billing_group]


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    """"Statements" for billing staff and for agencies' billing contacts."""
    if actor.id is None:
        return None
    install = current_itsm()
    with install.read_session() as session:
        service = RecordService(install, session, actor)
        if service.can(billing.READ):
            return [NavItem("Statements", "/billing/statements", order=70)]
    # A billing contact's entry: the core reads whether the actor is one with the menu.
    return [NavItem("Statements", "/billing/statements", order=70,
                    shown_when=billing.contact_agencies_query(actor.id).limit(1))]


@hookimpl(trylast=True)  # after the plugins whose demo data prices the services
def itsm_demo_data(ctx: DemoContext) -> None:
    """Each demo agency subscribes to the priced recurring services from last month on,
    and its first requester receives its statements."""
    from itsm.plugins.billing.models import BillingContact, Subscription

    if ctx.session.scalar(select(Subscription.id).limit(1)) is not None:
        return
    recurring = [rate for rate in service_rates(ctx.session).values()
                 if rate.period in billing.MONTHS_PER_PERIOD]
    if not recurring:
        return
    system = ctx.service()
    first = (utcnow().date().replace(day=1) - timedelta(days=1)).replace(day=1)
    for n, agency in enumerate(sorted(ctx.session.scalars(select(Agency)), key=lambda a: a.code)):
        for i, rate in enumerate(recurring[:3]):
            billing.subscribe(system, agency.code, f"#{rate.service_id}", 5 * (n + 1) + i,
                              first)
        contact = ctx.session.scalar(select(User).where(
            User.agency_id == agency.id, User.role == "requester", User.active.is_(True))
            .order_by(User.id))
        if contact is not None and ctx.session.get(
                BillingContact, (agency.id, contact.id)) is None:
            ctx.session.add(BillingContact(agency_id=agency.id, user_id=contact.id))


@hookimpl
def itsm_agency_contacts(session: Session, agency_id: int, purpose: str) -> list[User] | None:
    """The agency's billing contacts hear of its statements and of its monthly service
    review (MOU sections 6 and 7 make billing part of the relationship)."""
    from itsm.plugins.billing.models import BillingContact

    if purpose not in ("billing", "review"):
        return None
    return list(session.scalars(select(User).join(
        BillingContact, BillingContact.user_id == User.id).where(
        BillingContact.agency_id == agency_id)))


@hookimpl
def itsm_notification_recipients(event: EventMessage) -> list[Recipient] | None:
    """An issued statement goes to the agency's billing contacts named in the event."""
    if event.name != billing.ISSUED_EVENT:
        return None
    install = current_itsm()
    wanted = install.plugin_settings("billing")["notify_channels"]
    if isinstance(wanted, str):
        wanted = [c.strip() for c in wanted.split(",")]
    return [Recipient(channel, address) for address in event.payload.get("recipients", [])
            for channel in wanted if channel in install.channels]
