"""The mou plugin's hook implementations (its declaration is in __init__.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click
from flask import Blueprint
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    AgencySection,
    DemoContext,
    EscalationStep,
    EventMessage,
    Group,
    NavItem,
    Permission,
    Recipient,
    Record,
    RecordChange,
    RecordService,
    RecordType,
    SlaTarget,
    User,
    ValidationError,
    current_itsm,
    hookimpl,
)
from itsm.plugins.mou import policy, service, template
from itsm.plugins.mou.models import MOU, Mou, MouContact, MouDelegate, MouTarget


@hookimpl
def itsm_record_types() -> list[RecordType]:
    """The agreement record type (``MOU…``, ``/api/v1/mous``), staff-managed."""
    return [MOU]


@hookimpl
def itsm_permissions() -> list[Permission]:
    """Reading (agency users too, narrowed below), approving amendments and editing the
    template (admins), reports (agents)."""
    return [Permission(f"{MOU.name}.read", "see agreements (agency users: their own "
                       "agency's agreement in force only)", ("agent", "requester")),
            Permission(service.APPROVE_PERMISSION, "approve amendments of agreements",
                       ("admin",)),
            Permission(service.TEMPLATE_PERMISSION, "edit the standard agreement template",
                       ("admin",)),
            Permission(service.REPORT_PERMISSION, "see agencies' compliance with their "
                       "agreements", ("agent",))]


@hookimpl
def itsm_permission_check(actor: Actor, permission: str, record: Any) -> bool | None:
    """Agency users read their own agency's active MOU; the people it designates read
    its agreements in every state and comment on them; nothing else of this plugin."""
    if actor.role != "requester" or not permission.startswith("mou."):
        return None
    if permission not in ("mou.read", "mou.comment"):
        return False
    if record is None:
        return permission == "mou.read"  # lists: the rows are checked one by one
    own = (actor.agency_id is not None and getattr(record, "type", None) == MOU.name
           and record.agency_id == actor.agency_id and getattr(record, "kind", "mou") == "mou")
    if not own:
        return False
    if permission == "mou.read" and record.state == "active":
        return True
    # The agency's delegates read its agreements in every state and comment on them.
    from itsm.plugins.mou.participation import is_delegate

    with current_itsm().Session() as session:
        return is_delegate(session, actor, record.agency_id)


@hookimpl(tryfirst=True)
def itsm_sla_policy(record: Record, metric: str, session: Session | None) \
        -> SlaTarget | None:
    """The target of the agreement governing ``record`` (see :mod:`.policy`)."""
    if session is not None:
        return policy.target_for(session, record, metric)
    with current_itsm().Session() as own:
        return policy.target_for(own, record, metric)


@hookimpl
def itsm_escalation_path(session: Session, record: Record) -> list[EscalationStep] | None:
    """The escalation contacts of the agreement in force with the record's agency (with
    an e-mail and a time after the breach), or None: the escalating plugin's own list."""
    if record.type == MOU.name:
        return None
    return service.escalation_steps(session, record.agency_id) or None


@hookimpl
def itsm_record_prepare(session: Session, record: Record, change: RecordChange) -> None:
    """The parties checked, the template version of a new agreement, the date an
    agreement takes effect: before the change is journaled."""
    if record.type != MOU.name:
        return
    if change.kind == "created":
        _check_parties(session, record)
        service.prepare_new(session, record)
    elif change.kind == "updated" and {"kind", "provider_group", "customer_group",
                                       "agency"} & set(change.changes):
        _check_parties(session, record)
    elif change.kind == "transitioned" and change.transition == "activate" \
            and record.effective_from is None:
        record.effective_from = record.updated_at.date()


@hookimpl
def itsm_record_changed(session: Session, record: Record, change: RecordChange) -> None:
    """A new agreement gets the template's text; approval bookkeeping; the agreement in
    force supersedes the one it replaces."""
    if record.type != MOU.name:
        return
    if change.kind == "created":
        service.start(session, record, change.actor.email)
    elif change.kind == "transitioned" and change.transition == "approve":
        service.on_approved(session, record, change.actor.email)
    elif change.kind == "transitioned" and change.transition == "activate":
        _supersede_others(session, record)


