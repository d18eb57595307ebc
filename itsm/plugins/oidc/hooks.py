"""The oidc plugin's hook implementations: the sign-in buttons and the flow's pages."""

from __future__ import annotations

from flask import Blueprint, url_for

from itsm.plugin import SignInMethod, current_itsm, hookimpl
from itsm.plugins.oidc import service


@hookimpl
def itsm_sign_in_methods() -> list[SignInMethod]:
    """One button per configured provider."""
    providers = service.providers(current_itsm().plugin_settings("oidc"))
    return [SignInMethod(name=f"oidc-{name}", label=p.label,
                         url=url_for("oidc.start", provider=name))
            for name, p in providers.items()]


@hookimpl
def itsm_blueprints() -> list[Blueprint]:
    """``/sso/oidc/<provider>/start`` and ``/sso/oidc/<provider>/callback``."""
    from itsm.plugins.oidc.pages import pages

    return [pages]
