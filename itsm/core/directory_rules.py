"""Mapping rules a sign-in plugin stores in its own table: a directory group or a claim's
value mapped to an itsm role, resolver group or agency, checked, audited, and applied
after the rules of itsm.toml.

The ldap and oidc plugins (and a vendor's sign-in plugin) declare one
:class:`DirectoryRules` over their table (the columns of :class:`DirectoryRuleColumns`);
the admin page for them is :class:`itsm.core.admin.directory_page.DirectoryRulesPage`.
Each plugin keeps its own table and Alembic branch, so a disabled plugin's rules stay in
place with its data and nothing here knows which plugins exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from itsm.core.admin.kit import record_admin_audit
from itsm.core.auth import Actor, known_roles
from itsm.core.context import current_itsm
from itsm.core.errors import NotFound, ValidationError
from itsm.core.inputs import check_text
from itsm.core.models import Agency, Group

__all__ = ["KINDS", "RULE_SETTINGS", "DirectoryRuleColumns", "DirectoryRules", "file_rules",
           "merge_rules", "role_label"]

KINDS = {"role": "Role", "group": "Resolver group", "agency": "Agency"}
# Where each kind of rule lives in a plugin's settings: ``roles = {match = role}`` ...
RULE_SETTINGS = {"role": "roles", "group": "groups", "agency": "agencies"}
MATCH_MAX = 500


class DirectoryRuleColumns:
    """The columns of a stored mapping rule, mixed into a plugin's own table::

        class LdapRule(DirectoryRuleColumns, Base):
            __tablename__ = "ldap_rule"

    A plugin whose rules belong to one of several configurations (the oidc plugin's
    providers) adds that column itself and names it in :attr:`DirectoryRules.scope`.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "role", "group" or "agency"
    match: Mapped[str] = mapped_column(String(MATCH_MAX))  # the group or claim value
    value: Mapped[str] = mapped_column(String(200))  # role name, group name, agency code
    position: Mapped[int] = mapped_column(Integer)  # order of application, oldest first


def merge_rules(tables: Mapping[str, Mapping[str, Any]], rules: Iterable[Any]) \
        -> dict[str, dict[str, Any]]:
    """The ``roles``, ``groups`` and ``agencies`` tables of ``tables`` (itsm.toml's) with
    ``rules`` (stored ones, in order) after them. A role or agency rule for a match the
    file already maps is not used (the file's comes first, and the first match wins);
    a resolver group rule adds its group to the file's. Matches compare without regard
    to case, as directories compare group names."""
    out = {key: dict(tables[key]) for key in RULE_SETTINGS.values()}
    for rule in rules:
        mapped = out[RULE_SETTINGS[rule.kind]]
        same = next((k for k in mapped if k.lower() == rule.match.lower()), None)
        if rule.kind != "group":
            if same is None:
                mapped[rule.match] = rule.value
            continue
        if same is None:
            mapped[rule.match] = [rule.value]
        else:
            before = mapped[same]
            values = [before] if isinstance(before, str) else list(before)
            mapped[same] = list(dict.fromkeys([*values, rule.value]))
    return out


