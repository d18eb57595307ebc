"""Users, roles, passwords, web sessions, API tokens and the service layer's permission check.

Passwords are hashed with Argon2id. API tokens and web sessions are 256-bit random secrets
stored as their SHA-256: a secret is unguessable, so a fast hash is enough and checking one
costs microseconds on every request (a slow KDF there would cost tenths of a second).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from itsm.core.errors import ItsmError, NotFound, Unauthorized, ValidationError
from itsm.core.models import (
    Agency,
    ApiToken,
    GroupMember,
    LoginFailure,
    User,
    WebSession,
    utcnow,
)

CORE_ROLES = ("admin", "agent", "requester")
TOKEN_PREFIX = "itsm_"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # hashing a megabyte on every sign-in attempt would be a lever for DoS
# zxcvbn's score from 0 to 4; 2 and up means more than a million guesses. Below lie every
# password of the common-password lists it ranks (30,000, "password" and "12345678"
# first) and their capitalised, l33t, reversed and digit-appended forms, keyboard walks,
# repeats and dates. "change-me-now" scores 3, "demo-password" 2.
MIN_PASSWORD_SCORE = 2
# zxcvbn's matching grows faster than linearly with length (and it refuses more than
# 72 characters): a password whose first 72 characters are hard to guess is too.
SCORED_PREFIX = 72
TOKEN_MAX_DAYS = 365  # the default of auth.token_max_days


class TooManyAttempts(ItsmError):
    status = 429
    code = "too_many_attempts"


@dataclass(frozen=True)
class Permission:
    """A permission a plugin checks, with the roles that hold it by default."""

    name: str
    description: str = ""
    roles: tuple[str, ...] = ("admin",)


@dataclass(frozen=True)
class Actor:
    """Who performs an action: a user, or the system itself (``id`` None)."""

    id: int | None
    email: str
    role: str
    name: str = ""
    agency_id: int | None = None
    group_ids: frozenset[int] = field(default_factory=frozenset)
    time_zone: str = ""  # IANA zone the pages show times in; empty: the install's

    @classmethod
    def system(cls) -> Actor:
        return cls(id=None, email="system", role="admin", name="itsm")

    @classmethod
    def of(cls, session: Session, user: User) -> Actor:
        groups = session.scalars(select(GroupMember.group_id)
                                 .where(GroupMember.user_id == user.id)).all()
        return cls(id=user.id, email=user.email, role=user.role, name=user.name,
                   agency_id=user.agency_id, group_ids=frozenset(groups),
                   time_zone=user.time_zone or "")

    @property
    def is_system(self) -> bool:
        return self.id is None


def password_problem(password: str, email: str = "") -> tuple[str, str] | None:
    """Why ``password`` may not be used by the user ``email`` (a sentence and a short
    field message), or None when it may.

    The policy, the same for every role: at least :data:`MIN_PASSWORD` characters (at
    most :data:`MAX_PASSWORD`), not only spaces, not the e-mail address nor its name part
    (anyone who knows the user knows them), and not a common or easily guessed password
    (zxcvbn's estimate below :data:`MIN_PASSWORD_SCORE`, which also weighs the address).
    """
    if len(password) < MIN_PASSWORD:
        return f"the password must have at least {MIN_PASSWORD} characters", "too short"
    if len(password) > MAX_PASSWORD:
        return f"the password may have at most {MAX_PASSWORD} characters", "too long"
    if not password.strip():
        return "the password may not be only spaces", "only spaces"
    address = (email or "").strip().lower()
    guessable = {address, address.split("@")[0]} - {""}
    if password.strip().lower() in guessable:
        return ("the password may not be the e-mail address or its name part",
                "the e-mail address")
    estimate = zxcvbn(password[:SCORED_PREFIX], user_inputs=sorted(guessable))
    if estimate["score"] < MIN_PASSWORD_SCORE:
        why = estimate["feedback"].get("warning") or (
            "it is mostly the e-mail address" if any(
                m.get("dictionary_name") == "user_inputs" for m in estimate["sequence"])
            else "it is easy to guess")
        return (f"the password is too common or too easy to guess ({why.rstrip('.')}); "
                "a few unrelated words make a strong one", "too common or easy to guess")
    return None


def check_password_policy(password: str, email: str = "", field: str = "password") -> None:
    """Raise a ValidationError naming ``field`` when ``password`` breaks the policy."""
    problem = password_problem(password, email)
    if problem:
        raise ValidationError(problem[0], fields={field: [problem[1]]})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def known_roles(permissions: list[Permission]) -> list[str]:
    extra = {role for p in permissions for role in p.roles} - set(CORE_ROLES)
    return [*CORE_ROLES, *sorted(extra)]


def user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with e-mail {email!r}")
    return user


def agency_by_code(session: Session, code: str) -> Agency:
    agency = session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise NotFound(f"no agency with code {code!r}", fields={"agency": ["unknown agency"]})
    return agency


def create_user(session: Session, email: str, *, password: str | None = None,
                role: str = "requester", name: str = "", agency: str | None = None,
                roles: list[str] | None = None) -> User:
    """Add a user; raise ValidationError naming the bad field."""
    email = (email or "").strip().lower()
    if not _EMAIL.match(email):
        raise ValidationError(f"{email!r} is not an e-mail address",
                              fields={"email": ["not an e-mail address"]})
    allowed = roles or list(CORE_ROLES)
    if role not in allowed:
        raise ValidationError(f"unknown role {role!r} (roles: {', '.join(allowed)})",
                              fields={"role": ["unknown role"]})
    if password is not None:
        check_password_policy(password, email)
    if session.scalar(select(User.id).where(User.email == email)):
        raise ValidationError(f"a user with e-mail {email} exists already",
                              fields={"email": ["already exists"]})
    user = User(email=email, name=name or email.split("@")[0], role=role,
                password_hash=hash_password(password) if password else None,
                agency_id=agency_by_code(session, agency).id if agency else None)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str, field: str = "password") -> None:
    """Give ``user`` a new password (checked against the policy, naming ``field`` when it
    is refused) and end every web session the user has: whoever held the old password
    may have signed in with it. API tokens stay; they are revoked one by one."""
    check_password_policy(password, user.email, field=field)
    user.password_hash = hash_password(password)
    end_sessions(session, user.id)


def token_expiry(days: int | None, *, max_days: int = TOKEN_MAX_DAYS,
                 not_after: datetime | None = None) -> datetime:
    """When a token asked for ``days`` expires: after ``days`` (None or 0: as long as
    allowed), never later than ``max_days`` from now (``auth.token_max_days``) nor than
    ``not_after`` (the expiry of the token that asks for it: a token never makes one that
    outlives it). Raises ValidationError on ``days`` that are not a count of days."""
    if isinstance(days, bool) or not isinstance(days, int | None) or (days or 0) < 0:
        raise ValidationError("days must be a whole number of days, 0 or more",
                              fields={"days": ["not a number of days (0 or more)"]})
    max_days = max(1, int(max_days))
    now = utcnow()
    expires = now + timedelta(days=min(days or max_days, max_days))
    return min(expires, not_after) if not_after is not None else expires


def create_token(session: Session, user: User, *, name: str = "", days: int | None = None,
                 max_days: int = TOKEN_MAX_DAYS, not_after: datetime | None = None) \
        -> tuple[ApiToken, str]:
    """Create an API token; return the row and the secret (shown only this once).

    Its lifetime is :func:`token_expiry` of ``days``, ``max_days`` and ``not_after``:
    every token expires.
    """
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=hash_token(secret),
                     prefix=secret[:12],
                     expires_at=token_expiry(days, max_days=max_days, not_after=not_after))
    session.add(token)
    session.flush()
    return token, secret


def effective_expiry(created_at: datetime, expires_at: datetime | None,
                     max_days: int = TOKEN_MAX_DAYS) -> datetime:
    """When a token stops working: its own expiry, never later than ``max_days`` after it
    was made (so lowering ``auth.token_max_days`` shortens the tokens already out, and a
    token made before every token expired gets an end too)."""
    capped = created_at + timedelta(days=max(1, int(max_days)))
    return min(expires_at, capped) if expires_at is not None else capped


def _token_actor() -> Select:
    token, user, member = ApiToken.__table__, User.__table__, GroupMember.__table__
    return (select(token.c.id, token.c.revoked_at, token.c.expires_at, token.c.last_used_at,
                   token.c.created_at,
                   user.c.id.label("user_id"), user.c.email, user.c.role, user.c.name,
                   user.c.agency_id, user.c.active, member.c.group_id)
            .join(user, user.c.id == token.c.user_id)
            .outerjoin(member, member.c.user_id == user.c.id)
            .where(token.c.token_hash == bindparam("token_hash")))


# Built once: every API request runs it, and building it cost more than running it.
_TOKEN_ACTOR = _token_actor()


def actor_for_token(session: Session, secret: str,
                    max_days: int = TOKEN_MAX_DAYS) -> Actor | None:
    """The actor of the active user owning ``secret``, or None if the token is unknown,
    revoked or expired (see :func:`token_for_secret`)."""
    found = token_for_secret(session, secret, max_days)
    return found[0] if found else None


def token_for_secret(session: Session, secret: str, max_days: int = TOKEN_MAX_DAYS) \
        -> tuple[Actor, datetime] | None:
    """The actor of the active user owning ``secret`` and when the token expires (see
    :func:`effective_expiry`), or None if the token is unknown, revoked or expired.

    One query, the token with its user and the user's groups: this runs on every API
    request, and the request's own work goes on in the same transaction. The token's use
    is recorded at most once a minute (a write on every request would serialise
    readers), and then committed at once: the row stays locked only for that moment,
    whatever the request goes on to do.
    """
    if not secret.startswith(TOKEN_PREFIX):
        return None
    rows = session.execute(_TOKEN_ACTOR, {"token_hash": hash_token(secret)}).all()
    if not rows:
        return None
    found, now = rows[0], utcnow()
    expires = effective_expiry(found.created_at, found.expires_at, max_days)
    if found.revoked_at or expires <= now or not found.active:
        return None
    if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
        session.execute(update(ApiToken).where(ApiToken.id == found.id)
                        .values(last_used_at=now)
                        .execution_options(synchronize_session=False))
        session.commit()
    return Actor(id=found.user_id, email=found.email, role=found.role, name=found.name,
                 agency_id=found.agency_id,
                 group_ids=frozenset(r.group_id for r in rows if r.group_id is not None)), \
        expires


def revoke_token(session: Session, token_id: int, owner: User | None = None) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or (owner is not None and token.user_id != owner.id):
        raise NotFound(f"no API token {token_id}")
    token.revoked_at = token.revoked_at or utcnow()
    return token


def authenticate(session: Session, email: str, password: str, *,
                 local_passwords: bool = True) -> User | None:
    """The active user of ``email`` when ``password`` is their local password, else None.

    With ``local_passwords`` False (``auth.local_passwords = false``) a user made by a
    sign-in method (``auth_source`` set) has no local password: they sign in only there.
    """
    user = session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None or not user.active or not check_password(user.password_hash, password):
        return None
    if user.auth_source and not local_passwords:
        return None
    return user


# -- identities from sign-in methods (directories, identity providers) ----------------------


@dataclass(frozen=True)
class Identity:
    """Who a sign-in method (``itsm_authenticate``) vouches for, and what its rules make
    of them in itsm.

    :param email: the verified e-mail address (the user's key in itsm).
    :param source: the method's name (``ldap``), kept as the user's ``auth_source``.
    :param name: display name; :param phone: telephone number ("" leaves them as they are).
    :param directory_groups: the groups the directory names (for diagnosis and rules).
    :param role: the itsm role its rules give, or None to keep the user's (``requester``
        for a new user).
    :param groups: the itsm resolver groups the user belongs to by its rules ...
    :param managed_groups: ... among these groups, which its rules manage: the user is
        added to ``groups`` and removed from the others of ``managed_groups``; membership
        of any other group (given by an admin) stays.
    :param agency: the agency code its rules give; "" takes the user out of any agency,
        None leaves it as it is.
    """

    email: str
    source: str
    name: str = ""
    phone: str = ""
    directory_groups: tuple[str, ...] = ()
    role: str | None = None
    groups: tuple[str, ...] = ()
    managed_groups: tuple[str, ...] = ()
    agency: str | None = None


@dataclass(frozen=True)
class SignInMethod:
    """A sign-in method the sign-in page offers besides the password form (a redirect to
    an identity provider): ``label`` on the button, ``url`` it leads to. With
    ``asks_email`` the page asks for the work e-mail address first and sends it to ``url``
    as ``?email=`` (a method with one provider per agency picks it by the domain)."""

    name: str
    label: str
    url: str
    asks_email: bool = False


def provision_user(session: Session, identity: Identity) -> User:
    """Create the user ``identity`` names on first sign-in, or bring them up to date:
    e-mail, name, phone, role, agency and the resolver groups the method manages.

    A new user has no local password. Unknown groups and agencies of the method's rules
    raise a ValidationError naming them (a configuration to fix, not a user to refuse
    silently). A user this method deactivated (a sync: they had left) is active again,
    as the method vouches for them now; a local user it takes over keeps its state.
    Caller commits.
    """
    email = identity.email.strip().lower()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = create_user(session, email, name=identity.name,
                           role=identity.role or "requester",
                           roles=[identity.role] if identity.role else None)
    else:
        if identity.role:
            user.role = identity.role
        if not user.active and user.auth_source == identity.source:
            user.active = True
    user.auth_source = identity.source
    if identity.name:
        user.name = identity.name[:200]
    if identity.phone:
        user.phone = identity.phone[:50]
    if identity.agency is not None:
        user.agency_id = agency_by_code(session, identity.agency).id if identity.agency \
            else None
    _set_managed_groups(session, user, identity)
    session.flush()
    return user


def _set_managed_groups(session: Session, user: User, identity: Identity) -> None:
    from itsm.core.models import Group

    names = set(identity.managed_groups) | set(identity.groups)
    if not names:
        return
    found = {g.name: g.id for g in session.scalars(select(Group).where(Group.name.in_(names)))}
    missing = sorted(set(identity.groups) - set(found))
    if missing:
        raise ValidationError(f"the {identity.source} rules name groups that do not exist: "
                              f"{', '.join(missing)}", fields={"groups": ["unknown group"]})
    wanted = {found[n] for n in identity.groups}
    managed = {found[n] for n in names if n in found}
    have = set(session.scalars(select(GroupMember.group_id)
                               .where(GroupMember.user_id == user.id)))
    for group_id in wanted - have:
        session.add(GroupMember(group_id=group_id, user_id=user.id))
    gone = (managed - wanted) & have
    if gone:
        session.execute(delete(GroupMember).where(GroupMember.user_id == user.id,
                                                  GroupMember.group_id.in_(gone)))


def deactivate_user(session: Session, user: User) -> bool:
    """Take a user's access away: inactive, every API token revoked, every web session
    ended. Returns whether the user was active. Caller commits."""
    was_active = user.active
    user.active = False
    session.execute(update(ApiToken)
                    .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow())
                    .execution_options(synchronize_session=False))
    end_sessions(session, user.id)
    return was_active


# Failed sign-ins allowed per e-mail and per client address within the window.
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_MAX_PER_EMAIL = 5
LOGIN_MAX_PER_ADDRESS = 20


def login_throttled(session: Session, email: str, remote_addr: str, *, taken: int = 0) -> bool:
    """True when too many sign-ins failed lately for this e-mail or this address (with
    ``taken`` of the counted rows being attempts still running, the caller's own).

    Kept in the database, so every server process of an install counts the same.
    """
    email, remote_addr = _attempt_keys(email, remote_addr)
    since = utcnow() - LOGIN_WINDOW
    by_email = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.email == email, LoginFailure.created_at >= since))
    by_addr = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.remote_addr == remote_addr, LoginFailure.created_at >= since))
    return (by_email - taken >= LOGIN_MAX_PER_EMAIL
            or by_addr - taken >= LOGIN_MAX_PER_ADDRESS)


def _attempt_keys(email: str, remote_addr: str) -> tuple[str, str]:
    return (email or "").strip().lower()[:254], (remote_addr or "")[:64]


def sign_in(session: Session, email: str, password: str, remote_addr: str, *,
            authenticate_with: Callable[..., Identity | None] | None = None,
            local_passwords: bool = True) -> User:
    """Check a sign-in against the sign-in methods, else the local password, and the
    limits per e-mail and per client address; raise TooManyAttempts or Unauthorized.

    ``authenticate_with(session=, email=, password=, client=)`` asks the sign-in methods
    (the ``itsm_authenticate`` hook): an :class:`Identity` signs the user in (made or
    brought up to date by :func:`provision_user`); None falls back to the local password
    (see :func:`authenticate` for ``local_passwords``). An inactive user is refused
    either way.

    The attempt is counted before its password is checked: its row is committed first,
    then the rows of the window are counted, this one included. Of any number of
    attempts at once, the k-th to commit sees at least k rows, so no more than the limit
    ever reach the password check (counting first and recording failures afterwards let
    40 parallel attempts check 19 passwords). A refused attempt takes its row back, so
    that hammering on a locked address does not keep it locked; a right password takes
    its row back, as only failures count. Commits; on success the caller commits what
    it adds (the web session), with the row's removal.
    """
    email_key, addr_key = _attempt_keys(email, remote_addr)
    attempt = LoginFailure(email=email_key, remote_addr=addr_key)
    session.add(attempt)
    session.flush()
    mine = delete(LoginFailure).where(LoginFailure.id == attempt.id)
    session.commit()
    if login_throttled(session, email_key, addr_key, taken=1):
        session.execute(mine)
        session.commit()
        raise TooManyAttempts("too many failed sign-ins; wait 15 minutes and try again")
    user = None
    identity = authenticate_with(session=session, email=email, password=password,
                                 client=addr_key) if authenticate_with else None
    if identity is not None:
        user = provision_user(session, identity)
        user = user if user.active else None
    else:
        user = authenticate(session, email, password, local_passwords=local_passwords)
    if user is None:
        session.rollback()
        raise Unauthorized("wrong e-mail or password")
    session.execute(mine)
    return user


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """The user's own change: the current password first. Ends every web session of
    the user (see :func:`set_password`)."""
    if not check_password(user.password_hash, current):
        raise ValidationError("the current password is wrong",
                              fields={"current_password": ["wrong password"]})
    set_password(session, user, new, field="new_password")


# -- web sessions ---------------------------------------------------------------------------

SESSION_IDLE = timedelta(minutes=480)  # the defaults of auth.session_idle_minutes
SESSION_MAX_AGE = timedelta(hours=24 * 7)  # and auth.session_max_hours
SESSION_TOUCH = timedelta(minutes=1)  # how often a session's last use is written


def start_session(session: Session, user: User, *, max_age: timedelta = SESSION_MAX_AGE) \
        -> str:
    """Open a web session for ``user``; return its secret (for the cookie). Clears the
    user's sessions that ended or grew too old. Caller commits."""
    now = utcnow()
    session.execute(delete(WebSession).where(
        WebSession.user_id == user.id,
        or_(WebSession.ended_at.is_not(None), WebSession.created_at <= now - max_age)))
    secret = secrets.token_urlsafe(32)
    session.add(WebSession(user_id=user.id, secret_hash=hash_token(secret), created_at=now,
                           last_seen_at=now))
    session.flush()
    return secret


def end_session(session: Session, secret: str) -> None:
    """Sign-out: the session of ``secret`` ends here, whoever holds a copy. Caller commits."""
    session.execute(update(WebSession)
                    .where(WebSession.secret_hash == hash_token(secret),
                           WebSession.ended_at.is_(None))
                    .values(ended_at=utcnow())
                    .execution_options(synchronize_session=False))


def end_sessions(session: Session, user_id: int) -> None:
    """End every web session of a user (a new password, a deactivation). Caller commits."""
    session.execute(update(WebSession)
                    .where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
                    .values(ended_at=utcnow())
                    .execution_options(synchronize_session=False))


def _session_actor() -> Select:
    web, user, member = WebSession.__table__, User.__table__, GroupMember.__table__
    return (select(web.c.id, web.c.created_at, web.c.last_seen_at, web.c.ended_at,
                   user.c.id.label("user_id"), user.c.email, user.c.role, user.c.name,
                   user.c.agency_id, user.c.active, user.c.time_zone, member.c.group_id)
            .join(user, user.c.id == web.c.user_id)
            .outerjoin(member, member.c.user_id == user.c.id)
            .where(web.c.secret_hash == bindparam("secret_hash")))


_SESSION_ACTOR = _session_actor()


def actor_for_session(session: Session, secret: str, *, idle: timedelta = SESSION_IDLE,
                      max_age: timedelta = SESSION_MAX_AGE) -> Actor | None:
    """The actor of the web session of ``secret``, or None when it is unknown, ended
    (signed out, password changed), unused for longer than ``idle``, older than
    ``max_age`` or its user is inactive.

    One query, as for tokens; the last use is written at most once a minute, and
    committed at once (see :func:`actor_for_token`).
    """
    if not secret:
        return None
    rows = session.execute(_SESSION_ACTOR, {"secret_hash": hash_token(secret)}).all()
    if not rows:
        return None
    found, now = rows[0], utcnow()
    if (found.ended_at is not None or not found.active or found.created_at + max_age <= now
            or found.last_seen_at + idle <= now):
        return None
    if now - found.last_seen_at > SESSION_TOUCH:
        session.execute(update(WebSession).where(WebSession.id == found.id)
                        .values(last_seen_at=now)
                        .execution_options(synchronize_session=False))
        session.commit()
    return Actor(id=found.user_id, email=found.email, role=found.role, name=found.name,
                 agency_id=found.agency_id,
                 group_ids=frozenset(r.group_id for r in rows if r.group_id is not None),
                 time_zone=found.time_zone or "")


GROUP_BOUND_ACTIONS = (".update", ".transition")


def default_permission_check(actor: Actor, permission: str, record, declared: dict) -> bool:
    """The core's rule.

    - admins may do everything;
    - otherwise the permission's declared roles grant it;
    - requesters stay inside their own agency (or their own records without an agency);
    - agents read every record, but change or move only records of their groups, records
      assigned to them, and records no group holds yet.
    """
    if actor.role == "admin":
        return True
    granted = declared.get(permission)
    if granted is None or actor.role not in granted.roles:
        return False
    if record is None:
        return True
    if actor.role == "requester":
        if actor.agency_id is not None:
            return record.agency_id == actor.agency_id
        return record.requester_id == actor.id
    if permission.endswith(GROUP_BOUND_ACTIONS):
        return (record.group_id is None or record.group_id in actor.group_ids
                or (actor.id is not None and record.assignee_id == actor.id))
    return True


def visibility_scope(actor: Actor):
    """The SQL condition matching what :func:`default_permission_check` lets a role read."""
    from itsm.core.models import Record

    if actor.role != "requester":
        return None
    if actor.agency_id is not None:
        return Record.agency_id == actor.agency_id
    return Record.requester_id == actor.id
