"""``itsm auth``: diagnose the sign-in methods; the enabled plugins add their commands
(``itsm_auth_commands``), e.g. ``itsm auth test-ldap EMAIL`` and ``itsm auth test-oidc``."""

from __future__ import annotations

import click

from itsm.core.cli_kit import CliState
from itsm.core.errors import ItsmError


class AuthGroup(click.Group):
    """A group whose commands are those the enabled plugins give through
    ``itsm_auth_commands``; they run inside the application context."""

    def _provided(self, ctx: click.Context) -> dict[str, click.Command]:
        cache = ctx.meta.setdefault("itsm.auth_commands", {})
        if cache:
            return cache
        try:
            provided = ctx.ensure_object(CliState).app().extensions["itsm"].results(
                "itsm_auth_commands")
        except ItsmError as exc:
            click.echo(f"warning: sign-in diagnostics unavailable: {exc.message}", err=True)
            return {}
        owners: dict[str, str] = {}
        for plugin, command in provided:
            if command.name in cache:
                click.echo(f"warning: plugin {plugin!r} command 'auth {command.name}' is "
                           f"refused: the name belongs to {owners[command.name]!r}", err=True)
                continue
            cache[command.name] = command
            owners[command.name] = plugin
        return cache

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._provided(ctx))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._provided(ctx).get(name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            ctx.with_resource(ctx.ensure_object(CliState).app().app_context())
        return name, command, rest


@click.group("auth", cls=AuthGroup)
def auth_group() -> None:
    """Sign-in methods: diagnose a directory's or an identity provider's configuration,
    one line per step (the enabled sign-in plugins add the commands)."""
