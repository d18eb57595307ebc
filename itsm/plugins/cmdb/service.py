"""The cmdb's operations, shared by the API, the pages and the command line: CI types,
configuration items, relations and their history, with the permission check and the
agency scoping of the actor's record service.

Every change writes a :class:`~itsm.plugins.cmdb.models.CiHistory` row in the same
transaction: what changed, and the whole CI after it, so "as on date D" reads one row;
and an outbox event (``cmdb.ci.created``, ``cmdb.ci.updated``, ``cmdb.ci.lifecycle_changed``,
``cmdb.ci.retired``, ``cmdb.ci.merged``, ``cmdb.relation.added``, ``cmdb.relation.removed``),
which webhooks subscribed to ``cmdb.*`` receive once the change committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import marshmallow
from marshmallow import Schema, validate
from marshmallow import fields as mf
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Agency,
    Event,
    Group,
    NotFound,
    RecordService,
    StaleRecord,
    User,
    ValidationError,
    check_text,
    messages_of,
    record_admin_audit,
    utcnow,
)
from itsm.plugins.cmdb.models import (
    LIFECYCLE,
    RELATION_KINDS,
    CiAgency,
    CiHistory,
    CiType,
    ConfigItem,
)
from itsm.plugins.cmdb.types import DEFAULT_TYPES, AttributeDefinition, load_attributes

READ, WRITE, ADMIN = "cmdb.read", "cmdb.write", "cmdb.admin"
#: The outbox events of CI changes, by the history's action.
EVENTS = {"created": "cmdb.ci.created", "updated": "cmdb.ci.updated",
          "lifecycle": "cmdb.ci.lifecycle_changed", "retired": "cmdb.ci.retired",
          "merged": "cmdb.ci.merged", "related": "cmdb.relation.added",
          "unrelated": "cmdb.relation.removed"}
RELATION_ACTIONS = ("related", "unrelated")
SNAPSHOT_FIELDS = ("type_key", "name", "lifecycle", "owner_id", "support_group_id",
                   "location", "agency_id", "attributes", "service_id", "external_key")


# -- input schemas -------------------------------------------------------------------------


class CiIn(Schema):
    """A configuration item as people and imports send it (names, not ids)."""

    name = mf.String(required=True, validate=validate.Length(min=1, max=200))
    type = mf.String(required=True, validate=validate.Length(min=1, max=64))
    lifecycle = mf.String(load_default="in_use", validate=validate.OneOf(list(LIFECYCLE)))
    owner = mf.String(load_default=None, allow_none=True, validate=validate.Length(max=254),
                      metadata={"description": "e-mail address of the owner"})
    support_group = mf.String(load_default=None, allow_none=True,
                              validate=validate.Length(max=100))
    location = mf.String(load_default="", validate=validate.Length(max=200))
    agency = mf.String(load_default=None, allow_none=True, validate=validate.Length(max=32),
                       metadata={"description": "code of the agency the CI belongs to"})
    used_by = mf.List(mf.String(validate=validate.Length(min=1, max=32)), load_default=list,
                      validate=validate.Length(max=200),
                      metadata={"description": "codes of the agencies that use it"})
    attributes = mf.Dict(keys=mf.String(validate=validate.Length(max=64)), load_default=dict)
    external_key = mf.String(load_default=None, allow_none=True,
                             validate=validate.Length(min=1, max=200))
    service = mf.String(load_default=None, allow_none=True, validate=validate.Length(max=200),
                        metadata={"description": "business services: the catalog service "
                                                 "(id or name) this CI is"})


class CiTypeIn(Schema):
    """A CI type an admin defines."""

    key = mf.String(required=True, validate=[validate.Length(min=1, max=64), validate.Regexp(
        r"^[a-z][a-z0-9_]*$", error="lower-case letters, digits and _")])
    label = mf.String(required=True, validate=validate.Length(min=1, max=100))
    is_service = mf.Boolean(load_default=False)
    attributes = mf.List(mf.Nested(AttributeDefinition), load_default=list,
                         validate=validate.Length(max=100))


class CiRelationIn(Schema):
    """``source <kind> target``: the CI the call is made on is the source."""

    kind = mf.String(required=True, validate=validate.OneOf(list(RELATION_KINDS)))
    target = mf.Integer(required=True, strict=False, validate=validate.Range(1, 2**31 - 1),
                        metadata={"description": "id of the other CI"})


def load(schema: Schema, data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Validate ``data`` with ``schema``; 422 with field messages otherwise."""
    if not isinstance(data, dict):
        raise ValidationError("expected a JSON object", fields={"_schema": ["not an object"]})
    try:
        return schema.load(data, partial=partial)
    except marshmallow.ValidationError as exc:
        raise ValidationError("invalid configuration item data",
                              fields=messages_of(exc)) from None


