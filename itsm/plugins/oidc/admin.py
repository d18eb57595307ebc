"""The oidc plugin's admin page, made with the core's directory rules kit: each
provider's settings by their labels (client secret masked) and mapping rules from
itsm.toml, the rules stored here, and a test of a provider and of a person's claims, the
same steps as ``itsm auth test-oidc``."""

from __future__ import annotations

from dataclasses import asdict

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
from itsm.plugins.oidc import rules
from itsm.plugins.oidc.diagnose import diagnose, mapping_step

admin = page_blueprint("oidc_admin", __name__, url_prefix="/admin/sign-in/oidc",
                       template_folder=None)
PAGE = AdminPage("Identity providers (OIDC)", "oidc_admin.settings", "Sign-in",
                 description="the OpenID Connect providers, their mapping rules, and a "
                             "test of a provider and of a person's claims")
LABELS = {
    "label": "Sign-in button",
    "issuer": "Issuer (its address)",
    "client_id": "Client ID",
    "client_secret": SettingLabel("Client secret", secret=True),
    "domains": SettingLabel("E-mail domains it signs in",
                            empty="any: it has a button of its own"),
    "scope": "Scopes asked for",
    "groups_claim": "Claim listing the person's groups",
    "default_role": SettingLabel("Role when no rule matches", role=True),
    "leeway_seconds": "Clock difference allowed (seconds)",
}

page = DirectoryRulesPage(
    admin, rules.RULES, title=PAGE.title,
    settings_from="[plugins.oidc.providers.<name>]",
    configurations=lambda: [DirectoryConfiguration(name, asdict(p))
                            for name, p in rules.configured().items()],
    labels=LABELS, match_label="Value of the groups claim",
    match_hint="e.g. service-desk, or the group's id at the provider",
    applies_from="each person's next sign-in", none_configured="No provider is configured.",
    test=DirectoryTest(
        "Test a provider and a person", "itsm auth test-oidc", "discovery, keys, client, "
        "redirect, sign-out, and with an e-mail address what the rules make of that "
        "person's groups.", "oidc_admin.test_provider", (
            DirectoryTestField("provider", "Provider", "choice", required=True),
            DirectoryTestField("base", "itsm's address", "url", hint="e.g. "
                               "https://itsm.example.org: also checks that the provider "
                               "accepts the callback address"),
            DirectoryTestField("email", "A person's e-mail address", "email"),
            DirectoryTestField("groups", "Their groups claim", hint="Values separated by "
                               "commas, e.g. dmv-desk, dmv-staff"))))


@admin.route("/test", methods=["POST"])
@admin_view()
def test_provider():
    """The steps of ``itsm auth test-oidc PROVIDER [--url] [--email --groups]``."""
    itsm = current_itsm()
    chosen = rules.effective_providers(itsm).get(request.form.get("provider", ""))
    if chosen is None:
        return page.render_test(errors={"provider": ["choose a configured provider"]})
    base = request.form.get("base", "").strip() or None
    if base and not base.startswith(("https://", "http://")):
        return page.render_test(errors={"base": ["an address starting with https://"]})
    steps = list(diagnose(chosen, float(itsm.plugin_settings("oidc")["timeout_seconds"]),
                          base))
    email = request.form.get("email", "").strip()
    if email and all(step.ok for step in steps):
        groups = [g.strip() for g in request.form.get("groups", "").split(",") if g.strip()]
        steps.append(mapping_step(chosen, email, groups, rules.role_names()))
    return page.render_test(steps)
