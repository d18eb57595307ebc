"""The flow's two pages: start (to the provider) and callback (back, signed in)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, session, url_for

from itsm.plugin import (
    ItsmError,
    User,
    current_itsm,
    known_roles,
    provision_user,
    start_web_session,
)
from itsm.plugins.oidc import service

pages = Blueprint("oidc", __name__)
FLOW_KEY = "oidc_flow"


def _provider(name: str) -> service.Provider:
    found = service.providers(current_itsm().plugin_settings("oidc")).get(name)
    if found is None:
        raise service.SignInRefused(f"no identity provider {name!r} is configured")
    return found


def _refused(message: str):
    flash(f"Sign-in refused: {message}.", "error")
    return redirect(url_for("console.login"))


@pages.get("/sso/oidc/<provider>/start")
def start(provider: str):
    timeout = float(current_itsm().plugin_settings("oidc")["timeout_seconds"])
    try:
        chosen = _provider(provider)
        document = service.discover(chosen, timeout)
    except ItsmError as exc:
        return _refused(exc.message)
    url, flow = service.authorization_request(
        chosen, document, url_for("oidc.callback", provider=provider, _external=True))
    session[FLOW_KEY] = flow  # in the signed cookie until the callback
    return redirect(url)


@pages.get("/sso/oidc/<provider>/callback")
def callback(provider: str):
    flow = session.pop(FLOW_KEY, None)  # one use: a replayed callback finds none
    itsm = current_itsm()
    timeout = float(itsm.plugin_settings("oidc")["timeout_seconds"])
    if not flow or flow.get("provider") != provider \
            or request.args.get("state") != flow.get("state"):
        return _refused("the sign-in's state does not match; start again")
    if request.args.get("error"):
        return _refused(request.args.get("error_description") or request.args["error"])
    try:
        chosen = _provider(provider)
        document = service.discover(chosen, timeout)
        claims = service.exchange_code(
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
    return redirect(url_for("console.home"))