# -- types ---------------------------------------------------------------------------------


def ensure_default_types(session: Session) -> None:
    """Create the default CI types an install lacks (an admin's edits are kept)."""
    have = set(session.scalars(select(CiType.key)))
    for spec in DEFAULT_TYPES:
        if spec["key"] not in have:
            session.add(CiType(key=spec["key"], label=spec["label"], builtin=True,
                               is_service=spec.get("is_service", False),
                               attributes=spec["attributes"]))
    session.flush()


def all_types(session: Session) -> dict[str, CiType]:
    """Every CI type by key (the defaults are created on first use)."""
    found = {t.key: t for t in session.scalars(select(CiType).order_by(CiType.label))}
    if not found:
        ensure_default_types(session)
        found = {t.key: t for t in session.scalars(select(CiType).order_by(CiType.label))}
    return found


def service_type_keys(session: Session) -> list[str]:
    return [t.key for t in all_types(session).values() if t.is_service]


def define_type(service: RecordService, data: Any) -> CiType:
    """Add a CI type, or change the label and attributes of one."""
    service.require(ADMIN)
    values = load(CiTypeIn(), data)
    names = [a["name"] for a in values["attributes"]]
    if len(names) != len(set(names)):
        raise ValidationError("an attribute is defined twice",
                              fields={"attributes": ["names must be unique"]})
    for a in values["attributes"]:
        if a["type"] == "choice" and not a["choices"]:
            raise ValidationError("a choice attribute needs choices",
                                  fields={"attributes": [f"{a['name']}: give its choices"]})
    session = service.session
    all_types(session)
    ci_type = session.scalar(select(CiType).where(CiType.key == values["key"]))
    before = None
    if ci_type is None:
        ci_type = CiType(key=values["key"], builtin=False)
        session.add(ci_type)
    else:
        before = type_dict(ci_type)
    ci_type.label = values["label"]
    ci_type.is_service = values["is_service"]
    ci_type.attributes = [{k: v for k, v in a.items() if k != "choices" or v}
                          for a in values["attributes"]]
    session.flush()
    after = type_dict(ci_type)
    if before != after:  # the admin audit says who defined what, from any entry point
        record_admin_audit(session, service.actor, "cmdb.type.save",
                           f"CI type {ci_type.key}", before, after)
    return ci_type


def type_dict(ci_type: CiType) -> dict[str, Any]:
    return {"key": ci_type.key, "label": ci_type.label, "is_service": ci_type.is_service,
            "builtin": ci_type.builtin, "attributes": list(ci_type.attributes)}


# -- scoping and reading -------------------------------------------------------------------


def scope(service: RecordService):
    """The SQL condition of the CIs the actor may see, or None for all: a requester sees
    the CIs of their agency and those their agency uses, nothing else."""
    actor = service.actor
    if actor.role != "requester":
        return None
    if actor.agency_id is None:
        return ConfigItem.id.is_(None)  # matches nothing: no agency, no CIs
    return or_(ConfigItem.agency_id == actor.agency_id,
               exists().where(and_(CiAgency.ci_id == ConfigItem.id,
                                   CiAgency.agency_id == actor.agency_id)))


