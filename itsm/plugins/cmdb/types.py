"""CI types as data: the default types, and the marshmallow schema generated from a
type's attribute definitions that validates every CI of that type."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from marshmallow import RAISE, Schema, validate
from marshmallow import fields as mf

ATTRIBUTE_TYPES = ("string", "text", "integer", "number", "boolean", "date", "choice", "json")


def _attr(name: str, label: str, type_: str = "string", *, required: bool = False,
          choices: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "label": label, "type": type_, "required": required}
    if choices:
        out["choices"] = list(choices)
    return out


_ENVIRONMENTS = ("production", "acceptance", "test", "development")

# The types a new install starts with; an admin adds more (API, CLI, page).
DEFAULT_TYPES: tuple[dict[str, Any], ...] = (
    {"key": "business_service", "label": "Business service", "is_service": True,
     "attributes": [_attr("hours", "Service hours"),
                    _attr("criticality", "Criticality", "choice",
                          choices=("low", "medium", "high", "critical"))]},
    {"key": "application", "label": "Application", "attributes": [
        _attr("version", "Version"), _attr("vendor", "Vendor"), _attr("url", "Address"),
        _attr("environment", "Environment", "choice", choices=_ENVIRONMENTS)]},
    {"key": "database", "label": "Database", "attributes": [
        _attr("engine", "Engine", "choice",
              choices=("postgresql", "mariadb", "mysql", "oracle", "sqlserver", "other")),
        _attr("version", "Version"), _attr("port", "Port", "integer"),
        _attr("environment", "Environment", "choice", choices=_ENVIRONMENTS)]},
    {"key": "server", "label": "Server", "attributes": [
        _attr("hostname", "Host name"), _attr("ip_address", "IP address"),
        _attr("os", "Operating system"), _attr("cpu_count", "CPUs", "integer"),
        _attr("memory_gb", "Memory (GB)", "number"), _attr("virtual", "Virtual", "boolean"),
        _attr("environment", "Environment", "choice", choices=_ENVIRONMENTS),
        _attr("groups", "Inventory groups", "json"), _attr("hostvars", "Host variables", "json")]},
    {"key": "network_device", "label": "Network device", "attributes": [
        _attr("role", "Role", "choice",
              choices=("switch", "router", "firewall", "load balancer", "access point")),
        _attr("model", "Model"), _attr("ip_address", "IP address")]},
    {"key": "storage", "label": "Storage", "attributes": [
        _attr("capacity_tb", "Capacity (TB)", "number"), _attr("model", "Model")]},
    {"key": "host_group", "label": "Host group", "attributes": [
        _attr("groupvars", "Group variables", "json")]},
)


def _field(definition: dict[str, Any]) -> mf.Field:
    kind = definition.get("type", "string")
    options: dict[str, Any] = {"required": bool(definition.get("required")),
                               "metadata": {"description": definition.get("label", "")}}
    if not options["required"]:
        options["allow_none"] = True
    if kind == "string":
        return mf.String(validate=validate.Length(max=500), **options)
    if kind == "text":
        return mf.String(validate=validate.Length(max=20000), **options)
    if kind == "integer":
        return mf.Integer(strict=False, validate=validate.Range(-2**31, 2**31 - 1), **options)
    if kind == "number":
        return mf.Float(allow_nan=False, validate=validate.Range(-1e15, 1e15), **options)
    if kind == "boolean":
        return mf.Boolean(**options)
    if kind == "date":
        return mf.Date(**options)
    if kind == "choice":
        return mf.String(validate=validate.OneOf(definition.get("choices") or []), **options)
    return mf.Raw(**options)  # json: any JSON value (facts, variables)


def _frozen(attributes: list[dict[str, Any]]) -> tuple:
    return tuple((a["name"], a.get("type", "string"), bool(a.get("required")),
                  tuple(a.get("choices") or ()), a.get("label", "")) for a in attributes)


@lru_cache(maxsize=256)
def _schema_for(frozen: tuple) -> Schema:
    fields = {name: _field({"type": kind, "required": required, "choices": list(choices),
                            "label": label})
              for name, kind, required, choices, label in frozen}
    return Schema.from_dict(fields, name="CiAttributes")(unknown=RAISE)


def attribute_schema(attributes: list[dict[str, Any]]) -> Schema:
    """The marshmallow schema of a type's attributes (cached per definition)."""
    return _schema_for(_frozen(attributes))


_INTEGER = re.compile(r"-?[0-9]{1,10}")


@lru_cache(maxsize=256)
def _plain_plan(frozen: tuple) -> tuple[dict[str, tuple[str, frozenset]], frozenset]:
    return ({name: (kind, frozenset(choices)) for name, kind, _r, choices, _l in frozen},
            frozenset(name for name, _k, required, _c, _l in frozen if required))


def _plain_value(kind: str, choices: frozenset, value: Any) -> tuple[bool, Any]:
    """``(True, loaded)`` when ``value`` plainly is a valid ``kind``, as the schema would
    load it; ``(False, None)`` for anything the schema must judge (and word)."""
    if kind == "json":
        return value is not None, value
    if kind in ("string", "text", "choice"):
        if type(value) is not str or len(value) > (20000 if kind == "text" else 500):
            return False, None
        return (kind != "choice" or value in choices), value
    if kind == "integer" and (type(value) is int
                              or (type(value) is str and _INTEGER.fullmatch(value))):
        number = int(value)
        return -2**31 <= number <= 2**31 - 1, number
    return False, None


def load_attributes(attributes: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """A CI's attribute values loaded by the type's schema (see :func:`attribute_schema`).
    Plain values (text, choices, whole numbers: nearly every row of an import) are
    checked here at a fraction of a schema load; anything else goes to the schema, which
    raises ``marshmallow.ValidationError`` with its messages."""
    frozen = _frozen(attributes)
    plan, required = _plain_plan(frozen)
    out: dict[str, Any] = {}
    for name, value in values.items():
        spec = plan.get(name)
        plain, loaded = _plain_value(*spec, value) if spec else (False, None)
        if not plain:
            return _schema_for(frozen).load(values)
        out[name] = loaded
    if not required <= out.keys():
        return _schema_for(frozen).load(values)
    return out


def dump_attributes(attributes: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """Loaded values as JSON-able data (dates as ISO text), dropping empty ones."""
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


class AttributeDefinition(Schema):
    """One attribute of a CI type, as an admin defines it."""

    name = mf.String(required=True, validate=[validate.Length(min=1, max=64),
                                              validate.Regexp(r"^[a-z][a-z0-9_]*$", error=(
                                                  "lower-case letters, digits and _"))])
    label = mf.String(load_default="", validate=validate.Length(max=100))
    type = mf.String(load_default="string", validate=validate.OneOf(ATTRIBUTE_TYPES))
    required = mf.Boolean(load_default=False)
    choices = mf.List(mf.String(validate=validate.Length(min=1, max=100)),
                      load_default=list, validate=validate.Length(max=100))
