"""Users, agencies and resolver groups: the one implementation the CLI, the admin pages
and the groups API all call.

Each function takes the caller's :class:`~itsm.core.records.RecordService` (from
``itsm.unit_of_work(actor)``, which commits), checks the permission through it, refuses
bad input with a :class:`~itsm.core.errors.ValidationError` naming the field, and writes
an admin audit entry (who, what, before and after) for every change. Users are never
deleted: a deactivated user's records keep their name.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from itsm.core import auth
from itsm.core.admin.kit import record_admin_audit
from itsm.core.errors import NotFound, ValidationError
from itsm.core.models import Agency, ApiToken, Group, GroupMember, User, utcnow
from itsm.core.records import RecordService

USERS = "admin.users"  # manage users, roles and tokens
GROUPS = "admin.groups"  # manage agencies, groups and memberships
READ_GROUPS = "groups.read"  # staff read groups and their members
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
LIST_LIMIT = 500


def roles(service: RecordService) -> list[str]:
    """Every role a user may have: the core's and those the plugins' permissions name."""
    return auth.known_roles(list(service.itsm.permissions.values()))


def _text(value: Any, field: str, limit: int, *, required: bool = False) -> str:
    text = str(value if value is not None else "").strip()
    if required and not text:
        raise ValidationError(f"{field.replace('_', ' ')} is required",
                              fields={field: ["required"]})
    if len(text) > limit:
        raise ValidationError(f"{field.replace('_', ' ')} may have at most {limit} characters",
                              fields={field: [f"at most {limit} characters"]})
    return text


# -- users ---------------------------------------------------------------------------------


def user(service: RecordService, key: str | int) -> User:
    """The user with id or e-mail ``key``."""
    session = service.session
    found = session.get(User, key) if isinstance(key, int) else \
        session.scalar(select(User).where(User.email == str(key).strip().lower()))
    if found is None:
        raise NotFound(f"no user {key!r}", fields={"email": ["unknown user"]})
    return found


def user_dict(service: RecordService, found: User) -> dict[str, Any]:
    session = service.session
    agency = session.get(Agency, found.agency_id) if found.agency_id else None
    groups = session.scalars(select(Group.name).join(GroupMember)
                             .where(GroupMember.user_id == found.id)
                             .order_by(Group.name)).all()
    tokens = session.scalar(select(func.count()).select_from(ApiToken).where(
        ApiToken.user_id == found.id, ApiToken.revoked_at.is_(None))) or 0
    return {"id": found.id, "email": found.email, "name": found.name, "role": found.role,
            "agency": agency.code if agency else None,
            "agency_name": agency.name if agency else None, "groups": list(groups),
            "active": found.active, "auth_source": found.auth_source,
            "created_at": found.created_at, "active_tokens": tokens}


def list_users(service: RecordService, *, text: str = "", role: str = "", agency: str = "",
               group: str = "", active: bool | None = None,
               limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """Users matching every filter given (``text`` in the e-mail or name), by e-mail."""
    service.require(USERS)
    query = (select(User, Agency.code).outerjoin(Agency, User.agency_id == Agency.id)
             .order_by(User.email).limit(limit))
    if text.strip():
        like = f"%{text.strip().lower()[:100]}%"
        query = query.where(or_(func.lower(User.email).like(like),
                                func.lower(User.name).like(like)))
    if role:
        query = query.where(User.role == role)
    if agency:
        query = query.where(Agency.code == agency)
    if group:
        query = query.where(User.id.in_(select(GroupMember.user_id).join(Group)
                                        .where(Group.name == group)))
    if active is not None:
        query = query.where(User.active.is_(active))
    rows = service.session.execute(query).all()
    names = _group_names(service, [u.id for u, _ in rows])
    return [{"id": u.id, "email": u.email, "name": u.name, "role": u.role, "agency": code,
             "groups": names.get(u.id, []), "active": u.active} for u, code in rows]


def _group_names(service: RecordService, user_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if not user_ids:
        return out
    for user_id, name in service.session.execute(
            select(GroupMember.user_id, Group.name).join(Group)
            .where(GroupMember.user_id.in_(user_ids)).order_by(Group.name)):
        out.setdefault(user_id, []).append(name)
    return out


def add_user(service: RecordService, email: str, *, name: str = "", role: str = "requester",
             agency: str | None = None, groups: list[str] | tuple[str, ...] = (),
             password: str | None = None) -> User:
    """Add a user with a role, an agency and resolver groups."""
    service.require(USERS)
    session = service.session
    name = _text(name, "name", 200)
    found = [_group(service, g, field="groups") for g in dict.fromkeys(groups) if g]
    created = auth.create_user(session, email, password=password or None, role=role,
                               name=name, agency=agency or None, roles=roles(service))
    for group in found:
        session.add(GroupMember(group_id=group.id, user_id=created.id))
    session.flush()
    after = user_dict(service, created)
    record_admin_audit(session, service.actor, "user.create", f"user {created.email}", None,
                       {k: after[k] for k in ("email", "name", "role", "agency", "groups")})
    return created


def set_role(service: RecordService, email: str, role: str) -> User:
    """Change a user's role."""
    service.require(USERS)
    allowed = roles(service)
    if role not in allowed:
        raise ValidationError(f"unknown role {role!r} (roles: {', '.join(allowed)})",
                              fields={"role": ["unknown role"]})
    found = user(service, email)
    before, found.role = found.role, role
    record_admin_audit(service.session, service.actor, "user.role", f"user {found.email}",
                       {"role": before}, {"role": role})
    return found