def visible_ids(service: RecordService, ids: list[int]) -> set[int]:
    """Which of ``ids`` the actor may see (one query per 5,000)."""
    condition = scope(service)
    if condition is None:
        return set(ids)
    out: set[int] = set()
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        out.update(service.session.scalars(select(ConfigItem.id).where(
            ConfigItem.id.in_(chunk), condition)))
    return out


def get_ci(service: RecordService, ci_id: int | str) -> ConfigItem:
    """The CI ``ci_id`` if the actor may read it; 404 otherwise (as if it did not exist)."""
    service.require(READ)
    try:
        number = int(str(ci_id).lstrip("#"))
    except ValueError:
        number = -1
    query = select(ConfigItem).where(ConfigItem.id == number)
    condition = scope(service)
    if condition is not None:
        query = query.where(condition)
    ci = service.session.scalar(query) if 0 < number < 2**31 else None
    if ci is None:
        raise NotFound(f"configuration item {str(ci_id)[:40]} not found")
    return ci


def find_ci(service: RecordService, value: str) -> ConfigItem:
    """A CI by id (``12`` or ``#12``), external key or exact name (CLI and imports)."""
    text = value.strip()
    if text.lstrip("#").isdigit() and text.lstrip("#").isascii():
        return get_ci(service, text)
    service.require(READ)
    condition = scope(service)
    for column in (ConfigItem.external_key, ConfigItem.name):
        query = select(ConfigItem).where(column == text).order_by(ConfigItem.id).limit(1)
        if condition is not None:
            query = query.where(condition)
        ci = service.session.scalar(query)
        if ci is not None:
            return ci
    raise NotFound(f"no configuration item {text[:60]!r}: give its id, key or name")


def list_cis(service: RecordService, *, text: str = "", type_key: str | None = None,
             lifecycle: str | None = None, after: int = 0, limit: int = 50) \
        -> tuple[list[ConfigItem], int | None, int]:
    """A page of CIs by id, the cursor of the next page, and the total."""
    service.require(READ)
    conditions = []
    condition = scope(service)
    if condition is not None:
        conditions.append(condition)
    if text:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(or_(ConfigItem.name.ilike(like, escape="\\"),
                              ConfigItem.external_key.ilike(like, escape="\\")))
    if type_key:
        conditions.append(ConfigItem.type_key == type_key)
    if lifecycle:
        conditions.append(ConfigItem.lifecycle == lifecycle)
    total = service.session.scalar(select(func.count(ConfigItem.id)).where(*conditions))
    rows = list(service.session.scalars(select(ConfigItem).where(
        ConfigItem.id > after, *conditions).order_by(ConfigItem.id).limit(limit + 1)))
    cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], cursor, total or 0


