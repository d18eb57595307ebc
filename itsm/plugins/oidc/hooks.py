"""The oidc plugin's hook implementations: the sign-in buttons, the flow's pages, the
single sign-out and the diagnosis command."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import click
from flask import Blueprint, url_for

from itsm.plugin import ItsmError, SignInMethod, current_itsm, hookimpl
from itsm.plugins.oidc import service

log = logging.getLogger("itsm.oidc")


@hookimpl
def itsm_sign_in_methods() -> list[SignInMethod]:
    """A "work e-mail address" form for the providers chosen by domain (one per agency),
    and a button for each provider without domains."""
    conf = current_itsm().plugin_settings("oidc")
    providers = service.providers(conf)
    methods = [SignInMethod(name=f"oidc-{name}", label=p.label,
                            url=url_for("oidc.start", provider=name))
               for name, p in providers.items() if not p.domains]
    if any(p.domains for p in providers.values()):
        methods.insert(0, SignInMethod(name="oidc", label=str(conf["label"]),
                                       url=url_for("oidc.choose"), asks_email=True))
    return methods


@hookimpl
def itsm_sign_out(values: Mapping[str, Any]) -> str | None:
    """The provider's end-session URL when the person signed in through it, so that
    signing out of itsm signs them out there too and comes back to the sign-in page."""
    from itsm.plugins.oidc.pages import SIGNED_IN_KEY

    signed_in = values.get(SIGNED_IN_KEY)
    if not isinstance(signed_in, dict):
        return None
    conf = current_itsm().plugin_settings("oidc")
    provider = service.providers(conf).get(str(signed_in.get("provider")))
    if provider is None:
        return None
    try:
        document = service.discover(provider, float(conf["timeout_seconds"]))
    except ItsmError as exc:  # the local session still ends; the provider's stays
        log.warning("single sign-out at %s skipped: %s", provider.name, exc.message)
        return None
    return service.end_session_url(provider, document, str(signed_in.get("id_token", "")),
                                   url_for("console.login", _external=True))


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """``/sso/oidc/start`` (by e-mail domain), ``/sso/oidc/<provider>/start`` and
    ``/sso/oidc/<provider>/callback``; the admin page under ``/admin/sign-in/oidc``."""
    from itsm.plugins.oidc.admin import admin
    from itsm.plugins.oidc.pages import pages

    return [pages, admin]


@hookimpl
def itsm_admin_pages() -> list:
    """The admin page "Identity providers (OIDC)" under "Sign-in"."""
    from itsm.plugins.oidc.admin import PAGE

    return [PAGE]


@hookimpl
def itsm_auth_commands() -> list[click.Command]:
    """``itsm auth test-oidc [PROVIDER]``."""
    from itsm.plugins.oidc.cli import test_oidc_command

    return [test_oidc_command]
