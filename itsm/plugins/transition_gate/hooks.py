"""The transition gate's hook implementations: record type, permissions, the gate as a
guard, the catalog's veto, early-life support, notifications, reminders, web, CLI and
data."""

from __future__ import annotations

from datetime import datetime

import click
from flask import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from itsm.plugin import (
    Actor,
    DemoContext,
    EventMessage,
    Group,
    LinkKind,
    NavItem,
    Permission,
    Recipient,
    Record,
    RecordChange,
    RecordService,
    RecordType,
    Ref,
    Transition,
    current_itsm,
    ensure_group,
    hookimpl,
)
from itsm.plugins.transition_gate import gate as gating
from itsm.plugins.transition_gate import service as gate
from itsm.plugins.transition_gate.models import EARLY_LIFE, TRANSITION, ServiceTransition


@hookimpl
def itsm_record_types() -> list[RecordType]:
    """The transition record type (``TRN…``, ``/api/v1/transitions``)."""
    return [TRANSITION]


@hookimpl
def itsm_link_kinds() -> list[LinkKind]:
    """``early_life_incident``: a transition and an incident of its early-life support."""
    return [EARLY_LIFE]


@hookimpl
def itsm_permissions() -> list[Permission]:
    """Managing any transition and the gatekeeper's powers (admins; the gatekeeper group
    and each transition's project manager get them through ``itsm_permission_check``)."""
    return [Permission(gate.MANAGE, "manage any service transition's checklist, meetings, "
                       "milestones and roles", ("admin",)),
            Permission(gate.GATEKEEPER, "grant gate exceptions and edit checklist templates "
                       "(the service management office)", ("admin",))]


@hookimpl
def itsm_permission_check(actor: Actor, permission: str, record: Record | None) \
        -> bool | None:
    """Gatekeepers are the members of the ``gatekeeper_group``; a transition's project
    manager manages it. Anything else is left to the next implementation."""
    if permission not in (gate.MANAGE, gate.GATEKEEPER) or actor.id is None:
        return None
    if permission == gate.MANAGE and isinstance(record, ServiceTransition) \
            and actor.email == record.project_manager:
        return True
    if actor.role == "requester" or not actor.group_ids:
        return None
    with current_itsm().Session() as session:
        group = session.scalar(select(Group.id).where(
            Group.name == str(gate.settings()["gatekeeper_group"])))
    return True if group is not None and group in actor.group_ids else None


@hookimpl
def itsm_transition_guard(record: Record, transition: Transition, actor: Actor) \
        -> list[str] | None:
    """The gate: ``go_live`` is refused with exactly what is missing."""
    if not isinstance(record, ServiceTransition) or transition.name != "go_live":
        return None
    return gating.go_live_refusals(object_session(record), record, actor) or None


@hookimpl
def itsm_record_prepare(session: Session, record: Record, change: RecordChange) -> None:
    """Transitions: people, catalog link, acceptance, gate and support dates."""
    if record.type == TRANSITION.name:
        gating.prepare(session, record, change.kind, change.transition, change.changes)


@hookimpl
def itsm_record_changed(session: Session, record: Record, change: RecordChange) -> None:
    """Transitions: checklist, catalog status, go-live. Incidents: early-life support
    flags."""
    if not isinstance(record, ServiceTransition):
        gating.flag_incident(session, record, change)
        return
    if change.kind == "created":
        gating.on_created(session, record)
    elif change.kind == "transitioned" and change.transition:
        gating.on_transitioned(session, record, change.transition, change.actor)


@hookimpl
def itsm_reference_status_guard(session: Session, ref: Ref, status: str) -> list[str] | None:
    """A service does not go live while its transition has not passed the gate."""
    return gating.service_status_refusals(session, ref, status) or None


@hookimpl
def itsm_reference_changed(session: Session, ref: Ref, change: str, into: Ref | None) -> None:
    """A merged service: its transitions follow the service that stays (a rename needs
    nothing, they hold its stable id)."""
    if change == "merged" and into is not None:
        gating.service_merged(session, ref, into)


@hookimpl
def itsm_periodic(now: datetime) -> None:
    """Remind deliverable owners before the due date, once each."""
    gating.send_reminders(now)


# -- notifications -----------------------------------------------------------------------------


@hookimpl
def itsm_notification_recipients(event: EventMessage, session: Session) \
        -> list[Recipient] | None:
    """Approvers on submission, owners before due dates and on rejection, the project
    manager of early-life incidents and go-live, both managers on each workflow step."""
    record = event.record or {}
    if record.get("type") != TRANSITION.name:
        return None
    install = current_itsm()
    channels = [c for c in gate.settings()["notify_channels"] if c in install.channels]
    payload = event.payload or {}
    if event.name == "transition.deliverable_submitted":
        addresses = {payload.get("approver")}
    elif event.name in ("transition.deliverable_due", "transition.deliverable_rejected"):
        addresses = {payload.get("owner")}
    elif event.name == "transition.early_life_incident":
        addresses = {payload.get("project_manager")}
    elif event.name in ("transition.went_live", "record.transitioned"):
        trn = session.scalar(select(ServiceTransition).where(
            ServiceTransition.number == record.get("number")))
        addresses = {trn.project_manager, trn.service_manager} if trn else set()
    else:
        return None
    if event.name.startswith("record.") and event.actor:
        addresses.discard(event.actor)
    return [Recipient(c, a) for c in channels for a in sorted(addresses - {None, ""})]


# -- web, CLI ----------------------------------------------------------------------------------


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """The API routes and the console pages."""
    from itsm.plugins.transition_gate import api, pages

    return [api.bp, pages.pages]


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    """The readiness dashboard, for staff."""
    install = current_itsm()
    with install.Session() as session:
        if not RecordService(install, session, actor).can(f"{TRANSITION.name}.read"):
            return None
    return [NavItem("Transitions", "/transitions", order=55)]


@hookimpl
def itsm_record_actions(record: Record, actor: Actor) -> list[NavItem] | None:
    """On a transition: its checklist, meetings and gate page."""
    if record.type != TRANSITION.name or actor.role == "requester":
        return None
    return [NavItem("Checklist, meetings and gate", f"/transitions/{record.number}")]


@hookimpl
def itsm_cli_commands() -> list[click.Command]:
    """``itsm transitions ...``."""
    from itsm.plugins.transition_gate.cli import transitions_group

    return [transitions_group]


# -- data --------------------------------------------------------------------------------------


@hookimpl
def itsm_install_defaults(ctx: DemoContext) -> None:
    """The default checklist template and the gatekeepers' group."""
    from itsm.plugins.transition_gate import plan

    plan.install_defaults(ctx.session)
    ensure_group(ctx.session, str(gate.settings()["gatekeeper_group"]),
                 "Service management office: the operations gate before go-live.")


@hookimpl(trylast=True)  # after the catalog's demo services exist
def itsm_demo_data(ctx: DemoContext) -> None:
    """Three transitions: one blocked with late items, one ready, one live."""
    from itsm.plugins.transition_gate import demo

    demo.load(ctx)
