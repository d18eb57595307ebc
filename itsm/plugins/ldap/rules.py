"""Mapping rules stored in the database (table ``ldap_rule``): managed on the admin page
through the core's directory rules kit, applied after the rules of itsm.toml."""

from __future__ import annotations

from typing import Any

from itsm.plugin import DirectoryRules
from itsm.plugins.ldap.models import LdapRule

RULES = DirectoryRules(LdapRule, "ldap", match_noun="the directory group's DN")


def effective_settings(itsm) -> dict[str, Any]:
    """``[plugins.ldap]`` with the stored rules after the file's."""
    conf = itsm.plugin_settings("ldap")
    with itsm.Session() as session:
        return {**conf, **RULES.applied(conf, session)}
