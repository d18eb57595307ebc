"""``itsm auth test-oidc [PROVIDER]``: diagnose the identity providers' configuration."""

from __future__ import annotations

import click

from itsm.plugin import ItsmError, pass_itsm
from itsm.plugins.oidc import rules, service
from itsm.plugins.oidc.diagnose import diagnose, mapping_step


@click.command("test-oidc")
@click.argument("provider", required=False)
@click.option("--url", "base", default=None, metavar="URL",
              help="the address people reach itsm at (https://itsm.example.org): also "
                   "check that the provider accepts its callback address")
@click.option("--email", default=None, help="also show what the rules make of this "
              "person (the provider of its domain unless PROVIDER is given)")
@click.option("--groups", default="", metavar="A,B",
              help="with --email: the values of the person's groups claim")
@pass_itsm
def test_oidc_command(itsm, provider: str | None, base: str | None, email: str | None,
                      groups: str) -> None:
    """Check each configured identity provider (or PROVIDER only), one line per step:
    discovery, keys, client, redirect, sign-out, and with --email the mapping's result.
    Exit status 1 at the first step that fails."""
    conf = itsm.plugin_settings("oidc")
    try:
        found = rules.effective_providers(itsm)
        if email and provider is None:
            provider = service.provider_for_email(found, email).name
    except ItsmError as exc:
        raise click.ClickException(f"settings: {exc.message}") from None
    if provider is not None and provider not in found:
        raise click.ClickException(f"settings: no provider {provider!r} in "
                                   f"[plugins.oidc.providers] (there are: "
                                   f"{', '.join(found) or 'none'})")
    if not found:
        raise click.ClickException("settings: no provider in [plugins.oidc.providers]")
    chosen = [found[provider]] if provider else list(found.values())
    for each in chosen:
        click.echo(f"provider: {each.name} ({each.label}; domains "
                   f"{', '.join(each.domains) or 'any'})")
        steps = list(diagnose(each, float(conf["timeout_seconds"]), base))
        if email and all(step.ok for step in steps):
            names = [g.strip() for g in groups.split(",") if g.strip()]
            steps.append(mapping_step(each, email, names, rules.role_names()))
        for step in steps:
            if not step.ok:
                raise click.ClickException(step.line)
            click.echo(step.line)
