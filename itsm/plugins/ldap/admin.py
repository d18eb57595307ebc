"""The ldap plugin's admin page, made with the core's directory rules kit: its settings
by their labels (the service account's password masked), the mapping rules of itsm.toml
and those stored here, and "test a person", the same diagnosis as ``itsm auth
test-ldap``."""

from __future__ import annotations

from flask import request

from itsm.plugin import (
    AdminPage,
    DirectoryConfiguration,
    DirectoryRulesPage,
    DirectoryTest,
    DirectoryTestField,
    SettingLabel,
    admin_view,
    current_itsm,
    page_blueprint,
)
from itsm.plugins.ldap import rules, service
from itsm.plugins.ldap.diagnose import diagnose

admin = page_blueprint("ldap_admin", __name__, url_prefix="/admin/sign-in/ldap",
                       template_folder=None)
PAGE = AdminPage("Directory (LDAP)", "ldap_admin.settings", "Sign-in",
                 description="the directory's settings, its mapping rules, and a test of "
                             "one person's sign-in")
LABELS = {
    "url": "Directory server",
    "start_tls": "Start TLS on an ldap:// address",
    "ca_file": SettingLabel("Certificate authorities trusted", empty="the system's"),
    "timeout_seconds": "Time-out (seconds)",
    "bind_dn": SettingLabel("Service account (DN)", empty="none: searches anonymously"),
    "bind_password": SettingLabel("Service account's password", secret=True),
    "user_base": "Where people are searched (base DN)",
    "user_filter": "Search for a person",
    "email_attribute": "E-mail address attribute",
    "name_attribute": "Name attribute",
    "phone_attribute": "Phone attribute",
    "group_base": "Where groups are searched (base DN)",
    "group_filter": "Search for groups",
    "member_attribute": "Group member attribute",
    "nested_groups": SettingLabel("Groups within groups", values={
        "direct": "not followed: only groups naming the person",
        "search": "followed by searching, level by level",
        "active_directory": "followed by Active Directory's matching rule in chain"}),
    "allowed_groups": SettingLabel("Only members of these groups sign in",
                                   empty="no limit: anyone found in the directory"),
    "default_role": SettingLabel("Role when no rule matches", role=True),
    "sync_minutes": "Leavers checked every (minutes)",
}

page = DirectoryRulesPage(
    admin, rules.RULES, title=PAGE.title, settings_from="[plugins.ldap]",
    configurations=lambda: [DirectoryConfiguration("Settings",
                                                   current_itsm().plugin_settings("ldap"))],
    labels=LABELS, match_label="Directory group (DN)",
    match_hint="e.g. cn=service-desk,ou=groups,dc=state,dc=example",
    applies_from="the next sign-in and sync",
    test=DirectoryTest(
        "Test a person", "itsm auth test-ldap", "connect, service bind, search, groups and "
        "what the rules make of them. No password is asked.", "ldap_admin.test_person",
        (DirectoryTestField("email", "E-mail address", "email", required=True),)))


@admin.route("/test", methods=["POST"])
@admin_view()
def test_person():
    """The steps of ``itsm auth test-ldap`` for the address typed (no password)."""
    email = request.form.get("email", "").strip()
    if not email:
        return page.render_test(errors={"email": ["enter the person's e-mail address"]})
    itsm = current_itsm()
    return page.render_test(list(diagnose(rules.effective_settings(itsm),
                                          service.role_names(itsm), email)))
