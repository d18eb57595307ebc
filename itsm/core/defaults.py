"""The core's default behaviour, as overridable ``trylast`` hook implementations.

Registered always (like pytest's essential plugins). Any plugin answering the same
first-result hooks wins over these defaults.
"""

from __future__ import annotations

import importlib

from itsm.core import inbox
from itsm.core.attachments import AttachmentStore, LocalFolderStore
from itsm.core.auth import Actor, Permission, default_permission_check
from itsm.core.config import Settings
from itsm.core.context import current_itsm
from itsm.core.demo import DemoContext, install_defaults
from itsm.core.errors import ConfigError
from itsm.core.hookspecs import hookimpl
from itsm.core.notify import EventMessage, Recipient
from itsm.core.records import CORE_LINK_KINDS, LinkKind
from itsm.core.references import ReferenceKind, core_kinds
from itsm.core.sla import SlaTarget


def _itsm():
    return current_itsm()


@hookimpl
def itsm_link_kinds() -> list[LinkKind]:
    return list(CORE_LINK_KINDS)


@hookimpl
def itsm_permissions() -> list[Permission]:
    return [
        Permission("admin.users", "manage users, roles and tokens", ("admin",)),
        Permission("admin.plugins", "enable and disable plugins", ("admin",)),
        Permission("admin.groups", "manage agencies, groups and their members", ("admin",)),
        Permission("groups.read", "read resolver groups and their members",
                   ("admin", "agent")),
        Permission("satisfaction.read", "read satisfaction reports by group, service, "
                   "agency and period", ("admin", "agent")),
    ]


@hookimpl(trylast=True)
def itsm_permission_check(actor: Actor, permission: str, record) -> bool:
    return default_permission_check(actor, permission, record, _itsm().permissions)


@hookimpl(trylast=True)
def itsm_attachment_store(settings: Settings) -> AttachmentStore:
    dotted = settings.get("attachments.store")
    if not dotted:
        return LocalFolderStore(settings.attachments_path)
    module, _, name = dotted.partition(":")
    try:
        return getattr(importlib.import_module(module), name)(settings)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"attachments.store {dotted!r} cannot be loaded: {exc}") from None


@hookimpl(trylast=True)
def itsm_sla_policy(record, metric: str, session) -> SlaTarget | None:
    # The targets saved by admins (versions by record creation time), else [sla].
    from itsm.core.sla.stored import policy_target

    return policy_target(_itsm(), session, record, metric)


@hookimpl(trylast=True)
def itsm_admin_pages() -> list:
    # The core's admin pages kept beside their own service functions (service levels).
    from itsm.core.admin.kit import AdminPage

    return [AdminPage("SLA targets", "admin.service_levels", "Service levels",
                      description="minutes per priority for each metric, the calendar "
                      "and the warning threshold new records get"),
            AdminPage("Business calendars", "admin.calendars", "Service levels",
                      description="working hours, time zone and holidays the clocks "
                      "run on")]


@hookimpl(trylast=True)
def itsm_reference_kinds() -> list[ReferenceKind]:
    # People, groups and agencies, at a low priority: a directory plugin may take over.
    return core_kinds()


@hookimpl(trylast=True)
def itsm_install_defaults(ctx: DemoContext) -> None:
    install_defaults(ctx)


@hookimpl
def itsm_notification_channels() -> list:
    """The in-app inbox (see :mod:`itsm.core.inbox`): always there, like the journal."""
    return [inbox.InboxChannel()]


@hookimpl
def itsm_notification_recipients(event: EventMessage, session) -> list[Recipient]:
    """Who finds ``event`` in their inbox, from what every record and event carries; a
    password-reset link goes to the address it was asked for, by e-mail only."""
    from itsm.core.password_reset import EVENT

    if event.name == EVENT:
        to = event.payload.get("to")
        return [Recipient("email", str(to))] if to else []
    return inbox.recipients(_itsm(), event, session)
