"""Check an identity provider's configuration step by step: what ``itsm auth test-oidc``
prints and the admin page shows, from the same code. Every step asks the provider
itself: discovery, its keys, this client's credentials, and the callback address."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from itsm.plugin import ItsmError
from itsm.plugins.oidc import service


@dataclass(frozen=True)
class Step:
    """One step of the diagnosis: its name, whether it passed, and what it found."""

    name: str
    ok: bool
    text: str

    @property
    def line(self) -> str:
        return f"{self.name}: {self.text}"


def callback_path(provider: service.Provider) -> str:
    return f"/sso/oidc/{provider.name}/callback"


def _client_check(provider: service.Provider, document: dict[str, Any],
                  timeout: float) -> Step:
    # A made-up code: the token endpoint authenticates the client before it looks at the
    # code, so "invalid_grant" means the client id and secret were accepted.
    try:
        answer = requests.post(document["token_endpoint"], timeout=timeout, data={
            "grant_type": "authorization_code", "code": "itsm-diagnosis",
            "redirect_uri": "https://invalid.example/"},
            auth=(provider.client_id, provider.client_secret))
        error = answer.json().get("error", "") if answer.content else ""
    except (requests.RequestException, ValueError) as exc:
        return Step("client", False, f"the token endpoint cannot be asked: {exc}")
    if error == "invalid_client" or answer.status_code == 401:
        return Step("client", False, f"the provider refused the client {provider.client_id} "
                                     f"(check client_id and client_secret)")
    return Step("client", True, f"ok, {provider.client_id} accepted by the token endpoint")


def _redirect_check(provider: service.Provider, document: dict[str, Any], base: str,
                    timeout: float) -> Step:
    redirect_uri = base.rstrip("/") + callback_path(provider)
    url, _flow = service.authorization_request(provider, document, redirect_uri)
    try:
        answer = requests.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return Step("redirect", False, f"the authorization endpoint cannot be asked: {exc}")
    location = answer.headers.get("Location", "")
    if answer.is_redirect and not (location.startswith(redirect_uri) and "error=" in location):
        return Step("redirect", True, f"ok, the provider accepts {redirect_uri}")
    if answer.status_code == 200:
        return Step("redirect", True, f"{redirect_uri} not refused (the provider shows a page)")
    return Step("redirect", False, f"the provider refused {redirect_uri} (HTTP "
                                   f"{answer.status_code}): register it for this client")


def diagnose(provider: service.Provider, timeout: float,
             base: str | None = None) -> Iterator[Step]:
    """The steps for ``provider``: discovery, keys, client, redirect (with ``base``, the
    address people reach itsm at), single sign-out. Stops after the first failure."""
    try:
        document = service.discover(provider, timeout)
    except ItsmError as exc:
        yield Step("discovery", False, exc.message)
        return
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")
               if not document.get(k)]
    if missing:
        yield Step("discovery", False, f"the document lacks {', '.join(missing)}")
        return
    yield Step("discovery", True, f"ok, issuer {provider.issuer}")
    pkce = document.get("code_challenge_methods_supported")
    if pkce is not None and "S256" not in pkce:
        yield Step("pkce", False, f"the provider does not offer S256 (it offers "
                                  f"{', '.join(pkce) or 'nothing'})")
        return
    try:
        keys = KeySet.import_key_set(service.get_json(document["jwks_uri"], timeout))
    except (ItsmError, JoseError, ValueError, TypeError) as exc:
        text = exc.message if isinstance(exc, ItsmError) else str(exc)
        yield Step("keys", False, f"the provider's keys cannot be read: {text}")
        return
    usable = [k for k in keys.keys if k.key_type in ("RSA", "EC", "OKP")]
    if not usable:
        yield Step("keys", False, "no signing key (RSA, EC or OKP) is published")
        return
    yield Step("keys", True, f"{len(usable)} signing key(s): "
                             f"{', '.join(sorted({k.key_type for k in usable}))}")
    client = _client_check(provider, document, timeout)
    yield client
    if not client.ok:
        return
    if base:
        redirect = _redirect_check(provider, document, base, timeout)
        yield redirect
        if not redirect.ok:
            return
    else:
        yield Step("redirect", True, f"register <itsm's address>{callback_path(provider)} "
                                     f"at the provider (--url checks it)")
    yield Step("sign-out", True, "single sign-out through the provider's end-session "
                                 "endpoint" if document.get("end_session_endpoint") else
                                 "the provider has no end-session endpoint: signing out "
                                 "of itsm leaves the provider's session")


def mapping_step(provider: service.Provider, email: str, groups: list[str],
                 roles: list[str]) -> Step:
    """What the provider's rules make of a person with ``email`` whose groups claim holds
    ``groups``, as at their sign-in."""
    claims = {"email": email, "email_verified": True, provider.groups_claim: groups}
    try:
        identity = service.identity_for(provider, claims, roles)
    except ItsmError as exc:
        return Step("mapping", False, exc.message)
    agency = identity.agency or "none"
    return Step("mapping", True, f"role {identity.role}, groups "
                                 f"{', '.join(identity.groups) or 'none'}, agency {agency}")