def update_user(service: RecordService, email: str, *, name: str | None = None,
                agency: str | None = None, groups: list[str] | None = None) -> User:
    """Change a user's display name, agency ("" for none) or groups (the full list)."""
    service.require(USERS)
    session = service.session
    found = user(service, email)
    before = user_dict(service, found)
    if name is not None:
        found.name = _text(name, "name", 200) or found.email.split("@")[0]
    if agency is not None:
        found.agency_id = auth.agency_by_code(session, agency).id if agency else None
    if groups is not None:
        wanted = {_group(service, g, field="groups").id for g in groups if g}
        have = set(session.scalars(select(GroupMember.group_id)
                                   .where(GroupMember.user_id == found.id)))
        for group_id in wanted - have:
            session.add(GroupMember(group_id=group_id, user_id=found.id))
        if have - wanted:
            session.execute(delete(GroupMember).where(GroupMember.user_id == found.id,
                                                      GroupMember.group_id.in_(have - wanted)))
    session.flush()
    after = user_dict(service, found)
    keys = ("name", "agency", "groups")
    record_admin_audit(session, service.actor, "user.update", f"user {found.email}",
                       {k: before[k] for k in keys}, {k: after[k] for k in keys})
    return found


def set_active(service: RecordService, email: str, active: bool) -> User:
    """Deactivate a user (every token revoked, every web session ended; the user stays,
    so their records keep their name) or reactivate one."""
    service.require(USERS)
    found = user(service, email)
    if not active and service.actor.id == found.id:
        raise ValidationError("you cannot deactivate yourself",
                              fields={"email": ["your own account"]})
    before = found.active
    if active:
        found.active = True
    else:
        auth.deactivate_user(service.session, found)
    record_admin_audit(service.session, service.actor,
                       "user.reactivate" if active else "user.deactivate",
                       f"user {found.email}", {"active": before}, {"active": active})
    return found


