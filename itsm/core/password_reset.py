""""Forgot password?": a single-use link by mail, and the pages that ask for and use it.

A request always gets the same answer, whether the address belongs to a user or not.
Every request is a ``password_reset`` row, counted for the rate limit (per address typed
and per client, kept in the database like the sign-in limit). For an active user who may
use a local password the row also holds the SHA-256 of the link's secret and its expiry
(``auth.password_reset_minutes``, an hour by default), and an ``account.password_reset``
outbox event mails the link through the e-mail channel, as every other mail goes.

The secret itself is never stored: it is an HMAC, under the install's secret key, of the
row, the expiry and the user's password hash at the time, so the mail channel computes
it when it sends the link (:func:`reset_link`) and a change of password invalidates it.
A link works once, until it expires, and only while it is the user's newest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import timedelta

from flask import flash, redirect, request, url_for
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from itsm.core import auth
from itsm.core.admin.models import PasswordReset
from itsm.core.auth import TooManyAttempts
from itsm.core.context import current_itsm
from itsm.core.errors import ItsmError, ValidationError
from itsm.core.models import Event, User, utcnow
from itsm.core.pagekit import field_messages, page_blueprint, render_page

log = logging.getLogger("itsm.auth")

EVENT = "account.password_reset"
WINDOW = timedelta(hours=1)
MAX_PER_EMAIL = 3  # requests per address typed within the window
MAX_PER_CLIENT = 10  # requests per client address within the window

bp = page_blueprint("account", __name__, template_folder=None,
                    public=("forgot", "reset"))


def _secret(row_id: int, user_id: int, expires_at, password_hash: str | None) -> str:
    key = str(current_itsm().settings.get("secret_key") or "")
    if not key:  # without a key the link would be guessable from the database alone
        raise ItsmError("password resets need a secret_key (run `itsm init`)")
    message = (f"itsm-password-reset\x00{row_id}\x00{user_id}\x00"
               f"{int(expires_at.timestamp())}\x00{password_hash or ''}")
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return f"{row_id}-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _throttled(session: Session, email: str, client: str) -> bool:
    since = utcnow() - WINDOW
    by_email = session.scalar(select(func.count()).select_from(PasswordReset).where(
        PasswordReset.email == email, PasswordReset.created_at >= since))
    by_client = session.scalar(select(func.count()).select_from(PasswordReset).where(
        PasswordReset.remote_addr == client, PasswordReset.created_at >= since))
    return by_email >= MAX_PER_EMAIL or by_client >= MAX_PER_CLIENT


def request_reset(session: Session, email: str, client: str, *, base_url: str = "",
                  limited: bool = True) -> Event | None:
    """Record a reset request for ``email``; for an active user who may use a local
    password, make the link (the user's earlier links stop working) and the outbox event
    that mails it. Returns the event or None, which the caller must never show. Raises
    TooManyAttempts over the limit (the same for every address). Caller commits and then
    announces the event (``itsm.outbox.committed``)."""
    itsm = current_itsm()
    email = (email or "").strip().lower()[:254]
    client = (client or "")[:64]
    if limited and _throttled(session, email, client):
        raise TooManyAttempts("too many password-reset requests; try again in an hour")
    row = PasswordReset(email=email, remote_addr=client)
    session.add(row)
    user = session.scalar(select(User).where(User.email == email)) if email else None
    if user is None or not user.active or (
            user.auth_source and not itsm.settings["auth.local_passwords"]):
        session.flush()
        return None
    now = utcnow()
    session.execute(update(PasswordReset)  # a newer link invalidates the older ones
                    .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None),
                           PasswordReset.expires_at > now)
                    .values(expires_at=now).execution_options(synchronize_session=False))
    minutes = float(itsm.settings["auth.password_reset_minutes"])
    row.user_id = user.id
    row.expires_at = (now + timedelta(minutes=minutes)).replace(microsecond=0)
    session.flush()
    row.token_hash = _hash(_secret(row.id, user.id, row.expires_at, user.password_hash))
    event = Event(name=EVENT, actor_id=None, payload={
        "to": user.email, "name": user.name, "reset_id": row.id,
        "expires_at": row.expires_at.isoformat(), "minutes": int(minutes),
        "base": base_url.rstrip("/")})
    session.add(event)
    session.flush()
    return event


def reset_link(reset_id: int, base: str = "") -> str | None:
    """The link of reset request ``reset_id`` (for the mail channel), or None when it
    no longer works; ``base`` is the console's address (``https://itsm.example.org``)."""
    itsm = current_itsm()
    with itsm.Session() as session:
        row = session.get(PasswordReset, int(reset_id))
        user = session.get(User, row.user_id) if row is not None and row.user_id else None
        if user is None or row.expires_at is None:
            return None
        token = _secret(row.id, user.id, row.expires_at, user.password_hash)
    if _hash(token) != row.token_hash:
        return None  # the password changed since
    base = str(itsm.settings.get("auth.base_url") or base or "").rstrip("/")
    return f"{base}/password/reset/{token}"


def valid_reset(session: Session, token: str) -> tuple[PasswordReset, User] | None:
    """The request and user of a link that still works, else None."""
    token = (token or "")[:200]
    row = session.scalar(select(PasswordReset).where(PasswordReset.token_hash == _hash(token)))
    if row is None or row.used_at is not None or row.expires_at is None \
            or row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    newest = session.scalar(select(func.max(PasswordReset.id)).where(
        PasswordReset.user_id == user.id, PasswordReset.token_hash.is_not(None)))
    expected = _secret(row.id, user.id, row.expires_at, user.password_hash)
    if newest != row.id or not hmac.compare_digest(expected, token):
        return None
    return row, user


def use_reset(session: Session, token: str, password: str, confirm: str) -> User:
    """Set the new password through a link (once); its user's sessions end."""
    found = valid_reset(session, token)
    if found is None:
        raise ValidationError("this link no longer works: ask for a new one",
                              fields={"token": ["expired or used"]})
    row, user = found
    if password != confirm:
        raise ValidationError("the two passwords differ",
                              fields={"confirm": ["differs from the new password"]})
    auth.set_password(session, user, password)
    row.used_at = utcnow()
    return user


# -- pages -------------------------------------------------------------------------------------


def _base_url() -> str:
    return request.url_root.rstrip("/")


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot():
    itsm = current_itsm()
    email = request.form.get("email", "").strip() if request.method == "POST" else ""
    if request.method == "GET":
        return render_page("console/forgot.html", email="", sent=False, error="")
    if not email:
        return render_page("console/forgot.html", 422, email=email, sent=False,
                           error="Type the e-mail address you sign in with.")
    try:
        with itsm.Session() as session:
            event = request_reset(session, email, request.remote_addr or "",
                                  base_url=_base_url())
            session.commit()
    except TooManyAttempts:
        return render_page("console/forgot.html", 429, email=email, sent=False,
                           error="Too many requests for a new password. Try again in an "
                                 "hour.")
    if event is not None:
        itsm.outbox.committed([event])
    # The same answer whether the address is known or not.
    return render_page("console/forgot.html", email="", sent=True, error="")


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    itsm = current_itsm()
    with itsm.Session() as session:
        if valid_reset(session, token) is None:
            return render_page("console/reset.html", 400, valid=False, errors={})
        if request.method == "GET":
            return render_page("console/reset.html", valid=True, errors={})
        try:
            use_reset(session, token, request.form.get("password", ""),
                      request.form.get("confirm", ""))
            session.commit()
        except ValidationError as exc:
            session.rollback()
            return render_page("console/reset.html", 422, valid=True,
                               errors=field_messages(exc.fields or {}))
    flash("Your password is changed. Sign in with it.", "success")
    return redirect(url_for("console.login"))