def used_by(session: Session, ci_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for start in range(0, len(ci_ids), 5000):
        for ci_id, agency_id in session.execute(select(CiAgency.ci_id, CiAgency.agency_id)
                                                .where(CiAgency.ci_id.in_(ci_ids[start:start
                                                                                  + 5000]))):
            out.setdefault(ci_id, []).append(agency_id)
    return {k: sorted(v) for k, v in out.items()}


def snapshot(ci: ConfigItem, agencies: list[int]) -> dict[str, Any]:
    """The CI's fields as history keeps them (ids, which the pages turn into names)."""
    out = {name: getattr(ci, name) for name in SNAPSHOT_FIELDS}
    out["attributes"] = dict(ci.attributes or {})
    out["used_by"] = sorted(agencies)
    return out


class Names:
    """Turns ids into the names people read, one query per kind per page."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.agencies = {a.id: (a.code, a.name) for a in session.scalars(select(Agency))}
        self.groups = dict(session.execute(select(Group.id, Group.name)).all())
        self._users: dict[int, tuple[str, str]] = {}
        self.types = all_types(session)

    def user(self, user_id: int | None) -> tuple[str, str] | None:
        if user_id is None:
            return None
        if user_id not in self._users:
            row = self.session.execute(select(User.email, User.name)
                                       .where(User.id == user_id)).first()
            self._users[user_id] = (row[0], row[1] or row[0]) if row else ("", "(removed)")
        return self._users[user_id]

    def agency(self, agency_id: int | None) -> dict[str, str] | None:
        found = self.agencies.get(agency_id) if agency_id is not None else None
        return {"code": found[0], "name": found[1]} if found else None

    def type_label(self, key: str) -> str:
        found = self.types.get(key)
        return found.label if found else key.replace("_", " ").capitalize()


def ci_dict(names: Names, values: dict[str, Any], ci_id: int) -> dict[str, Any]:
    """A CI (current or as of a date, from :func:`snapshot`) for the API and pages."""
    owner = names.user(values.get("owner_id"))
    return {
        "id": ci_id, "external_key": values.get("external_key"), "name": values["name"],
        "type": values["type_key"], "type_label": names.type_label(values["type_key"]),
        "lifecycle": values["lifecycle"],
        "lifecycle_label": LIFECYCLE.get(values["lifecycle"], values["lifecycle"]),
        "owner": owner[0] if owner else None, "owner_name": owner[1] if owner else None,
        "support_group": names.groups.get(values.get("support_group_id")),
        "location": values.get("location", ""),
        "agency": names.agency(values.get("agency_id")),
        "used_by": [a for a in (names.agency(x) for x in values.get("used_by", [])) if a],
        "attributes": values.get("attributes") or {}, "service_id": values.get("service_id"),
    }


def current_dict(service: RecordService, ci: ConfigItem, names: Names | None = None) \
        -> dict[str, Any]:
    names = names or Names(service.session)
    out = ci_dict(names, snapshot(ci, used_by(service.session, [ci.id]).get(ci.id, [])), ci.id)
    out.update(version=ci.version, source=ci.source, merged_into=ci.merged_into_id,
               created_at=ci.created_at.isoformat(), updated_at=ci.updated_at.isoformat())
    return out


# -- writing -------------------------------------------------------------------------------


class Resolver:
    """Names in input (agency codes, e-mails, group names) to ids, cached for imports."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.agencies = {code: id_ for id_, code in session.execute(
            select(Agency.id, Agency.code))}
        self.groups = {name: id_ for id_, name in session.execute(
            select(Group.id, Group.name))}
        self.users: dict[str, int | None] = {}
        self.types = all_types(session)

    def user(self, email: str) -> int | None:
        key = email.strip().lower()
        if key not in self.users:
            self.users[key] = self.session.scalar(select(User.id).where(
                func.lower(User.email) == key))
        return self.users[key]

    def values(self, data: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        """Loaded :class:`CiIn` data to column values and used-by agency ids."""
        problems: dict[str, list[str]] = {}
        ci_type = self.types.get(data["type"])
        if ci_type is None:
            problems["type"] = [f"unknown CI type; one of {', '.join(sorted(self.types))}"]
        out: dict[str, Any] = {"type_key": data["type"],
                               "name": check_text(data["name"].strip(), "name"),
                               "lifecycle": data["lifecycle"],
                               "location": check_text(data["location"].strip(), "location"),
                               "external_key": check_text(data["external_key"].strip(),
                                                          "external_key")
                               if data.get("external_key") else None,
                               "owner_id": None, "support_group_id": None, "agency_id": None}
        if not out["name"]:
            problems["name"] = ["give a name"]
        if data.get("owner"):
            out["owner_id"] = self.user(data["owner"])
            if out["owner_id"] is None:
                problems["owner"] = [f"no user {data['owner']!r}"]
        if data.get("support_group"):
            out["support_group_id"] = self.groups.get(data["support_group"])
            if out["support_group_id"] is None:
                problems["support_group"] = [f"no group {data['support_group']!r}"]
        if data.get("agency"):
            out["agency_id"] = self.agencies.get(data["agency"])
            if out["agency_id"] is None:
                problems["agency"] = [f"no agency {data['agency']!r}"]
        agencies = []
        for code in data.get("used_by") or []:
            if code not in self.agencies:
                problems.setdefault("used_by", []).append(f"no agency {code!r}")
            else:
                agencies.append(self.agencies[code])
        if ci_type is not None:
            try:
                loaded = load_attributes(ci_type.attributes, data.get("attributes") or {})
                out["attributes"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                                     for k, v in loaded.items() if v is not None}
            except marshmallow.ValidationError as exc:
                problems["attributes"] = [messages_of(exc)]
        if problems:
            raise ValidationError("invalid configuration item data", fields=problems)
        return out, sorted(set(agencies))


def _journal(session: Session, service: RecordService, ci: ConfigItem, action: str,
             changes: dict[str, Any], agencies: list[int], note: str = "",
             at: datetime | None = None) -> None:
    whole = {} if action in RELATION_ACTIONS else snapshot(ci, agencies)
    session.add(CiHistory(ci_id=ci.id, at=at or utcnow(), actor_id=service.actor.id,
                          actor=service.actor.email, action=action, changes=changes,
                          snapshot=whole, note=note))


def announce_change(service: RecordService, ci: ConfigItem, action: str,
                    changes: dict[str, Any] | None = None, **data: Any) -> Event:
    """Write the outbox event of a CI change in the change's own transaction; delivered
    (webhooks, plugins' channels) only once it committed."""
    event = Event(name=EVENTS[action], record_id=None, actor_id=service.actor.id,
                  created_at=utcnow(), payload={
                      "ci": {"id": ci.id, "name": ci.name, "type": ci.type_key,
                             "lifecycle": ci.lifecycle, "external_key": ci.external_key},
                      "changes": changes or {}, "actor": service.actor.email, **data})
    service.session.add(event)
    service.session.info.setdefault("itsm_events", []).append(event)
    return event


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}


