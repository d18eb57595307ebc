"""OpenID Connect with Authlib: discovery, the authorization request (PKCE, state,
nonce), the code exchange and the ID token's verification, and the claims' mapping.

joserfc (Authlib's own JOSE library, which Authlib 1.7+ builds on) verifies the token's
signature with the provider's JWKS and its claims; the
flow's state lives in the signed session cookie between the two requests, so nothing is
stored server-side and a replayed callback finds no state to match.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from itsm.plugin import Identity, ItsmError, ValidationError

SOURCE = "oidc"
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]  # never "none", nor HMAC with a public key


class SignInRefused(ItsmError):
    status = 401
    code = "sign_in_refused"


@dataclass(frozen=True)
class Provider:
    name: str
    issuer: str
    client_id: str
    client_secret: str
    label: str
    domains: tuple[str, ...] = ()
    scope: str = "openid email profile"
    groups_claim: str = "groups"
    default_role: str = "requester"
    roles: dict[str, str] = field(default_factory=dict)
    groups: dict[str, Any] = field(default_factory=dict)
    agencies: dict[str, str] = field(default_factory=dict)
    leeway_seconds: int = 60


def _unflatten(table: dict[str, Any]) -> dict[str, Any]:
    """itsm.toml's ``[plugins.oidc.providers.x.roles]`` arrives flattened
    (``x.roles.admins``); rebuild the nested tables."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        head, _, rest = key.partition(".")
        if rest:
            out.setdefault(head, {})
            out[head] = {**out[head], **_unflatten({rest: value})}
        elif isinstance(value, dict):
            out[head] = {**out.get(head, {}), **_unflatten(value)}
        else:
            out[head] = value
    return out


def providers(conf: dict[str, Any]) -> dict[str, Provider]:
    """The configured providers by name; ValidationError naming a missing setting."""
    found = {}
    for name, raw in _unflatten(dict(conf["providers"])).items():
        missing = [k for k in ("issuer", "client_id") if not raw.get(k)]
        if missing:
            raise ValidationError(f"plugins.oidc.providers.{name} needs {', '.join(missing)}",
                                  fields={name: ["incomplete"]})
        found[name] = Provider(
            name=name, issuer=str(raw["issuer"]).rstrip("/"), client_id=str(raw["client_id"]),
            client_secret=str(raw.get("client_secret", "")),
            label=str(raw.get("label") or f"Sign in with {name}"),
            domains=tuple(d.lower() for d in raw.get("domains", [])),
            scope=str(raw.get("scope", "openid email profile")),
            groups_claim=str(raw.get("groups_claim", "groups")),
            default_role=str(raw.get("default_role", "requester")),
            roles=dict(raw.get("roles", {})), groups=dict(raw.get("groups", {})),
            agencies=dict(raw.get("agencies", {})),
            leeway_seconds=int(raw.get("leeway_seconds", 60)))
    return found


def get_json(url: str, timeout: float) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SignInRefused(f"the identity provider cannot be reached ({url}): {exc}") \
            from None


def discover(provider: Provider, timeout: float) -> dict[str, Any]:
    """The provider's discovery document, its issuer checked (OpenID Discovery 4.3)."""
    document = get_json(f"{provider.issuer}/.well-known/openid-configuration", timeout)
    if str(document.get("issuer", "")).rstrip("/") != provider.issuer:
        raise SignInRefused(f"the discovery document names the issuer "
                            f"{document.get('issuer')!r}, not {provider.issuer!r}")
    return document


def authorization_request(provider: Provider, document: dict[str, Any],
                          redirect_uri: str, login_hint: str = "") \
        -> tuple[str, dict[str, str]]:
    """The URL to send the browser to, and the state to keep until the callback."""
    flow = {"provider": provider.name, "state": secrets.token_urlsafe(32),
            "nonce": secrets.token_urlsafe(32), "verifier": generate_token(64)}
    query = {"response_type": "code", "client_id": provider.client_id,
             "redirect_uri": redirect_uri, "scope": provider.scope, "state": flow["state"],
             "nonce": flow["nonce"], "code_challenge_method": "S256",
             "code_challenge": create_s256_code_challenge(flow["verifier"])}
    if login_hint:  # the address typed on the sign-in page, so it need not be typed again
        query["login_hint"] = login_hint
    prepared = requests.Request("GET", document["authorization_endpoint"],
                                params=query).prepare()
    return str(prepared.url), flow


