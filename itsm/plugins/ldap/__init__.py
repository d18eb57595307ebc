"""Sign in with the organization's directory: LDAP and Active Directory — a built-in itsm
plugin.

People sign in with their directory e-mail address and password (``itsm_authenticate``):
the plugin finds them with a service account, binds as them with their password, reads
e-mail, name, phone and their groups (direct, nested by search, or Active Directory's
matching rule in chain), and maps the groups to itsm's role, resolver groups and agency
by the rules of ``[plugins.ldap]``. A periodic sync (``itsm_periodic``, ``itsm ldap
sync``) deactivates users who left the directory or its allowed groups, revoking their
tokens and ending their web sessions. ``itsm auth test-ldap EMAIL`` checks the
configuration step by step. Its admin page shows the configuration and adds mapping
rules to those of itsm.toml (table ``ldap_rule``, applied after the file's). It imports
no other plugin.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.ldap.hooks import (
    itsm_admin_pages,
    itsm_auth_commands,
    itsm_authenticate,
    itsm_blueprints,
    itsm_cli_commands,
    itsm_periodic,
)

plugin = Plugin(
    name="ldap", version="0.1.0",
    description="Sign in with LDAP or Active Directory; leavers are deactivated by a sync.",
    requires_itsm=">=0.1,<1",
    settings={
        # ldaps://dc.example.org (TLS from the start) or ldap://... with start_tls.
        "url": "",
        "start_tls": True,
        "ca_file": "",  # the CA bundle that signed the server's certificate ("": system's)
        "timeout_seconds": 5,
        # The service account that searches (people and groups); "" binds anonymously.
        "bind_dn": "",
        "bind_password": "",
        "user_base": "",
        "user_filter": "(&(objectClass=inetOrgPerson)(mail={email}))",
        "email_attribute": "mail",
        "name_attribute": "displayName",
        "phone_attribute": "telephoneNumber",
        "group_base": "",
        "group_filter": "(objectClass=groupOfNames)",
        "member_attribute": "member",
        # direct: groups naming the person; search: and the groups naming those, level
        # by level (any server); active_directory: AD's matching rule in chain.
        "nested_groups": "direct",
        # Only members of these groups (DNs) may sign in; [] lets every person found.
        "allowed_groups": [],
        "default_role": "requester",
        # Group DN -> itsm role (the first rule that matches, in file order), resolver
        # group name(s), agency code.
        "roles": {},
        "groups": {},
        "agencies": {},
        "sync_minutes": 60,
    },
    # No required setting: enabled without a url (every built-in is, on a fresh install)
    # it does nothing, and `itsm ldap test` says what is missing.
)

__all__ = ["itsm_admin_pages", "itsm_auth_commands", "itsm_authenticate", "itsm_blueprints",
           "itsm_cli_commands", "itsm_periodic", "plugin"]
