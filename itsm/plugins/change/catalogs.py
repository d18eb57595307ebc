"""The admin-managed catalogs of change management, one code path for API and CLI.

Standard change templates, CAB rules, freeze windows and the risk questionnaire: each is
a :class:`Catalog` with a marshmallow schema, so both ``/api/v1/changes/<catalog>`` and
``itsm changes <catalog> ...`` validate the same way (422 / one error line).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

import marshmallow
from marshmallow import RAISE, Schema, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugin import (
    MAX_DB_INTEGER,
    Base,
    Boolean,
    Conflict,
    Group,
    InputError,
    NotFound,
    RecordService,
    ValidationError,
    load_input,
    parse_int,
)
from itsm.plugins.change import service as changes
from itsm.plugins.change.models import (
    CHANGE_TYPES,
    PURPOSES,
    QUORUMS,
    RISK_LEVELS,
    CabRule,
    ChangeTemplate,
    FreezeWindow,
    RiskQuestion,
)

NAME = validate.Length(min=1, max=100)
NAMES = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                    validate=validate.Length(max=50))


class TemplateSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=NAME)
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    description = fields.String(validate=validate.Length(max=20000))
    category = fields.String(validate=validate.Length(max=64))
    services = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                           validate=validate.Length(max=50))
    implementation_plan = fields.String(required=True, validate=validate.Length(min=1,
                                                                               max=20000))
    backout_plan = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    test_plan = fields.String(validate=validate.Length(max=20000))
    risk_level = fields.String(validate=validate.OneOf(RISK_LEVELS))
    environments = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                               validate=validate.Length(max=20), metadata={
                                   "description": "environments the template allows "
                                                  "(empty: any)"})
    max_window_hours = fields.Integer(validate=validate.Range(min=0, max=24 * 366), metadata={
        "description": "longest planned window the template allows, in hours (0: any)"})
    active = Boolean()


class CabRuleSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=NAME)
    group = fields.String(required=True, validate=NAME, metadata={
        "description": "name of the approver group (its members approve)"})
    purpose = fields.String(validate=validate.OneOf(PURPOSES), metadata={
        "description": "cab (approves changes) or freeze (emergency approval of a "
                       "window inside a freeze)"})
    quorum = fields.String(validate=validate.OneOf(QUORUMS))
    change_types = fields.List(fields.String(validate=validate.OneOf(CHANGE_TYPES)))
    risk_levels = fields.List(fields.String(validate=validate.OneOf(RISK_LEVELS)))
    services = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                           validate=validate.Length(max=50))
    categories = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                             validate=validate.Length(max=50))
    active = Boolean()


class FreezeWindowSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=NAME)
    starts_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    ends_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    services = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                           validate=validate.Length(max=50),
                           metadata={"description": "services frozen; empty: all"})
    reason = fields.String(validate=validate.Length(max=5000))

    @validates_schema
    def _order(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "starts_at" in data and "ends_at" in data and data["ends_at"] <= data["starts_at"]:
            raise marshmallow.ValidationError("must come after starts_at", "ends_at")


class RiskQuestionSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.Integer(dump_only=True)
    key = fields.String(required=True, validate=[validate.Length(min=1, max=64),
                                                 validate.Regexp(r"^[a-z0-9_]+$", error=(
                                                     "lower-case letters, digits and _"))])
    text = fields.String(required=True, validate=validate.Length(min=1, max=500))
    options = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=100)),
                          values=fields.Integer(validate=validate.Range(0, 100)),
                          required=True, validate=validate.Length(min=1, max=20),
                          metadata={"description": "answer -> risk points"})
    position = fields.Integer(validate=validate.Range(0, 10000))
    active = Boolean()


@dataclass(frozen=True)
class Catalog:
    """One admin-managed list: its URL/CLI name, model, schema and natural key."""

    name: str
    label: str
    model: type[Base]
    schema: type[Schema]
    key: str

    def load(self, data: Any, *, partial: bool = False) -> dict[str, Any]:
        return load_input(self.schema(), data, what=self.label, partial=partial)

    def dump(self, session: Session, row: Base) -> dict[str, Any]:
        out = self.schema().dump(row)
        if isinstance(row, CabRule):
            out["group"] = session.get(Group, row.group_id).name
        return out


CATALOGS = {c.name: c for c in (
    Catalog("templates", "standard change template", ChangeTemplate, TemplateSchema, "name"),
    Catalog("cab-rules", "CAB rule", CabRule, CabRuleSchema, "name"),
    Catalog("freeze-windows", "freeze window", FreezeWindow, FreezeWindowSchema, "name"),
    Catalog("risk-questions", "risk question", RiskQuestion, RiskQuestionSchema, "key"),
)}


def catalog(name: str) -> Catalog:
    try:
        return CATALOGS[name]
    except KeyError:
        raise NotFound(f"no change catalog {name!r} (catalogs: {', '.join(CATALOGS)})") \
            from None


def _values(session: Session, cat: Catalog, values: dict[str, Any]) -> dict[str, Any]:
    if cat.model is CabRule and "group" in values:
        name = values.pop("group")
        group_id = session.scalar(select(Group.id).where(Group.name == name))
        if group_id is None:
            raise ValidationError(f"no group {name!r}: create it first (itsm groups ...)",
                                  fields={"group": ["unknown group"]})
        values["group_id"] = group_id
    return values


def _defaults(cat: Catalog) -> dict[str, Any]:
    lists = {"services": [], "change_types": [], "risk_levels": [], "categories": [],
             "environments": []}
    common = {"templates": {"description": "", "category": "", "test_plan": "",
                            "risk_level": "low", "max_window_hours": 0, "active": True},
              "cab-rules": {"purpose": "cab", "quorum": "majority", "active": True},
              "freeze-windows": {"reason": ""},
              "risk-questions": {"position": 0, "active": True}}[cat.name]
    return {**{k: v for k, v in lists.items() if hasattr(cat.model, k)}, **common}


def list_rows(service: RecordService, name: str) -> list[dict[str, Any]]:
    """Every row of a catalog (staff may read them: they explain the process)."""
    service.require("change.read")
    cat = catalog(name)
    rows = service.session.scalars(select(cat.model).order_by(cat.model.id))
    return [cat.dump(service.session, r) for r in rows]


def _row(session: Session, cat: Catalog, ident: str) -> Base:
    column = getattr(cat.model, cat.key)
    try:
        row = session.get(cat.model, parse_int(ident, "id", minimum=1, maximum=MAX_DB_INTEGER))
    except InputError:
        row = None  # not an id: a name
    if row is None:
        row = session.scalar(select(cat.model).where(column == ident))
    if row is None:
        raise NotFound(f"no {cat.label} {ident!r}")
    return row


def add(service: RecordService, name: str, data: Any) -> dict[str, Any]:
    """Add a row to a catalog (admins)."""
    changes.require_admin(service)
    cat = catalog(name)
    values = _values(service.session, cat, cat.load(data))
    column = getattr(cat.model, cat.key)
    if service.session.scalar(select(cat.model.id).where(column == values[cat.key])):
        raise Conflict(f"a {cat.label} {values[cat.key]!r} exists already",
                       fields={cat.key: ["already exists"]})
    row = cat.model(**{**_defaults(cat), **values})
    service.session.add(row)
    service.session.flush()
    return cat.dump(service.session, row)


def update(service: RecordService, name: str, ident: str, data: Any) -> dict[str, Any]:
    """Change some fields of a catalog row (admins)."""
    changes.require_admin(service)
    cat = catalog(name)
    row = _row(service.session, cat, ident)
    values = _values(service.session, cat, cat.load(data, partial=True))
    if isinstance(row, FreezeWindow):
        start = values.get("starts_at", row.starts_at)
        if values.get("ends_at", row.ends_at) <= start:
            raise ValidationError("ends_at must come after starts_at",
                                  fields={"ends_at": ["must come after starts_at"]})
    for key, value in values.items():
        setattr(row, key, value)
    service.session.flush()
    return cat.dump(service.session, row)


def remove(service: RecordService, name: str, ident: str) -> None:
    """Delete a catalog row (admins). Templates and rules in use are better deactivated
    (``active: false``); their history stays either way."""
    changes.require_admin(service)
    cat = catalog(name)
    service.session.delete(_row(service.session, cat, ident))
    service.session.flush()
