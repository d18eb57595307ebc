"""The core's directory rules kit, which the ldap and oidc plugins' stored mapping rules
and admin pages are made with: how stored rules join itsm.toml's, and how a sign-in
plugin's settings read on its admin page (labels, secrets never shown)."""

from __future__ import annotations

from types import SimpleNamespace

from itsm.plugin import SettingLabel


def rule(kind: str, match: str, value: str) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, match=match, value=value)


FILE = {"roles": {"cn=desk": "agent"}, "groups": {"cn=desk": "Service desk"},
        "agencies": {}, "url": "ldaps://dc.example.org"}


def test_the_files_role_comes_first_and_stored_groups_add_up():
    from itsm.core.directory_rules import merge_rules

    merged = merge_rules(FILE, [rule("role", "CN=Desk", "admin"),  # the file maps it
                                rule("group", "CN=Desk", "Tax desk"),
                                rule("group", "cn=desk", "Tax desk"),  # no twice
                                rule("role", "cn=tax", "agent"),
                                rule("agency", "cn=tax", "TAX")])
    assert merged == {"roles": {"cn=desk": "agent", "cn=tax": "agent"},
                      "groups": {"cn=desk": ["Service desk", "Tax desk"]},
                      "agencies": {"cn=tax": "TAX"}}
    assert FILE["groups"] == {"cn=desk": "Service desk"}  # the settings stay as read


def test_the_files_rules_are_listed_by_what_they_map_to():
    from itsm.core.directory_rules import file_rules

    assert file_rules({**FILE, "groups": {"cn=desk": ["Service desk", "Tax desk"]}}) == [
        {"kind": "Role", "match": "cn=desk", "value": "Agent"},  # the role's label
        {"kind": "Resolver group", "match": "cn=desk", "value": "Service desk, Tax desk"}]


def test_settings_show_by_their_labels_and_secrets_stay_hidden():
    from itsm.core.admin.directory_page import shown_settings

    settings = {"url": "ldaps://dc.example.org", "bind_password": "s3cret words",
                "api_token": "t0ken", "allowed_groups": [], "start_tls": True,
                "nested_groups": "search", "ca_file": "", "not_listed": "x"}
    shown = shown_settings(settings, {
        "url": "Directory server",
        "bind_password": "Service account's password",  # masked by its name alone
        "api_token": SettingLabel("Token"),
        "allowed_groups": SettingLabel("Only members of", empty="anyone found"),
        "start_tls": "Start TLS",
        "nested_groups": SettingLabel("Groups within groups",
                                      values={"search": "followed by searching"}),
        "ca_file": SettingLabel("Certificate authorities", empty="the system's")})
    assert [(s["label"], s["text"]) for s in shown] == [
        ("Directory server", "ldaps://dc.example.org"),
        ("Service account's password", "set (hidden)"), ("Token", "set (hidden)"),
        ("Only members of", "anyone found"), ("Start TLS", "yes"),
        ("Groups within groups", "followed by searching"),
        ("Certificate authorities", "the system's")]
    assert "s3cret words" not in repr(shown) and "t0ken" not in repr(shown)
    assert shown[1]["key"] == "bind_password"  # where to change it in itsm.toml
    role = shown_settings({"default_role": "service_manager"}, {
        "default_role": SettingLabel("Role when no rule matches", role=True)})
    assert role[0]["text"] == "Service manager"  # the label, not the code
    unset = shown_settings({"client_secret": ""}, {"client_secret": SettingLabel(
        "Client secret", secret=True)})
    assert unset[0]["text"] == "not set"
