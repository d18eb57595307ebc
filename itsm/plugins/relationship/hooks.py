"""The relationship plugin's hook implementations (its declaration is in __init__.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from flask import Blueprint
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    EventMessage,
    NavItem,
    Permission,
    Recipient,
    RecordService,
    current_itsm,
    hookimpl,
)
from itsm.plugins.relationship import service as relationship

_LAST_RUN: dict[str, datetime] = {}


@hookimpl
def itsm_permissions() -> list[Permission]:
    """``relationship.manage`` for admins: portfolios and every agency."""
    return relationship.PERMISSIONS


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """The API routes and the pages."""
    from itsm.plugins.relationship.api import api
    from itsm.plugins.relationship.pages import pages

    return [api, pages]


@hookimpl
def itsm_cli_commands() -> list[click.Command]:
    """``itsm relationship assign|reviews``."""
    from itsm.plugins.relationship.cli import relationship_group

    return [relationship_group]


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    """"My agencies" for relationship managers, "Service reviews" for agencies' people."""
    if actor.id is None:
        return None
    install = current_itsm()
    with install.read_session() as session:
        svc = RecordService(install, session, actor)
        if svc.is_staff:
            query = relationship.portfolio_query(svc)
            # Shown when the portfolio holds an agency: the core reads it with the menu.
            return [NavItem("My agencies", "/relationship/", order=65, shown_when=query
                            .with_only_columns(Agency.id).order_by(None).limit(1))] \
                if query is not None else None
    return [NavItem("Service reviews", "/relationship/reviews", order=65)] \
        if actor.agency_id else None


@hookimpl
def itsm_periodic(now: datetime) -> None:
    """Keep and mail last month's reviews (at most hourly per process; a review is kept
    once, whatever several workers do)."""
    last = _LAST_RUN.get("reviews")
    if last is not None and timedelta(0) <= now - last < timedelta(hours=1):
        return
    _LAST_RUN["reviews"] = now
    from itsm.plugins.relationship.pages import review_pdf_bytes

    relationship.monthly(current_itsm(), now, review_pdf_bytes)


@hookimpl
def itsm_notification_recipients(event: EventMessage, session: Session) \
        -> list[Recipient] | None:
    """A review, and a low satisfaction score (the core's ``satisfaction.low``), go to the
    agency's relationship managers on the plugin's channels."""
    if event.name == relationship.REVIEW_EVENT:
        addresses = list(event.payload.get("recipients", []))
    elif event.name == "satisfaction.low" and event.payload.get("agency_id"):
        addresses = relationship.managers_of(session, int(event.payload["agency_id"]))
    else:
        return None
    install = current_itsm()
    wanted = install.plugin_settings("relationship")["notify_channels"]
    if isinstance(wanted, str):
        wanted = [c.strip() for c in wanted.split(",")]
    return [Recipient(channel, address) for address in addresses
            for channel in wanted if channel in install.channels]