def _check_parties(session: Session, record: Any) -> None:
    if record.kind == "mou" and record.agency_id is None:
        raise ValidationError("an MOU needs the agency it is agreed with",
                              fields={"agency": ["required for an MOU"]})
    if record.kind == "ola":
        errors = {}
        for name in ("provider_group", "customer_group"):
            value = getattr(record, name) or ""
            if not session.scalar(select(Group.id).where(Group.name == value)):
                errors[name] = ["an existing group is required for an OLA"]
        if errors:
            raise ValidationError("an OLA is between two existing groups: "
                                  + ", ".join(sorted(errors)), fields=errors)


def _supersede_others(session: Session, record: Any) -> None:
    """The agreement now in force supersedes the one it replaces (same parties)."""
    same = (Mou.agency_id == record.agency_id) if record.kind == "mou" else \
        ((Mou.provider_group == record.provider_group)
         & (Mou.customer_group == record.customer_group))
    older = session.scalars(select(Mou).where(Mou.kind == record.kind, Mou.id != record.id,
                                              Mou.state == "active", same)).all()
    if older:
        system = RecordService(current_itsm(), session, Actor.system())
        for mou in older:
            system.transition(mou, "supersede", comment=f"superseded by {record.number}")


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """The API routes and the console and portal pages."""
    from itsm.plugins.mou.admin import bp
    from itsm.plugins.mou.api import api
    from itsm.plugins.mou.pages import pages

    return [api, pages, bp]


@hookimpl
def itsm_admin_pages() -> list:
    """The standard agreement template, for who may edit it (``mou.template``)."""
    from itsm.plugins.mou.admin import PAGES

    return list(PAGES)


@hookimpl
def itsm_cli_commands() -> list[click.Command]:
    """``itsm mou compliance`` and ``itsm mou export``."""
    from itsm.plugins.mou.cli import mou_group

    return [mou_group]


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    """"Our agreement" for agency users; agreements and compliance for staff."""
    if actor.role == "requester":
        return [NavItem("Our agreement", "/mou/my", order=18, group="portal")] \
            if actor.agency_id else None
    items = [NavItem("Agreements", "/mou/", order=70, group="process", record_type="mou")]
    install = current_itsm()
    with install.Session() as session:
        if RecordService(install, session, actor).can(service.REPORT_PERMISSION):
            items.append(NavItem("MOU compliance", "/mou/compliance", order=71,
                                 group="reports"))
    return items


@hookimpl
def itsm_record_actions(record: Record, actor: Actor) -> list[NavItem] | None:
    """On an agency's record: its relationship manager, from the agreement in force."""
    if record.type == MOU.name or record.agency_id is None:
        return None
    install = current_itsm()
    with install.read_session(near=record) as session:  # the page's own transaction
        mou = service.active_for_agency(session, record.agency_id)
        if mou is None:
            return None
        manager = session.scalar(select(MouContact).where(
            MouContact.mou_id == mou.id, MouContact.position == 0))
        url = "/mou/my" if actor.role == "requester" else f"/records/mous/{mou.number}"
        label = (f"Relationship manager: {manager.name}" if manager
                 else f"Agreement {mou.number}")
        return [NavItem(label, url, order=5)]


_LAST_CHECK: dict[str, datetime] = {}


@hookimpl
def itsm_periodic(now: datetime) -> None:
    """Alert relationship managers of agencies below target (once per target and month)
    and of agreements about to end (once per reminder window).

    Measuring every agreement takes a scan of the month's clocks, so each process does it
    at most every ``alert_check_minutes``; the alert rows make repeats harmless anyway.
    """
    install = current_itsm()
    minutes = float(install.plugin_settings("mou")["alert_check_minutes"])
    last = _LAST_CHECK.get("alerts")
    if last is not None and timedelta(0) <= now - last < timedelta(minutes=minutes):
        return
    _LAST_CHECK["alerts"] = now
    from itsm.plugins.mou import alerts

    alerts.check(install, now)
    alerts.remind_expiry(install, now)