def create_ci(service: RecordService, data: Any) -> ConfigItem:
    """Add a configuration item (journaled as "created")."""
    service.require(WRITE)
    loaded = load(CiIn(), data)
    session = service.session
    values, agencies = Resolver(session).values(loaded)
    _check_agency_scope(service, values, agencies)
    if values["external_key"] and session.scalar(select(ConfigItem.id).where(
            ConfigItem.external_key == values["external_key"])) is not None:
        raise ValidationError("external key taken",
                              fields={"external_key": ["another CI has this key"]})
    now = utcnow()
    ci = ConfigItem(**values, source="manual", version=1, created_at=now, updated_at=now)
    session.add(ci)
    session.flush()
    for agency_id in agencies:
        session.add(CiAgency(ci_id=ci.id, agency_id=agency_id))
    _assign_service_id(service, ci, loaded.get("service"))
    _journal(session, service, ci, "created", {}, agencies, at=now)
    session.flush()
    announce_change(service, ci, "created")
    return ci


def _check_agency_scope(service: RecordService, values: dict[str, Any],
                        agencies: list[int]) -> None:
    """Only staff write CIs; none may put a CI out of their own sight."""
    if service.actor.role == "requester" and values.get("agency_id") != service.actor.agency_id:
        raise ValidationError("a CI of another agency",
                              fields={"agency": ["you may only use your own agency"]})


def _assign_service_id(service: RecordService, ci: ConfigItem, given: str | None) -> None:
    from itsm.plugins.cmdb import kinds

    types = all_types(service.session)
    ci_type = types.get(ci.type_key)
    if ci_type is None or not ci_type.is_service:
        if given:
            raise ValidationError("not a service", fields={
                "service": ["only CIs of a service type are a service"]})
        return
    if ci.service_id and not given:
        return
    ci.service_id = kinds.service_id_for(service.session, ci, given)


