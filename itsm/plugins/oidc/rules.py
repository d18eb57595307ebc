"""Mapping rules stored in the database, per provider: listed, added, changed and removed
on the admin page (each change in the admin audit), and applied after the provider's
rules in itsm.toml."""

from __future__ import annotations

from dataclasses import replace
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
from itsm.plugins.oidc import service
from itsm.plugins.oidc.models import OidcRule

KINDS = {"role": "Role", "group": "Resolver group", "agency": "Agency"}
FIELD = {"role": "roles", "group": "groups", "agency": "agencies"}  # Provider's fields


def stored(session: Session, provider: str | None = None) -> list[OidcRule]:
    """The stored rules (of one provider) in the order they apply."""
    query = select(OidcRule).order_by(OidcRule.position, OidcRule.id)
    if provider is not None:
        query = query.where(OidcRule.provider == provider)
    return list(session.scalars(query))


def merged(provider: service.Provider, session: Session) -> service.Provider:
    """``provider`` with its stored rules after those of itsm.toml: a role or agency rule
    for a claim value the file already maps is not used (the first match wins), a
    resolver group rule adds its group to the file's."""
    tables: dict[str, dict[str, Any]] = {f: dict(getattr(provider, f)) for f in FIELD.values()}
    for rule in stored(session, provider.name):
        rules = tables[FIELD[rule.kind]]
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
    return replace(provider, **tables)


def effective_providers(itsm) -> dict[str, service.Provider]:
    """The configured providers, each with its stored rules after the file's."""
    found = service.providers(itsm.plugin_settings("oidc"))
    with itsm.Session() as session:
        return {name: merged(p, session) for name, p in found.items()}


def role_names() -> list[str]:
    return known_roles(list(current_itsm().permissions.values()))


def _checked(session: Session, provider: str, kind: str, match: str,
             value: str) -> tuple[str, str, str, str]:
    errors: dict[str, list[str]] = {}
    provider, kind = (provider or "").strip(), (kind or "").strip()
    match, value = check_text((match or "").strip(), "match"), \
        check_text((value or "").strip(), "value")
    if provider not in service.providers(current_itsm().plugin_settings("oidc")):
        errors["provider"] = ["choose a configured provider"]
    if kind not in KINDS:
        errors["kind"] = ["choose role, resolver group or agency"]
    if not match:
        errors["match"] = ["enter a value of the provider's groups claim"]
    elif len(match) > 500 or "\n" in match:
        errors["match"] = ["one value of at most 500 characters"]
    roles = role_names()
    if not value:
        errors["value"] = ["choose what the value maps to"]
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
    return provider, kind, match, value


def _facts(rule: OidcRule) -> dict[str, str]:
    return {"provider": rule.provider, "kind": rule.kind, "match": rule.match,
            "value": rule.value}


def add(session: Session, actor: Actor, provider: str, kind: str, match: str,
        value: str) -> OidcRule:
    """Store a new rule, applied after the others; audited."""
    provider, kind, match, value = _checked(session, provider, kind, match, value)
    last = session.scalar(select(func.max(OidcRule.position))) or 0
    rule = OidcRule(provider=provider, kind=kind, match=match, value=value,
                    position=last + 1)
    session.add(rule)
    session.flush()
    record_admin_audit(session, actor, "oidc.rule.add", f"oidc rule {rule.id}", None,
                       _facts(rule))
    return rule


def get(session: Session, rule_id: int) -> OidcRule:
    rule = session.get(OidcRule, rule_id)
    if rule is None:
        raise NotFound(f"there is no stored oidc rule {rule_id}")
    return rule


def change(session: Session, actor: Actor, rule_id: int, provider: str, kind: str,
           match: str, value: str) -> OidcRule:
    """Change a stored rule (it keeps its place in the order); audited."""
    rule = get(session, rule_id)
    before = _facts(rule)
    rule.provider, rule.kind, rule.match, rule.value = _checked(session, provider, kind,
                                                                match, value)
    record_admin_audit(session, actor, "oidc.rule.change", f"oidc rule {rule.id}", before,
                       _facts(rule))
    return rule


def remove(session: Session, actor: Actor, rule_id: int) -> None:
    """Remove a stored rule; audited."""
    rule = get(session, rule_id)
    record_admin_audit(session, actor, "oidc.rule.remove", f"oidc rule {rule.id}",
                       _facts(rule), None)
    session.delete(rule)
