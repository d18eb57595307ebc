"""Shared pieces of the web side: navigation entries, and the browser's session and CSRF
token, which the console's pages and the API (called from a page) check alike.

The session cookie (signed by Flask) holds two random values: the secret of a
:class:`~itsm.core.models.WebSession` row, which the server ends on sign-out, on a
password change and after the idle time or maximum age (``auth.session_idle_minutes``,
``auth.session_max_hours``); and the CSRF token every unsafe request made with the cookie
must echo, in a form's ``csrf_token`` field or the API's ``X-CSRF-Token`` header (pages
carry it in ``<meta name="csrf-token">`` for script).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import request, session

from itsm.core import auth
from itsm.core.auth import Actor, Identity
from itsm.core.context import current_itsm
from itsm.core.models import User

log = logging.getLogger("itsm.web")

SESSION_KEY = "sid"
CSRF_KEY = "csrf"
CSRF_HEADER = "X-CSRF-Token"
_ACTOR_KEY = "itsm.web.actor"  # request.environ: per request, never shared through g


NAV_GROUPS = {"work": "My work", "process": "Processes", "reports": "Reports",
              "admin": "Administration", "portal": "Self-service"}


@dataclass(frozen=True)
class NavItem:
    """One entry of the console's navigation (returned by ``itsm_navigation``).

    ``group`` places it in the staff menu: ``work`` (my work and views: approvals, a
    calendar, a review queue), ``process`` (a process's own landing page), ``reports``,
    ``admin`` or ``portal`` (a self-service page for requesters); empty: ``portal`` for
    a URL under ``/portal``, else ``work``. A requester's menu is the portal's entries.
    ``record_type`` names the record type whose entry this is: it then replaces the
    core's list of that type in the menu (a knowledge search page for ``article``).

    An entry that depends on the database declares what it reads instead of reading it,
    so the core reads every entry's facts and the bell's count in one statement:
    ``shown_when`` is a SQLAlchemy ``select`` of one value (a row limited to one): the
    entry is shown only when it finds a value that is not empty (a billing contact's
    "Statements"); ``note_when`` likewise adds `` (<note>)`` to the label when it finds
    one ("Change approvals (waiting)"). Both run as scalar subqueries of that statement.
    """

    label: str
    url: str
    order: int = 100
    group: str = ""
    record_type: str = ""
    shown_when: Any = field(default=None, compare=False)
    note_when: Any = field(default=None, compare=False)
    note: str = ""

    @property
    def placed(self) -> str:
        """The group the entry is shown in."""
        if self.group in NAV_GROUPS:
            return self.group
        return "portal" if self.url.startswith("/portal") else "work"


def _itsm():
    return current_itsm()


def start_web_session(db, user: User) -> None:
    """Sign ``user`` in on this browser: a fresh cookie (nothing a visitor planted before
    survives: fixation) naming a new server-side session, and a new CSRF token. The
    caller commits ``db``."""
    settings = _itsm().settings
    max_age = timedelta(hours=float(settings["auth.session_max_hours"]))
    secret = auth.start_session(db, user, max_age=max_age)
    session.clear()
    session[SESSION_KEY] = secret
    session[CSRF_KEY] = secrets.token_urlsafe(32)
    request.environ.pop(_ACTOR_KEY, None)


def end_web_session() -> None:
    """Sign out: the server-side session ends, so a copy of the cookie stops working too."""
    secret = session.get(SESSION_KEY)
    if secret:
        with _itsm().Session() as db:
            auth.end_session(db, str(secret))
            db.commit()
    session.clear()
    request.environ[_ACTOR_KEY] = None


def sign_out_destination() -> str | None:
    """Where a sign-in method sends the browser after signing out (``itsm_sign_out``:
    a provider's single sign-out), asked before the local session ends; None for the
    sign-in page. A method's failure is logged: signing out of itsm never fails."""
    try:
        return _itsm().hook.itsm_sign_out(actor=web_session_actor(), values=dict(session))
    except Exception:
        log.exception("a sign-in method failed at sign-out; the local session ends")
        return None


def web_session_actor() -> Actor | None:
    """The signed-in user of the browser's session (checked once per request), or None.

    A cookie whose session ended or expired is cleared, so the browser drops it.
    """
    if _ACTOR_KEY not in request.environ:
        request.environ[_ACTOR_KEY] = _load_actor()
    return request.environ[_ACTOR_KEY]


def _load_actor() -> Actor | None:
    secret = session.get(SESSION_KEY)
    if not secret:
        return None
    itsm = _itsm()
    settings = itsm.settings
    # A page read (GET) goes on with this session in its unit of work, one connection for
    # the page. Any other request closes it at once: its transaction must not hold its
    # locks while the request changes things elsewhere (enabling a plugin migrates).
    reading = request.method in ("GET", "HEAD")
    with itsm.read_session() if reading else itsm.Session() as db:
        actor = auth.actor_for_session(
            db, str(secret), idle=timedelta(minutes=float(settings["auth.session_idle_minutes"])),
            max_age=timedelta(hours=float(settings["auth.session_max_hours"])))
    if actor is None:
        session.clear()
    return actor


def csrf_token() -> str:
    """The session's CSRF token (made on first use, e.g. by the sign-in form)."""
    token = session.get(CSRF_KEY)
    if not token:
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_matches(sent: str | None) -> bool:
    """Whether ``sent`` is this session's CSRF token (compared in constant time)."""
    expected = session.get(CSRF_KEY, "")
    return bool(expected) and hmac.compare_digest(str(sent or "").encode(),
                                                  str(expected).encode())


def sign_in(db, email: str, password: str):
    """Check a sign-in from a browser or an API client: the sign-in methods of the
    enabled plugins (``itsm_authenticate``), then the local password, under the sign-in
    limit (see :func:`itsm.core.auth.sign_in`). Returns the user; raises TooManyAttempts
    or Unauthorized."""
    itsm = _itsm()

    def ask_methods(**kwargs) -> Identity | None:
        try:
            return itsm.hook.itsm_authenticate(**kwargs)
        except Exception:  # a method's bug or outage never locks out the local admins
            log.exception("a sign-in method failed; the local password decides")
            return None

    return auth.sign_in(db, email, password, request.remote_addr or "",
                        authenticate_with=ask_methods,
                        local_passwords=bool(itsm.settings["auth.local_passwords"]))


def sign_in_methods() -> list:
    """What the sign-in page offers besides the password form (``itsm_sign_in_methods``).

    A plugin that fails here is logged and its buttons left out: the password form
    must stay, so that the local admins can always sign in (and fix the configuration).
    """
    try:
        return [method for _plugin, method in _itsm().results("itsm_sign_in_methods")]
    except Exception:
        log.exception("a sign-in method failed to list itself; the password form stays")
        return []
