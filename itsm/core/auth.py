"""Users, roles, passwords, API tokens and the permission check of the service layer.

Passwords are hashed with Argon2id. API tokens are 256-bit random secrets stored as their
SHA-256: a token is unguessable, so a fast hash is enough and checking one costs
microseconds on every API request (a slow KDF there would cost tenths of a second).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session

from itsm.core.errors import ItsmError, NotFound, Unauthorized, ValidationError
from itsm.core.models import Agency, ApiToken, GroupMember, LoginFailure, User, utcnow

CORE_ROLES = ("admin", "agent", "requester")
TOKEN_PREFIX = "itsm_"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # hashing a megabyte on every sign-in attempt would be a lever for DoS


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

    @classmethod
    def system(cls) -> Actor:
        return cls(id=None, email="system", role="admin", name="itsm")

    @classmethod
    def of(cls, session: Session, user: User) -> Actor:
        groups = session.scalars(select(GroupMember.group_id)
                                 .where(GroupMember.user_id == user.id)).all()
        return cls(id=user.id, email=user.email, role=user.role, name=user.name,
                   agency_id=user.agency_id, group_ids=frozenset(groups))

    @property
    def is_system(self) -> bool:
        return self.id is None


def password_problem(password: str, email: str = "") -> tuple[str, str] | None:
    """Why ``password`` may not be used by the user ``email`` (a sentence and a short
    field message), or None when it may.

    The policy: at least :data:`MIN_PASSWORD` characters (at most :data:`MAX_PASSWORD`),
    and not the e-mail address nor its name part, which anyone who knows the user knows.
    """
    if len(password) < MIN_PASSWORD:
        return f"the password must have at least {MIN_PASSWORD} characters", "too short"
    if len(password) > MAX_PASSWORD:
        return f"the password may have at most {MAX_PASSWORD} characters", "too long"
    address = (email or "").strip().lower()
    guessable = {address, address.split("@")[0]} - {""}
    if password.strip().lower() in guessable:
        return ("the password may not be the e-mail address or its name part",
                "the e-mail address")
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


def create_token(session: Session, user: User, *, name: str = "", days: int | None = 90) \
        -> tuple[ApiToken, str]:
    """Create an API token; return the row and the secret (shown only this once)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=hash_token(secret),
                     prefix=secret[:12],
                     expires_at=utcnow() + timedelta(days=days) if days else None)
    session.add(token)
    session.flush()
    return token, secret


def _token_actor() -> Select:
    token, user, member = ApiToken.__table__, User.__table__, GroupMember.__table__
    return (select(token.c.id, token.c.revoked_at, token.c.expires_at, token.c.last_used_at,
                   user.c.id.label("user_id"), user.c.email, user.c.role, user.c.name,
                   user.c.agency_id, user.c.active, member.c.group_id)
            .join(user, user.c.id == token.c.user_id)
            .outerjoin(member, member.c.user_id == user.c.id)
            .where(token.c.token_hash == bindparam("token_hash")))


# Built once: every API request runs it, and building it cost more than running it.
_TOKEN_ACTOR = _token_actor()


def actor_for_token(session: Session, secret: str) -> Actor | None:
    """The actor of the active user owning ``secret``, or None if the token is unknown,
    revoked or expired.

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
    if found.revoked_at or (found.expires_at and found.expires_at <= now) or not found.active:
        return None
    if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
        session.execute(update(ApiToken).where(ApiToken.id == found.id)
                        .values(last_used_at=now)
                        .execution_options(synchronize_session=False))
        session.commit()
    return Actor(id=found.user_id, email=found.email, role=found.role, name=found.name,
                 agency_id=found.agency_id,
                 group_ids=frozenset(r.group_id for r in rows if r.group_id is not None))


def revoke_token(session: Session, token_id: int, owner: User | None = None) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or (owner is not None and token.user_id != owner.id):
        raise NotFound(f"no API token {token_id}")
    token.revoked_at = token.revoked_at or utcnow()
    return token


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None or not user.active or not check_password(user.password_hash, password):
        return None
    return user


# Failed sign-ins allowed per e-mail and per client address within the window.
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_MAX_PER_EMAIL = 5
LOGIN_MAX_PER_ADDRESS = 20


def login_throttled(session: Session, email: str, remote_addr: str) -> bool:
    """True when too many sign-ins failed lately for this e-mail or this address.

    Kept in the database, so every server process of an install counts the same.
    """
    since = utcnow() - LOGIN_WINDOW
    by_email = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.email == (email or "").strip().lower(), LoginFailure.created_at >= since))
    by_addr = session.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.remote_addr == remote_addr, LoginFailure.created_at >= since))
    return by_email >= LOGIN_MAX_PER_EMAIL or by_addr >= LOGIN_MAX_PER_ADDRESS


def sign_in(session: Session, email: str, password: str, remote_addr: str) -> User:
    """Check a sign-in; record a failure, and refuse while throttled. Caller commits."""
    if login_throttled(session, email, remote_addr):
        raise TooManyAttempts("too many failed sign-ins; wait 15 minutes and try again")
    user = authenticate(session, email, password)
    if user is None:
        session.add(LoginFailure(email=(email or "").strip().lower()[:254],
                                 remote_addr=(remote_addr or "")[:64]))
        raise Unauthorized("wrong e-mail or password")
    return user


def change_password(session: Session, user: User, current: str, new: str) -> None:
    if not check_password(user.password_hash, current):
        raise ValidationError("the current password is wrong",
                              fields={"current_password": ["wrong password"]})
    check_password_policy(new, user.email, field="new_password")
    user.password_hash = hash_password(new)


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