def update_ci(service: RecordService, ci: ConfigItem, data: Any, *,
              expected_version: int | None = None) -> ConfigItem:
    """Change a CI's fields (journaled field by field); a rename is announced."""
    service.require(WRITE)
    if expected_version is not None and expected_version != ci.version:
        raise StaleRecord(f"configuration item {ci.id} changed since version "
                          f"{expected_version} (now {ci.version}): reload and retry")
    session = service.session
    before_agencies = used_by(session, [ci.id]).get(ci.id, [])
    current = {"name": ci.name, "type": ci.type_key, "lifecycle": ci.lifecycle,
               "location": ci.location, "attributes": dict(ci.attributes or {}),
               "external_key": ci.external_key}
    loaded = load(CiIn(), {**current, **(data if isinstance(data, dict) else {})})
    if not isinstance(data, dict):
        raise ValidationError("expected a JSON object", fields={"_schema": ["not an object"]})
    names = Names(session)
    keep = {"owner": (names.user(ci.owner_id) or (None,))[0],
            "support_group": names.groups.get(ci.support_group_id),
            "agency": (names.agency(ci.agency_id) or {}).get("code"),
            "used_by": [names.agencies[a][0] for a in before_agencies]}
    for key, value in keep.items():
        if key not in data:
            loaded[key] = value
    values, agencies = Resolver(session).values(loaded)
    _check_agency_scope(service, values, agencies)
    if values["external_key"] and values["external_key"] != ci.external_key and \
            session.scalar(select(ConfigItem.id).where(
                ConfigItem.external_key == values["external_key"])) is not None:
        raise ValidationError("external key taken",
                              fields={"external_key": ["another CI has this key"]})
    return apply_values(service, ci, values, agencies, service_value=loaded.get("service"))


def apply_values(service: RecordService, ci: ConfigItem, values: dict[str, Any],
                 agencies: list[int], *, service_value: str | None = None,
                 action: str = "updated", note: str = "") -> ConfigItem:
    """Write resolved values to ``ci`` with their history row (no-op when equal)."""
    from itsm.plugins.cmdb import kinds

    session = service.session
    before_agencies = used_by(session, [ci.id]).get(ci.id, [])
    before = snapshot(ci, before_agencies)
    old_name = ci.name
    for key, value in values.items():
        setattr(ci, key, value)
    if agencies != before_agencies:
        for agency_id in set(before_agencies) - set(agencies):
            session.delete(session.get(CiAgency, (ci.id, agency_id)))
        for agency_id in set(agencies) - set(before_agencies):
            session.add(CiAgency(ci_id=ci.id, agency_id=agency_id))
    _assign_service_id(service, ci, service_value)
    changes = _diff(before, snapshot(ci, agencies))
    if not changes:
        return ci
    # A merge is announced as one, though its history row says "retired".
    event = "merged" if action == "merged" else None
    if ci.lifecycle == "retired" and before["lifecycle"] != "retired":
        action = "retired"
    ci.version += 1
    ci.updated_at = utcnow()
    _journal(session, service, ci, action, changes, agencies, note, at=ci.updated_at)
    session.flush()
    event = event or (action if action in EVENTS else "updated")
    if event == "updated" and "lifecycle" in changes:
        event = "lifecycle"
    announce_change(service, ci, event, changes, note=note)
    if action == "retired":
        kinds.announce(session, ci, "retired")
    elif ci.name != old_name:
        kinds.announce(session, ci, "renamed")
    return ci


def retire_ci(service: RecordService, ci: ConfigItem, note: str = "") -> ConfigItem:
    """Retire a CI: it stays, with its history and relations, and leaves every picker."""
    service.require(WRITE)
    _check_agency_scope(service, {"agency_id": ci.agency_id}, [])
    if ci.lifecycle == "retired":
        return ci
    agencies = used_by(service.session, [ci.id]).get(ci.id, [])
    return apply_values(service, ci, {"lifecycle": "retired"}, agencies, note=note)
