"""The change plugin's hook implementations: type, permissions, rules on every change,
notifications, web, CLI, defaults and demo data."""

from __future__ import annotations

import click
from flask import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    DemoContext,
    EventMessage,
    LinkKind,
    NavItem,
    Permission,
    Recipient,
    Record,
    RecordChange,
    RecordService,
    RecordType,
    User,
    current_itsm,
    hookimpl,
)
from itsm.plugins.change import service as changes
from itsm.plugins.change.models import Approval, Change
from itsm.plugins.change.workflow import CAUSED, CHANGE


@hookimpl
def itsm_record_types() -> list[RecordType]:
    """The change record type (``CHG…``, ``/api/v1/changes``)."""
    return [CHANGE]


@hookimpl
def itsm_link_kinds() -> list[LinkKind]:
    """``change_caused``: a change and an incident it caused."""
    return [CAUSED]


@hookimpl
def itsm_permissions() -> list[Permission]:
    """The gate (agents and the ``pipeline`` role), reports, and the admin catalogs."""
    return [
        Permission(changes.GATE_PERMISSION, "ask the deployment gate whether a service may "
                   "be deployed now", ("agent", "pipeline")),
        Permission(changes.REPORT_PERMISSION, "see change management reports", ("agent",)),
        Permission(changes.ADMIN_PERMISSION, "manage standard change templates, CAB rules, "
                   "freeze windows and the risk questionnaire", ("admin",)),
    ]


@hookimpl
def itsm_record_prepare(session: Session, record: Record, change: RecordChange) -> None:
    """Template, type and risk rules, actual times: before the change is journaled."""
    if record.type != CHANGE.name or change.kind not in ("created", "updated",
                                                          "transitioned"):
        return
    changes.prepare(session, record, change.kind, change.transition, change.changes)


@hookimpl
def itsm_record_changed(session: Session, record: Record, change: RecordChange) -> None:
    """Approval requests: on assessment, and again when the plan moves."""
    if not isinstance(record, Change):
        return
    changed = dict(change.changes)
    if change.kind == "created":
        changed = dict(change.data)
    changes.on_changed(session, record, change.kind, change.transition, change.actor,
                       changed)


# -- notifications --------------------------------------------------------------------------


@hookimpl
def itsm_notification_recipients(event: EventMessage, session: Session) \
        -> list[Recipient] | None:
    """Owner and requester at each step, approvers when their decision is asked, and the
    owners of the affected services (setting ``service_owners``)."""
    record = event.record or {}
    if record.get("type") != CHANGE.name:
        return None
    install = current_itsm()
    conf = changes.settings()
    channels = [c for c in conf["notify_channels"] if c in install.channels]
    if not channels:
        return None
    change = session.scalar(select(Change).where(Change.number == record["number"]))
    if change is None:
        return None
    people = changes.people_to_tell(session, change)
    addresses = set(session.scalars(select(User.email).where(User.id.in_(people))))
    if event.name == "change.approval_requested":
        addresses = set(event.payload.get("approvers") or [])
    elif event.name.startswith("record.") and event.payload.get("public", True):
        for name in change.services or []:
            addresses.update(conf["service_owners"].get(name, []))
        if event.name == "record.transitioned" and change.state == "cab_review":
            pending = select(Approval.approver_id).where(Approval.record_id == change.id,
                                                         Approval.state == "pending")
            addresses.update(session.scalars(select(User.email).where(User.id.in_(pending))))
    if event.actor:
        addresses.discard(event.actor)
    return [Recipient(channel, address) for channel in channels
            for address in sorted(addresses)]


# -- web, CLI -----------------------------------------------------------------------------


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """The API routes and the console pages."""
    from itsm.plugins.change import admin, api, pages

    return [api.bp, pages.pages, admin.bp]


@hookimpl
def itsm_admin_pages() -> list:
    """CAB rules, risk questions, standard change templates, freeze windows."""
    from itsm.plugins.change.admin import PAGES

    return list(PAGES)


@hookimpl
def itsm_navigation(actor: Actor) -> list[NavItem] | None:
    """Change calendar and the approver queue for staff."""
    install = current_itsm()
    with install.read_session() as session:
        if not RecordService(install, session, actor).can("change.read"):
            return None
    # "(waiting)" when an approval waits for the actor: the core reads it with the menu.
    pending = select(Approval.id).where(Approval.approver_id == actor.id,
                                        Approval.state == "pending").limit(1)
    return [NavItem("Change calendar", "/changes/calendar", order=50, group="work"),
            NavItem("Change approvals", "/changes/approvals", order=51, group="work",
                    note="waiting", note_when=pending)]


@hookimpl
def itsm_record_actions(record: Record, actor: Actor) -> list[NavItem] | None:
    """On a change: its approvals, conflicts and gate calls page."""
    if record.type != CHANGE.name or actor.role == "requester":
        return None
    return [NavItem("Approvals, risk and gate calls", f"/changes/{record.number}")]


@hookimpl
def itsm_cli_commands() -> list[click.Command]:
    """``itsm changes ...``."""
    from itsm.plugins.change.cli import changes_group

    return [changes_group]


# -- data ---------------------------------------------------------------------------------


@hookimpl
def itsm_install_defaults(ctx: DemoContext) -> None:
    """CAB groups and rules, the risk questionnaire and two standard templates."""
    from itsm.plugins.change import demo

    demo.install_defaults(ctx.session)


@hookimpl(trylast=True)  # after the incident plugin's demo incidents exist
def itsm_demo_data(ctx: DemoContext) -> None:
    """Changes in every stage, CAB members, a freeze window, a failed change."""
    from itsm.plugins.change import demo

    demo.load(ctx)

