"""``itsm plugins``: list, inspect, enable, disable, check and uninstall plugins."""

from __future__ import annotations

import click

from itsm.core.cli_kit import emit_json, pass_itsm
from itsm.core.errors import ItsmError

# The commands import itsm.core.plugin_admin themselves: every `itsm` run loads this module.


@click.group()
def plugins() -> None:
    """Plugins: list, info, enable, disable, check, uninstall."""


def _row(itsm, info) -> dict:
    return {"name": info.name, "version": info.version, "enabled": itsm.host.is_enabled(info.name),
            "builtin": info.builtin, "distribution": info.distribution,
            "description": info.description, "hooks": info.hooks, "error": info.error,
            "requires_itsm": info.declaration.requires_itsm if info.declaration else "",
            "depends": dict(info.declaration.depends) if info.declaration else {}}


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_itsm
def list_plugins(itsm, as_json: bool) -> None:
    """Every installed plugin: version, enabled, built-in or third-party, load errors."""
    itsm.refresh_plugins(force=True)
    rows = [_row(itsm, info) for _, info in sorted(itsm.host.plugins.items())]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no plugins installed")
    for row in rows:
        state = "enabled " if row["enabled"] else "disabled"
        origin = "built-in" if row["builtin"] else "third-party"
        click.echo(f"{row['name']:<20} {row['version'] or '?':<9} {state} {origin:<11} "
                   f"{row['description']}")
        if row["error"]:
            click.echo(f"{'':<20} error: {row['error']}")


@plugins.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def plugin_info(itsm, name: str, as_json: bool) -> None:
    """Details of one plugin: hooks it implements, dependencies, record types."""
    from itsm.core import plugin_admin

    itsm.refresh_plugins(force=True)
    row = _row(itsm, itsm.host.get(name))
    row["record_types"] = plugin_admin.record_types_of(itsm, name) if not row["error"] else []
    if as_json:
        emit_json(row)
        return
    for key in ("name", "version", "enabled", "builtin", "distribution", "description",
                "requires_itsm", "depends", "record_types", "hooks", "error"):
        value = row[key]
        if isinstance(value, list | dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) \
                else ", ".join(value)
        click.echo(f"{key + ':':<14} {value if value not in (None, '') else '-'}")


@plugins.command("enable")
@click.argument("name")
@pass_itsm
def enable(itsm, name: str) -> None:
    """Enable a plugin (and the plugins it needs); its schema is migrated."""
    from itsm.core import plugin_admin

    newly = plugin_admin.enable(itsm, name)
    if not newly:
        click.echo(f"{name} is already enabled")
    for plugin in newly:
        click.echo(f"enabled {plugin} {itsm.host.plugins[plugin].version}")


@plugins.command("disable")
@click.argument("name")
@pass_itsm
def disable(itsm, name: str) -> None:
    """Disable a plugin; its data stays and comes back when it is enabled again."""
    from itsm.core import plugin_admin

    was = plugin_admin.disable(itsm, name)
    click.echo(f"disabled {name} (data kept)" if was else f"{name} is already disabled")


@plugins.command("check")
@pass_itsm
def check(itsm) -> None:
    """Preflight before an upgrade: load errors, versions, dependencies, migrations."""
    from itsm.core import plugin_admin

    report = plugin_admin.check(itsm)
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    if not report.ok:
        raise ItsmError(f"{len(report.problems)} problem(s) found")
    click.echo("ok: plugins are consistent")


@plugins.command("uninstall")
@click.argument("name")
@click.option("--purge", is_flag=True,
              help="delete the plugin's records and tables (required)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@pass_itsm
def uninstall(itsm, name: str, purge: bool, yes: bool) -> None:
    """Remove all data of a plugin, then `pip uninstall` its package. Cannot be undone."""
    from itsm.core import plugin_admin

    if not purge:
        raise click.UsageError("uninstall deletes data: say so with --purge "
                               "(to keep the data, use `itsm plugins disable`)")
    plugin_admin.require_known(itsm, name)
    types = plugin_admin.record_types_of(itsm, name) if name in itsm.host.plugins else []
    if not yes:
        click.confirm(f"delete every record ({', '.join(types) or 'no record types'}) and "
                      f"table of plugin {name!r}?", abort=True)
    for line in plugin_admin.purge(itsm, name):
        click.echo(f"removed {line}")
    click.echo(f"{name} purged; remove its package with pip to finish")