def exchange_code(provider: Provider, document: dict[str, Any], code: str,
                  redirect_uri: str, flow: dict[str, str],
                  timeout: float) -> tuple[dict[str, Any], str]:
    """Trade the code for tokens (with the PKCE verifier) and return the ID token's
    verified claims, and the token itself (the hint of the single sign-out)."""
    try:
        response = requests.post(document["token_endpoint"], timeout=timeout, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": flow["verifier"]},
            auth=(provider.client_id, provider.client_secret))
    except requests.RequestException as exc:
        raise SignInRefused(f"the identity provider cannot be reached: {exc}") from None
    if response.status_code != 200:
        raise SignInRefused(f"the identity provider refused the code: {response.text[:200]}")
    id_token = response.json().get("id_token")
    if not id_token:
        raise SignInRefused("the identity provider sent no ID token")
    return verify_id_token(provider, document, id_token, flow["nonce"], timeout), id_token


def provider_for_email(found: dict[str, Provider], email: str) -> Provider:
    """The provider that signs in addresses of ``email``'s domain (one per agency)."""
    domain = (email or "").strip().lower().rpartition("@")[2]
    if not domain:
        raise SignInRefused("enter your work e-mail address")
    for provider in found.values():
        if domain in provider.domains:
            return provider
    raise SignInRefused(f"no identity provider signs in addresses of {domain}; "
                        f"sign in with your password")


def end_session_url(provider: Provider, document: dict[str, Any], id_token: str,
                    back_to: str) -> str | None:
    """The provider's end-session URL (OpenID Connect RP-Initiated Logout) that ends the
    person's session there and sends the browser back to ``back_to``; None when the
    provider publishes no end-session endpoint."""
    endpoint = document.get("end_session_endpoint")
    if not endpoint:
        return None
    query = {"post_logout_redirect_uri": back_to, "client_id": provider.client_id}
    if id_token:
        query["id_token_hint"] = id_token
    return str(requests.Request("GET", endpoint, params=query).prepare().url)


def verify_id_token(provider: Provider, document: dict[str, Any], id_token: str, nonce: str,
                    timeout: float, now: int | None = None) -> dict[str, Any]:
    """The ID token's claims, once its signature (the provider's JWKS; RS/PS/ES/EdDSA
    only) and claims are checked: issuer, audience (this client), expiry and issue time
    within ``leeway_seconds`` of clock skew, and the flow's nonce. ``now`` (epoch
    seconds) stands in for the clock in tests."""
    keys = get_json(document["jwks_uri"], timeout)
    registry = jwt.JWTClaimsRegistry(
        now=now, leeway=provider.leeway_seconds,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        exp={"essential": True},
        nonce={"essential": True, "value": nonce})
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=ALGORITHMS)
        registry.validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise SignInRefused(f"the ID token is not valid: {exc}") from None
    return dict(token.claims)


def identity_for(provider: Provider, claims: dict[str, Any], roles: list[str]) -> Identity:
    """What the provider's rules make of the ID token's claims."""
    email = str(claims.get("email") or "").strip().lower()
    if not email or claims.get("email_verified") is False:
        raise SignInRefused("the identity provider vouches for no verified e-mail address")
    if provider.domains and email.rsplit("@", 1)[-1] not in provider.domains:
        raise SignInRefused(f"{provider.label} may not sign in addresses of "
                            f"{email.rsplit('@', 1)[-1]}")
    raw = claims.get(provider.groups_claim) or []
    mine = [str(g) for g in (raw if isinstance(raw, list) else [raw])]
    low = {g.lower() for g in mine}

    def matching(rules: dict[str, Any]) -> list[Any]:
        return [value for key, value in rules.items() if key.lower() in low]

    role = next(iter(matching(provider.roles)), provider.default_role)
    if role not in roles:
        raise ValidationError(f"the oidc rules give the unknown role {role!r}",
                              fields={"role": ["unknown role"]})
    groups: list[str] = []
    for value in matching(provider.groups):
        groups.extend([value] if isinstance(value, str) else value)
    managed: list[str] = []
    for value in provider.groups.values():
        managed.extend([value] if isinstance(value, str) else value)
    agency = next(iter(matching(provider.agencies)), "") if provider.agencies else None
    return Identity(email=email, source=SOURCE, name=str(claims.get("name") or ""),
                    phone=str(claims.get("phone_number") or ""),
                    directory_groups=tuple(mine), role=role,
                    groups=tuple(dict.fromkeys(groups)),
                    managed_groups=tuple(dict.fromkeys(managed)), agency=agency)
