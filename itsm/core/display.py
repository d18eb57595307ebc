"""People and time on pages: display names instead of addresses, times in the reader's zone.

Every page (the console's, the portal's, a plugin's) shows a person by display name with
the template filter ``person`` (an e-mail address or a user id in, the name out; the
address when the person has no name or is unknown) and a moment with ``when``, in the
reader's time zone: the signed-in user's own (``user_account.time_zone``), else the
install's (setting ``time_zone``, default UTC). People set their name and zone on their
account page (``/account``, :mod:`itsm.core.account`), through :func:`update_profile`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import g, has_request_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.core.auth import Actor
from itsm.core.context import current_itsm
from itsm.core.errors import Forbidden, ValidationError
from itsm.core.models import User
from itsm.core.web import web_session_actor

NAME_MAX = 200


def zone_of(name: str | None) -> ZoneInfo | None:
    """The zone called ``name``, or None when it is empty or not an IANA zone."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def install_zone() -> ZoneInfo:
    """The install's zone (setting ``time_zone``, checked when the settings load)."""
    return zone_of(str(current_itsm().settings.get("time_zone") or "UTC")) or ZoneInfo("UTC")


def reader_zone(actor: Actor | None = None) -> ZoneInfo:
    """The zone the signed-in reader (or ``actor``) sees times in."""
    if actor is None and has_request_context():
        actor = web_session_actor()
    return zone_of(getattr(actor, "time_zone", "")) or install_zone()


def local_time(value: str | datetime | None, zone: ZoneInfo | None = None) -> str:
    """A stored moment (UTC) as the reader reads it: ``2026-12-07 21:40 CET``."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # stored naive UTC
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone or reader_zone())
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or local.strftime('%z')}"


def zone_name(zone: ZoneInfo | None = None) -> str:
    """The reader's zone (or ``zone``) as people name it on a form: ``Europe/Berlin``."""
    return (zone or reader_zone()).key


def local_input(value: str | datetime | None, zone: ZoneInfo | None = None) -> str:
    """A stored moment as a ``datetime-local`` input shows it, in the reader's zone."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # stored naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone or reader_zone()).strftime("%Y-%m-%dT%H:%M")


def from_local_input(text: str, zone: ZoneInfo | None = None) -> str:
    """What a ``datetime-local`` input sent (a wall-clock time in the reader's zone) as an
    ISO moment with its offset, for a schema that stores UTC. Text that is not such a time,
    or that names its own offset, comes back unchanged: the schema says what is wrong."""
    text = (text or "").strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        return text
    return moment.replace(tzinfo=zone or reader_zone()).isoformat()


def display_names(session: Session, keys: set[Any]) -> dict[Any, str]:
    """Display names of the users with these e-mail addresses or ids (one query)."""
    emails = {k.lower() for k in keys if isinstance(k, str)}
    ids = {k for k in keys if isinstance(k, int)}
    out: dict[Any, str] = {}
    if emails:
        for email, name in session.execute(select(User.email, User.name)
                                           .where(User.email.in_(emails))):
            out[email] = name or email
    if ids:
        for id_, email, name in session.execute(select(User.id, User.email, User.name)
                                                .where(User.id.in_(ids))):
            out[id_] = name or email
    return out


def person(value: Any) -> str:
    """The display name of a user given by e-mail address or id; the value itself (an
    address, "system", "you") when no such user is known. Cached per request."""
    if value is None or value == "":
        return "—"
    key = value.lower() if isinstance(value, str) else value
    if not isinstance(key, str | int) or (isinstance(key, str) and "@" not in key):
        return str(value)
    cache = g.setdefault("itsm_people", {}) if has_request_context() else {}
    if key not in cache:
        with current_itsm().Session() as session:
            cache[key] = display_names(session, {key}).get(key, str(value))
    return cache[key]


def remember_names(names: dict[Any, str]) -> None:
    """Names already looked up (a page's people in one query) for :func:`person`."""
    if has_request_context():
        g.setdefault("itsm_people", {}).update(names)


# -- the account page ------------------------------------------------------------------------


def check_time_zone(name: str) -> str:
    """``name`` as an IANA zone name ("" keeps the install's), or a field message."""
    name = (name or "").strip()
    if name and zone_of(name) is None:
        raise ValidationError(f"{name!r} is not a time zone", fields={"time_zone": [
            "choose a time zone from the list, such as Europe/Berlin or UTC"]})
    return name


def update_profile(session: Session, actor: Actor, user_id: int, *, name: str,
                   time_zone: str) -> User:
    """Set a user's display name and time zone: the user themselves, or an admin."""
    if actor.id != user_id and actor.role != "admin":
        raise Forbidden(f"{actor.email} may change only their own name and time zone")
    user = session.get(User, user_id)
    errors: dict[str, list[str]] = {}
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = ["enter the name people see for you"]
    elif len(name) > NAME_MAX:
        errors["name"] = [f"at most {NAME_MAX} characters"]
    try:
        time_zone = check_time_zone(time_zone)
    except ValidationError as exc:
        errors.update(exc.fields)
    if errors:
        raise ValidationError("check " + " and ".join(sorted(errors)), fields=errors)
    user.name, user.time_zone = name, time_zone
    return user


def zone_names() -> list[str]:
    """Every IANA zone, sorted (for the account page's list)."""
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")