@hookimpl
def itsm_notification_recipients(event: EventMessage, session: Session) \
        -> list[Recipient] | None:
    """A compliance alert, a renewal reminder and an agency's proposed amendment go to the
    agency's relationship manager; so does any event naming the agencies a piece of work
    affects (``affected_agencies``, stable ids of kind ``agency``: an approved change whose
    impact reaches them)."""
    from itsm.plugins.mou.alerts import EVENT, EXPIRY_EVENT
    from itsm.plugins.mou.participation import PROPOSED_EVENT

    payload = event.payload or {}
    addresses = set()
    if event.name in (EVENT, EXPIRY_EVENT, PROPOSED_EVENT) \
            and payload.get("relationship_manager"):
        addresses.add(payload["relationship_manager"])
    affected = payload.get("affected_agencies")
    if isinstance(affected, list) and affected:
        addresses |= service.relationship_managers(
            session, [int(a) for a in affected if str(a).isdigit() and len(str(a)) < 12])
    if not addresses:
        return None
    install = current_itsm()
    wanted = install.plugin_settings("mou")["notify_channels"]
    if isinstance(wanted, str):
        wanted = [c.strip() for c in wanted.split(",")]
    return [Recipient(channel, address) for address in sorted(addresses)
            for channel in wanted if channel in install.channels]


@hookimpl
def itsm_reference_changed(session: Session, ref: Any, change: str, into: Any) -> None:
    """A service merged into another: the targets that recorded it follow (their text
    stays as it was signed)."""
    if change == "merged" and into is not None and ref.kind == "service":
        session.execute(update(MouTarget).where(MouTarget.service_ref == ref.id)
                        .values(service_ref=into.id))


@hookimpl
def itsm_install_defaults(ctx: DemoContext) -> None:
    """The first version of the standard template."""
    template.ensure_default(ctx.session)


@hookimpl
def itsm_demo_data(ctx: DemoContext) -> None:
    """Two agencies' agreements with different targets, and an OLA."""
    from itsm.plugins.mou.demo import load

    load(ctx)


@hookimpl
def itsm_agency_sections(session: Session, agency_id: int, start: datetime,
                         end: datetime) -> list[AgencySection] | None:
    """The agreement in force: its renewal date, and compliance with each target over
    the period."""
    from itsm.plugins.mou import compliance

    mou = service.active_for_agency(session, agency_id)
    if mou is None:
        return [AgencySection("Agreement", facts=(("In force", "none"),), order=10)]
    code = session.scalar(select(Agency.code).where(Agency.id == agency_id))
    last = max(start.date(), (end - timedelta(microseconds=1)).date())
    report = compliance.report(session, code, start.date(), last)
    facts = [("Agreement", f"{mou.number} version {mou.current_version}"),
             ("Ends", mou.effective_to.isoformat() if mou.effective_to else "open-ended")]
    items = []
    for line in report["targets"]:
        value = "not measured" if line["compliance"] is None else f"{line['compliance']}%"
        facts.append((f"{line['target']}, {line['metric']}",
                      f"{value} (required {line['required_percent']}%)"))
        if line["below_target"]:
            items.append((f"Below target: {line['target']}, {line['metric']}", None))
    return [AgencySection("Agreement and service levels", facts=tuple(facts),
                          items=tuple(items), order=10)]


@hookimpl
def itsm_agency_contacts(session: Session, agency_id: int, purpose: str) -> list[User] | None:
    """The people the agency designated to take part in its agreements: they hear of the
    agreement and of the monthly service review that measures it (not of billing)."""
    if purpose not in ("review", "agreement"):
        return None
    return list(session.scalars(select(User).join(
        MouDelegate, MouDelegate.user_id == User.id).where(
        MouDelegate.agency_id == agency_id)))
