"""Mapping rules stored in the database: listed, added, changed and removed on the admin
page (each change in the admin audit), and applied after the rules of itsm.toml."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from itsm.plugin import (
    Actor,
    Agency,
    Group,
    NotFound,
    ValidationError,
    check_text,
    current_itsm,
    known_roles,
    record_admin_audit,
)
from itsm.plugins.ldap.models import LdapRule

KINDS = {"role": "Role", "group": "Resolver group", "agency": "Agency"}
SETTING = {"role": "roles", "group": "groups", "agency": "agencies"}  # [plugins.ldap.*]


def stored(session: Session) -> list[LdapRule]:
    """The stored rules in the order they apply."""
    return list(session.scalars(select(LdapRule).order_by(LdapRule.position, LdapRule.id)))


def merged(conf: dict[str, Any], session: Session) -> dict[str, Any]:
    """``conf`` with the stored rules after those of itsm.toml: a role or agency rule
    for a group itsm.toml already maps is not used (the file's comes first, and the
    first match wins), a resolver group rule adds its group to the file's."""
    out = dict(conf)
    for key in SETTING.values():
        out[key] = dict(conf[key])
    for rule in stored(session):
        rules = out[SETTING[rule.kind]]
        same = next((k for k in rules if k.lower() == rule.match.lower()), None)
        if rule.kind != "group":
            if same is None:
                rules[rule.match] = rule.value
            continue
        if same is None:
            rules[rule.match] = [rule.value]
        else:
            before = rules[same]
            values = [before] if isinstance(before, str) else list(before)
            rules[same] = list(dict.fromkeys([*values, rule.value]))
    return out


def _checked(session: Session, roles: list[str], kind: str, match: str,
             value: str) -> tuple[str, str, str]:
    errors: dict[str, list[str]] = {}
    kind, match, value = (kind or "").strip(), (match or "").strip(), (value or "").strip()
    if kind not in KINDS:
        errors["kind"] = ["choose role, resolver group or agency"]
    match = check_text(match, "match")
    if not match:
        errors["match"] = ["enter the directory group's DN"]
    elif len(match) > 500 or "\n" in match:
        errors["match"] = ["one DN of at most 500 characters"]
    value = check_text(value, "value")
    if not value:
        errors["value"] = ["choose what the group maps to"]
    elif kind == "role" and value not in roles:
        errors["value"] = [f"unknown role (roles: {', '.join(roles)})"]
    elif kind == "group" and session.scalar(select(Group.id).where(Group.name == value)) \
            is None:
        errors["value"] = [f"there is no resolver group {value!r}"]
    elif kind == "agency" and session.scalar(select(Agency.id).where(Agency.code == value)) \
            is None:
        errors["value"] = [f"there is no agency with the code {value!r}"]
    if errors:
        raise ValidationError("the rule is not valid", fields=errors)
    return kind, match, value


def _facts(rule: LdapRule) -> dict[str, str]:
    return {"kind": rule.kind, "match": rule.match, "value": rule.value}


def add(session: Session, actor: Actor, kind: str, match: str, value: str) -> LdapRule:
    """Store a new rule, applied after the others; audited."""
    roles = known_roles_of(session)
    kind, match, value = _checked(session, roles, kind, match, value)
    last = session.scalar(select(func.max(LdapRule.position))) or 0
    rule = LdapRule(kind=kind, match=match, value=value, position=last + 1)
    session.add(rule)
    session.flush()
    record_admin_audit(session, actor, "ldap.rule.add", f"ldap rule {rule.id}", None,
                       _facts(rule))
    return rule


def get(session: Session, rule_id: int) -> LdapRule:
    rule = session.get(LdapRule, rule_id)
    if rule is None:
        raise NotFound(f"there is no stored ldap rule {rule_id}")
    return rule


def change(session: Session, actor: Actor, rule_id: int, kind: str, match: str,
           value: str) -> LdapRule:
    """Change a stored rule (it keeps its place in the order); audited."""
    rule = get(session, rule_id)
    before = _facts(rule)
    rule.kind, rule.match, rule.value = _checked(session, known_roles_of(session), kind,
                                                 match, value)
    record_admin_audit(session, actor, "ldap.rule.change", f"ldap rule {rule.id}", before,
                       _facts(rule))
    return rule


def remove(session: Session, actor: Actor, rule_id: int) -> None:
    """Remove a stored rule; audited."""
    rule = get(session, rule_id)
    record_admin_audit(session, actor, "ldap.rule.remove", f"ldap rule {rule.id}",
                       _facts(rule), None)
    session.delete(rule)


def known_roles_of(session: Session) -> list[str]:
    return known_roles(list(current_itsm().permissions.values()))


def effective_settings(itsm) -> dict[str, Any]:
    """``[plugins.ldap]`` with the stored rules after the file's (see :func:`merged`)."""
    with itsm.Session() as session:
        return merged(itsm.plugin_settings("ldap"), session)
