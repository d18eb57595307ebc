"""The flow's pages: start (to the provider, chosen by name or by the e-mail's domain)
and callback (back, signed in); the ID token is kept in the session for sign-out."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, session, url_for

from itsm.plugin import (
    ItsmError,
    User,
    continue_to,
    current_itsm,
    known_roles,
    provision_user,
    start_web_session,
)
from itsm.plugins.oidc import rules, service

pages = Blueprint("oidc", __name__)
FLOW_KEY = "oidc_flow"
# What the single sign-out needs, kept in the signed session cookie with the sign-in:
# the provider's name and the ID token (sent back as id_token_hint).
SIGNED_IN_KEY = "oidc_signed_in"
ID_TOKEN_KEPT = 2048  # characters: longer ID tokens are not kept in the cookie


def _settings() -> dict:
    return current_itsm().plugin_settings("oidc")


def _provider(name: str) -> service.Provider:
    found = rules.effective_providers(current_itsm()).get(name)  # with the admin's rules
    if found is None:
        raise service.SignInRefused(f"no identity provider {name!r} is configured")
    return found


def _refused(message: str):
    flash(f"Sign-in refused: {message}.", "error")
    return redirect(url_for("console.login"))


def _to_provider(chosen: service.Provider, login_hint: str = "", from_form: bool = False):
    try:
        document = service.discover(chosen, float(_settings()["timeout_seconds"]))
    except ItsmError as exc:
        return _refused(exc.message)
    url, flow = service.authorization_request(
        chosen, document, url_for("oidc.callback", provider=chosen.name, _external=True),
        login_hint=login_hint)
    session[FLOW_KEY] = flow  # in the signed cookie until the callback
    if from_form:  # browsers refuse a form's redirect to another site (form-action 'self')
        return continue_to(url, f"{chosen.label} signs you in, then brings you back here.",
                           link=f"Continue to {chosen.label}")
    return redirect(url)


@pages.get("/sso/oidc/start")
def choose():
    """The sign-in page's "work e-mail address" form: the provider of its domain."""
    email = request.args.get("email", "").strip()
    try:
        chosen = service.provider_for_email(service.providers(_settings()), email)
    except ItsmError as exc:
        return _refused(exc.message)
    return _to_provider(chosen, login_hint=email, from_form=True)


@pages.get("/sso/oidc/<provider>/start")
def start(provider: str):
    try:
        chosen = _provider(provider)
    except ItsmError as exc:
        return _refused(exc.message)
    return _to_provider(chosen)


@pages.get("/sso/oidc/<provider>/callback")
def callback(provider: str):
    flow = session.pop(FLOW_KEY, None)  # one use: a replayed callback finds none
    itsm = current_itsm()
    timeout = float(_settings()["timeout_seconds"])
    if not flow or flow.get("provider") != provider \
            or request.args.get("state") != flow.get("state"):
        return _refused("the sign-in's state does not match; start again")
    if request.args.get("error"):
        return _refused(request.args.get("error_description") or request.args["error"])
    try:
        chosen = _provider(provider)
        document = service.discover(chosen, timeout)
        claims, id_token = service.exchange_code(
            chosen, document, request.args.get("code", ""),
            url_for("oidc.callback", provider=provider, _external=True), flow, timeout)
        identity = service.identity_for(chosen, claims,
                                        known_roles(list(itsm.permissions.values())))
        with itsm.Session() as db:
            user: User = provision_user(db, identity)
            if not user.active:
                return _refused("this account is deactivated")
            start_web_session(db, user)
            db.commit()
    except ItsmError as exc:
        return _refused(exc.message)
    # A browser drops a cookie over 4 kB, and so the sign-in with it: an ID token with
    # hundreds of groups is not kept (the sign-out then names the client only, which
    # RP-Initiated Logout allows; the provider asks the person to confirm).
    session[SIGNED_IN_KEY] = {"provider": provider,
                              "id_token": id_token if len(id_token) <= ID_TOKEN_KEPT else ""}
    return redirect(url_for("console.home"))
