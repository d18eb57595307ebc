"""Mapping rules stored in the database per provider (table ``oidc_rule``): managed on the
admin page through the core's directory rules kit, applied after the provider's rules in
itsm.toml."""

from __future__ import annotations

from dataclasses import replace

from itsm.plugin import DirectoryRules, current_itsm, known_roles
from itsm.plugins.oidc import service
from itsm.plugins.oidc.models import OidcRule


def configured() -> dict[str, service.Provider]:
    """The providers of itsm.toml by name; ValidationError naming a missing setting."""
    return service.providers(current_itsm().plugin_settings("oidc"))


RULES = DirectoryRules(
    OidcRule, "oidc", match_noun="a value of the provider's groups claim", scope="provider",
    scope_label="Provider",
    scopes=lambda: {name: f"{p.label} ({name})" for name, p in configured().items()})


def effective_providers(itsm) -> dict[str, service.Provider]:
    """The configured providers, each with its stored rules after the file's."""
    found = service.providers(itsm.plugin_settings("oidc"))
    with itsm.Session() as session:
        return {name: replace(p, **RULES.applied(vars(p), session, name))
                for name, p in found.items()}


def role_names() -> list[str]:
    return known_roles(list(current_itsm().permissions.values()))
