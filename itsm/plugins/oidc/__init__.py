"""Sign in with OpenID Connect (Entra ID, Okta, Keycloak ...) — a built-in itsm plugin.

The authorization code flow with PKCE, ``state`` and ``nonce`` checked, the ID token's
signature verified against the provider's published keys and its claims (issuer,
audience, expiry with a clock-skew leeway, nonce) checked by Authlib. Each provider
(``[plugins.oidc.providers.<name>]``, one per agency if need be) is chosen on the sign-in
page by the domain of the work e-mail address typed there, or is a button of its own
(``itsm_sign_in_methods``); its groups claim maps to role, resolver groups and agency
like the ldap plugin's rules. Signing out of itsm ends the provider's session too
(``itsm_sign_out``: its end-session endpoint); ``itsm auth test-oidc`` diagnoses the
configuration. Its admin page shows each provider's configuration and adds mapping
rules to those of itsm.toml (table ``oidc_rule``, applied after the file's). It imports
no other plugin.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.oidc.hooks import (
    itsm_admin_pages,
    itsm_auth_commands,
    itsm_blueprints,
    itsm_sign_in_methods,
    itsm_sign_out,
)

plugin = Plugin(
    name="oidc", version="0.1.0",
    description="Sign in with OpenID Connect providers (authorization code flow, PKCE).",
    requires_itsm=">=0.1,<1",
    settings={
        # name -> {issuer, client_id, client_secret, label, domains, scope, groups_claim,
        #          default_role, roles, groups, agencies, leeway_seconds}; see README.
        "providers": {},
        # The sign-in page's button under the "work e-mail address" field that picks
        # the provider by the address's domain (providers with ``domains``).
        "label": "Continue with your organization's account",
        "timeout_seconds": 10,
    },
)

__all__ = ["itsm_admin_pages", "itsm_auth_commands", "itsm_blueprints", "itsm_sign_in_methods",
           "itsm_sign_out", "plugin"]
