"""The ldap plugin's hook implementations: sign-in, the periodic sync, its commands."""

from __future__ import annotations

import logging
import time
import weakref
from datetime import datetime

import click

from itsm.plugin import Identity, ItsmError, current_itsm, hookimpl
from itsm.plugins.ldap import rules, service

log = logging.getLogger("itsm.ldap")

# When each application last synced (monotonic seconds). Per process: several workers
# each sync once per period, which is harmless, as a sync only repeats the same answer.
_last_sync: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@hookimpl
def itsm_authenticate(email: str, password: str, client: str) -> Identity | None:
    """The directory's identity of ``email`` when ``password`` is their directory password
    and they are in an allowed group; None otherwise, and when the directory cannot be
    asked (the local password decides then, so local admins still get in)."""
    itsm = current_itsm()
    conf = itsm.plugin_settings("ldap")
    if not conf["url"]:  # enabled but not configured yet: the local password decides
        return None
    conf = rules.effective_settings(itsm)  # the admin page's rules after the file's
    try:
        person = service.authenticate(conf, email, password)
    except service.DirectoryError as exc:
        log.warning("ldap sign-in of %s from %s: %s", email, client, exc.message)
        return None
    if person is None:
        return None
    if not service.allowed(conf, person):
        log.info("ldap sign-in of %s refused: in none of the allowed groups", email)
        return None
    return service.identity_for(conf, person, service.role_names(itsm))


@hookimpl
def itsm_periodic(now: datetime) -> None:
    """Sync the directory's users every ``sync_minutes`` (see :func:`service.sync`)."""
    itsm = current_itsm()
    conf = itsm.plugin_settings("ldap")
    if not conf["url"]:
        return
    minutes = float(conf["sync_minutes"])
    last = _last_sync.get(itsm)
    if minutes <= 0 or (last is not None and time.monotonic() - last < minutes * 60):
        return
    _last_sync[itsm] = time.monotonic()
    try:
        report = service.sync(itsm, conf)
    except ItsmError as exc:  # an outage: nobody is deactivated, the next period retries
        log.warning("ldap sync skipped: %s", exc.message)
        return
    log.info("ldap sync: %d checked, %d deactivated", report.checked,
             len(report.deactivated))


@hookimpl
def itsm_admin_pages() -> list:
    """The admin page "Directory (LDAP)" under "Sign-in"."""
    from itsm.plugins.ldap.admin import PAGE

    return [PAGE]


@hookimpl
def itsm_blueprints() -> list:
    """The admin page's views, under ``/admin/sign-in/ldap``."""
    from itsm.plugins.ldap.admin import admin

    return [admin]


@hookimpl
def itsm_auth_commands() -> list[click.Command]:
    """``itsm auth test-ldap EMAIL``."""
    from itsm.plugins.ldap.cli import test_ldap_command

    return [test_ldap_command]


@hookimpl
def itsm_cli_commands() -> list[click.Command]:
    """``itsm ldap sync`` and ``itsm ldap test EMAIL`` (as ``itsm auth test-ldap``)."""
    from itsm.plugins.ldap.cli import ldap_group

    return [ldap_group]
