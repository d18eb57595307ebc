"""Sign in with OpenID Connect (Entra ID, Okta, Keycloak ...) — a built-in itsm plugin.

The authorization code flow with PKCE, ``state`` and ``nonce`` checked, the ID token's
signature verified against the provider's published keys and its claims (issuer,
audience, expiry with a clock-skew leeway, nonce) checked by Authlib. Each provider
(``[plugins.oidc.providers.<name>]``, one per agency if need be) is a button on the
sign-in page (``itsm_sign_in_methods``); its groups claim maps to role, resolver groups
and agency like the ldap plugin's rules. It owns no tables and imports no other plugin.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.oidc.hooks import itsm_blueprints, itsm_sign_in_methods

plugin = Plugin(
    name="oidc", version="0.1.0",
    description="Sign in with OpenID Connect providers (authorization code flow, PKCE).",
    requires_itsm=">=0.1,<1",
    settings={
        # name -> {issuer, client_id, client_secret, label, domains, scope, groups_claim,
        #          default_role, roles, groups, agencies, leeway_seconds}; see README.
        "providers": {},
        "timeout_seconds": 10,
    },
)

__all__ = ["itsm_blueprints", "itsm_sign_in_methods", "plugin"]
