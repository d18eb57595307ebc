"""The core's default behaviour, as overridable ``trylast`` hook implementations.

Registered always (like pytest's essential plugins). Any plugin answering the same
first-result hooks wins over these defaults.
"""

from __future__ import annotations

import importlib

from itsm.core.attachments import AttachmentStore, LocalFolderStore
from itsm.core.auth import Actor, Permission, default_permission_check
from itsm.core.config import Settings
from itsm.core.context import current_itsm
from itsm.core.demo import DemoContext, install_defaults
from itsm.core.errors import ConfigError
from itsm.core.hookspecs import hookimpl
from itsm.core.records import CORE_LINK_KINDS, LinkKind
from itsm.core.references import ReferenceKind, core_kinds
from itsm.core.sla import SlaTarget, default_target


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
def itsm_reference_kinds() -> list[ReferenceKind]:
    # People, groups and agencies, at a low priority: a directory plugin may take over.
    return core_kinds()


@hookimpl(trylast=True)
def itsm_sla_policy(record, metric: str) -> SlaTarget | None:
    return default_target(_itsm().settings, record, metric)


@hookimpl(trylast=True)
def itsm_install_defaults(ctx: DemoContext) -> None:
    install_defaults(ctx)