def file_rules(tables: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """The rules of itsm.toml's ``roles``, ``groups`` and ``agencies`` tables as a page
    lists them: what they map to (a label), the match and the value(s)."""
    out = []
    for kind, key in RULE_SETTINGS.items():
        for match, value in tables.get(key, {}).items():
            values = [value] if isinstance(value, str) else value
            if kind == "role":  # a role by its label, as every page names one
                values = [role_label(v) for v in values]
            out.append({"kind": KINDS[kind], "match": match, "value": ", ".join(values)})
    return out


def role_label(name: str) -> str:
    """A role as pages name it: ``service_manager`` -> "Service manager"."""
    return name.replace("_", " ").capitalize()


def role_names() -> list[str]:
    """The roles a rule may name: every role some permission is granted to."""
    return known_roles(list(current_itsm().permissions.values()))


@dataclass(frozen=True)
class DirectoryRules:
    """The stored mapping rules of one sign-in plugin: its table and its words.

    :param model: the plugin's mapped class (with :class:`DirectoryRuleColumns`).
    :param source: the plugin's name; the admin audit's actions are ``<source>.rule.add``
        (``.change``, ``.remove``), its targets ``<source> rule <id>``.
    :param match_noun: what a rule matches, for the field's messages ("the directory
        group's DN", "a value of the provider's groups claim").
    :param scope: the column tying a rule to one of several configurations ("provider"),
        or "" when the plugin has one.
    :param scope_label: that column's label ("Provider").
    :param scopes: the configurations a rule may name, value -> label (called when a rule
        is checked and when the page is shown).
    """

    model: type
    source: str
    match_noun: str = "the directory group"
    scope: str = ""
    scope_label: str = ""
    scopes: Callable[[], Mapping[str, str]] | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of a rule's form fields (and columns), in the form's order."""
        return ((self.scope,) if self.scope else ()) + ("kind", "match", "value")

    def stored(self, session: Session, scope: str | None = None) -> list[Any]:
        """The stored rules (of one configuration) in the order they apply."""
        query = select(self.model).order_by(self.model.position, self.model.id)
        if scope is not None and self.scope:
            query = query.where(getattr(self.model, self.scope) == scope)
        return list(session.scalars(query))

    def applied(self, tables: Mapping[str, Mapping[str, Any]], session: Session,
                scope: str | None = None) -> dict[str, dict[str, Any]]:
        """itsm.toml's rule tables with the stored rules after them (:func:`merge_rules`)."""
        return merge_rules(tables, self.stored(session, scope))

    def facts(self, rule: Any) -> dict[str, str]:
        """A rule as the admin audit records it."""
        return {name: getattr(rule, name) for name in self.fields}

    def get(self, session: Session, rule_id: int) -> Any:
        rule = session.get(self.model, rule_id)
        if rule is None:
            raise NotFound(f"there is no stored {self.source} rule {rule_id}")
        return rule

    def add(self, session: Session, actor: Actor, typed: Mapping[str, str]) -> Any:
        """Store a new rule from ``typed`` (the form's fields), applied after the others;
        audited. ValidationError with a message per field."""
        rule = self.model(**self._checked(session, typed))
        rule.position = (session.scalar(select(func.max(self.model.position))) or 0) + 1
        session.add(rule)
        session.flush()
        record_admin_audit(session, actor, f"{self.source}.rule.add", self._target(rule),
                           None, self.facts(rule))
        return rule

    def change(self, session: Session, actor: Actor, rule_id: int,
               typed: Mapping[str, str]) -> Any:
        """Change a stored rule (it keeps its place in the order); audited."""
        rule = self.get(session, rule_id)
        before = self.facts(rule)
        for name, value in self._checked(session, typed).items():
            setattr(rule, name, value)
        record_admin_audit(session, actor, f"{self.source}.rule.change", self._target(rule),
                           before, self.facts(rule))
        return rule

    def remove(self, session: Session, actor: Actor, rule_id: int) -> None:
        """Remove a stored rule; audited."""
        rule = self.get(session, rule_id)
        record_admin_audit(session, actor, f"{self.source}.rule.remove", self._target(rule),
                           self.facts(rule), None)
        session.delete(rule)

    def _target(self, rule: Any) -> str:
        return f"{self.source} rule {rule.id}"

    def _checked(self, session: Session, typed: Mapping[str, str]) -> dict[str, str]:
        errors: dict[str, list[str]] = {}
        kind = str(typed.get("kind") or "").strip()
        match = check_text(str(typed.get("match") or "").strip(), "match")
        value = check_text(str(typed.get("value") or "").strip(), "value")
        out = {"kind": kind, "match": match, "value": value}
        if self.scope:
            out[self.scope] = str(typed.get(self.scope) or "").strip()
            if out[self.scope] not in (self.scopes() if self.scopes else {}):
                errors[self.scope] = [f"choose a configured {self.scope_label.lower()}"]
        if kind not in KINDS:
            errors["kind"] = ["choose role, resolver group or agency"]
        if not match:
            errors["match"] = [f"enter {self.match_noun}"]
        elif len(match) > MATCH_MAX or "\n" in match:
            errors["match"] = [f"one value of at most {MATCH_MAX} characters"]
        if (problem := _value_problem(session, kind, value)) is not None:
            errors["value"] = [problem]
        if errors:
            raise ValidationError("the rule is not valid", fields=errors)
        return out


def _value_problem(session: Session, kind: str, value: str) -> str | None:
    """Why ``value`` cannot be what a rule of ``kind`` maps to; None when it can."""
    if not value:
        return "choose what it maps to"
    if kind == "role" and value not in (roles := role_names()):
        return f"unknown role (roles: {', '.join(roles)})"
    if kind == "group" and session.scalar(select(Group.id).where(Group.name == value)) is None:
        return f"there is no resolver group {value!r}"
    if kind == "agency" and \
            session.scalar(select(Agency.id).where(Agency.code == value)) is None:
        return f"there is no agency with the code {value!r}"
    return None
