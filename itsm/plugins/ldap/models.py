"""The ldap plugin's table: mapping rules added on its admin page, applied after the
rules of ``[plugins.ldap]`` in itsm.toml (migration ``ldap_0001``)."""

from __future__ import annotations

from itsm.plugin import Base, DirectoryRuleColumns


class LdapRule(DirectoryRuleColumns, Base):
    """A directory group (its DN) mapped to an itsm role, resolver group or agency."""

    __tablename__ = "ldap_rule"