def revoke_tokens(service: RecordService, email: str) -> int:
    """Revoke every API token of a user; return how many were still valid."""
    service.require(USERS)
    found = user(service, email)
    count = service.session.execute(
        update(ApiToken).where(ApiToken.user_id == found.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    record_admin_audit(service.session, service.actor, "user.revoke_tokens",
                       f"user {found.email}", None, {"revoked": count})
    return count


def revoke_token(service: RecordService, token_id: int) -> ApiToken:
    """Revoke one API token by its id."""
    service.require(USERS)
    token = auth.revoke_token(service.session, token_id)
    owner = service.session.get(User, token.user_id)
    record_admin_audit(service.session, service.actor, "token.revoke",
                       f"token {token_id} of {owner.email if owner else '?'}", None,
                       {"token": token.prefix})
    return token


def set_password(service: RecordService, email: str, password: str) -> User:
    """Set a user's password (ends their web sessions); the audit never holds it."""
    service.require(USERS)
    found = user(service, email)
    auth.set_password(service.session, found, password)
    record_admin_audit(service.session, service.actor, "user.password", f"user {found.email}",
                       None, None)
    return found


# -- agencies --------------------------------------------------------------------------------


def agency_dict(agency: Agency, users: int = 0) -> dict[str, Any]:
    return {"id": agency.id, "code": agency.code, "name": agency.name,
            "contacts": agency.contacts, "active": agency.active, "users": users}


def list_agencies(service: RecordService) -> list[dict[str, Any]]:
    service.require(GROUPS)
    counts = dict(service.session.execute(select(User.agency_id, func.count())
                                          .where(User.agency_id.is_not(None))
                                          .group_by(User.agency_id)).all())
    return [agency_dict(a, counts.get(a.id, 0)) for a in
            service.session.scalars(select(Agency).order_by(Agency.code))]


def check_code(code: str) -> str:
    code = str(code or "").strip().upper()
    if not _CODE.match(code):
        raise ValidationError(f"agency code {code!r}: use up to 32 letters, digits, - or _",
                              fields={"code": ["up to 32 letters, digits, - or _"]})
    return code


def add_agency(service: RecordService, code: str, name: str, contacts: str = "") -> Agency:
    service.require(GROUPS)
    code = check_code(code)
    name = _text(name, "name", 200, required=True)
    contacts = _text(contacts, "contacts", 2000)
    if service.session.scalar(select(Agency.id).where(Agency.code == code)):
        raise ValidationError(f"agency {code} exists already",
                              fields={"code": ["already exists"]})
    agency = Agency(code=code, name=name, contacts=contacts, active=True)
    service.session.add(agency)
    service.session.flush()
    record_admin_audit(service.session, service.actor, "agency.create", f"agency {code}", None,
                       {"name": name, "contacts": contacts})
    return agency


def update_agency(service: RecordService, code: str, *, name: str | None = None,
                  contacts: str | None = None, active: bool | None = None) -> Agency:
    service.require(GROUPS)
    agency = auth.agency_by_code(service.session, str(code).strip().upper())
    before = agency_dict(agency)
    if name is not None:
        agency.name = _text(name, "name", 200, required=True)
    if contacts is not None:
        agency.contacts = _text(contacts, "contacts", 2000)
    if active is not None:
        agency.active = bool(active)
    after = agency_dict(agency)
    keys = ("name", "contacts", "active")
    record_admin_audit(service.session, service.actor, "agency.update", f"agency {agency.code}",
                       {k: before[k] for k in keys}, {k: after[k] for k in keys})
    return agency


# -- groups ----------------------------------------------------------------------------------


def _group(service: RecordService, key: str | int, field: str = "group") -> Group:
    session = service.session
    text = str(key).strip()
    found = None
    if isinstance(key, int) or (text.isascii() and text.isdigit() and len(text) < 10):
        found = session.get(Group, int(text))
    if found is None:
        found = session.scalar(select(Group).where(Group.name == text[:100]))
    if found is None:
        raise NotFound(f"no group {text[:100]!r}", fields={field: ["unknown group"]})
    return found


def group(service: RecordService, key: str | int) -> Group:
    """The group with id or name ``key`` (staff may read groups)."""
    service.require(READ_GROUPS)
    return _group(service, key)


def group_dict(service: RecordService, found: Group, *, members: bool = True) -> dict[str, Any]:
    manager = service.session.get(User, found.manager_id) if found.manager_id else None
    out = {"id": found.id, "name": found.name, "description": found.description,
           "email": found.email, "manager": manager.email if manager else None,
           "manager_name": manager.name if manager else None}
    if members:
        out["members"] = member_rows(service, found)
    return out


def member_rows(service: RecordService, found: Group) -> list[dict[str, Any]]:
    return [{"id": u.id, "email": u.email, "name": u.name, "active": u.active}
            for u in service.session.scalars(
                select(User).join(GroupMember, GroupMember.user_id == User.id)
                .where(GroupMember.group_id == found.id).order_by(User.email))]


def list_groups(service: RecordService) -> list[dict[str, Any]]:
    """Every group with its member count."""
    service.require(READ_GROUPS)
    counts = dict(service.session.execute(select(GroupMember.group_id, func.count())
                                          .group_by(GroupMember.group_id)).all())
    return [{**group_dict(service, g, members=False), "member_count": counts.get(g.id, 0)}
            for g in service.session.scalars(select(Group).order_by(Group.name))]


def _manager(service: RecordService, email: str | None) -> int | None:
    if not email:
        return None
    try:
        return user(service, email).id
    except NotFound:
        raise NotFound(f"no user {email!r}", fields={"manager": ["unknown user"]}) from None


def _email(value: str | None) -> str:
    text = _text(value, "email", 254).lower()
    if text and not auth._EMAIL.match(text):
        raise ValidationError(f"{text!r} is not an e-mail address",
                              fields={"email": ["not an e-mail address"]})
    return text


def add_group(service: RecordService, name: str, *, description: str = "", email: str = "",
              manager: str | None = None) -> Group:
    service.require(GROUPS)
    name = _text(name, "name", 100, required=True)
    if service.session.scalar(select(Group.id).where(Group.name == name)):
        raise ValidationError(f"group {name!r} exists already",
                              fields={"name": ["already exists"]})
    if name.isascii() and name.isdigit():
        raise ValidationError("a group's name may not be only digits (ids are)",
                              fields={"name": ["only digits"]})
    found = Group(name=name, description=_text(description, "description", 2000),
                  email=_email(email), manager_id=_manager(service, manager))
    service.session.add(found)
    service.session.flush()
    after = group_dict(service, found, members=False)
    record_admin_audit(service.session, service.actor, "group.create", f"group {name}", None,
                       {k: after[k] for k in ("name", "description", "email", "manager")})
    return found


def update_group(service: RecordService, key: str | int, *, name: str | None = None,
                 description: str | None = None, email: str | None = None,
                 manager: str | None = None, clear_manager: bool = False) -> Group:
    service.require(GROUPS)
    found = _group(service, key)
    before = group_dict(service, found, members=False)
    if name is not None and name.strip() != found.name:
        name = _text(name, "name", 100, required=True)
        if service.session.scalar(select(Group.id).where(Group.name == name)):
            raise ValidationError(f"group {name!r} exists already",
                                  fields={"name": ["already exists"]})
        if name.isascii() and name.isdigit():
            raise ValidationError("a group's name may not be only digits (ids are)",
                                  fields={"name": ["only digits"]})
        found.name = name
    if description is not None:
        found.description = _text(description, "description", 2000)
    if email is not None:
        found.email = _email(email)
    if clear_manager:
        found.manager_id = None
    elif manager:
        found.manager_id = _manager(service, manager)
    service.session.flush()
    after = group_dict(service, found, members=False)
    keys = ("name", "description", "email", "manager")
    record_admin_audit(service.session, service.actor, "group.update", f"group {found.name}",
                       {k: before[k] for k in keys}, {k: after[k] for k in keys})
    return found


def members(service: RecordService, key: str | int) -> list[dict[str, Any]]:
    """A group's members (staff may read them)."""
    return member_rows(service, group(service, key))


def add_member(service: RecordService, key: str | int, email: str) -> bool:
    """Put a user in a group; False when they were in it already."""
    service.require(GROUPS)
    found = _group(service, key)
    person = user(service, email)
    if service.session.get(GroupMember, (found.id, person.id)) is not None:
        return False
    service.session.add(GroupMember(group_id=found.id, user_id=person.id))
    service.session.flush()
    record_admin_audit(service.session, service.actor, "group.add_member",
                       f"group {found.name}", None, {"member": person.email})
    return True


def remove_member(service: RecordService, key: str | int, email: str) -> None:
    """Take a user out of a group (their pending approvals stay until decided)."""
    service.require(GROUPS)
    found = _group(service, key)
    person = user(service, email)
    row = service.session.get(GroupMember, (found.id, person.id))
    if row is None:
        raise NotFound(f"{person.email} is not a member of {found.name!r}",
                       fields={"email": ["not a member"]})
    service.session.delete(row)
    service.session.flush()
    record_admin_audit(service.session, service.actor, "group.remove_member",
                       f"group {found.name}", {"member": person.email}, None)
