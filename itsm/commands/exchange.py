"""``itsm export FILE`` and ``itsm import FILE``: a whole install in one file, and back."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from itsm.core.cli_kit import pass_itsm

# The commands import itsm.core.exchange themselves: every `itsm` run loads this module.


class _Bar:
    """A progress bar on stderr fed with (table, count) steps."""

    def __init__(self, label: str, length: int) -> None:
        self.bar = click.progressbar(length=max(length, 1), label=label, file=sys.stderr,
                                     show_pos=True, item_show_func=lambda t: t)
        self.bar.__enter__()

    def __call__(self, table: str, count: int) -> None:
        self.bar.current_item = table
        self.bar.update(count)

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--force", is_flag=True, help="overwrite FILE if it exists")
@pass_itsm
def export_command(itsm, file: Path, force: bool) -> None:
    """Write every table (the core's and every plugin's) and every attachment to FILE.

    The rows are one consistent snapshot, taken while itsm keeps running.
    """
    from itsm.core import exchange

    if file.exists() and not force:
        raise exchange.ExchangeError(f"{file} exists: choose another name or add --force")
    partial = file.with_name(file.name + ".partial")
    steps = {"n": 0}

    def progress(table: str, count: int) -> None:
        steps["n"] += count
        if table == "files" or steps["n"] % 5000 < count:
            click.echo(f"\r  {steps['n']} rows and files written ({table})", nl=False,
                       err=True)

    try:
        manifest = exchange.export(itsm, partial, progress=progress)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(file)
    click.echo("", err=True)
    for key in manifest["missing_files"]:
        click.echo(f"warning: attachment file {key} was missing from the store", err=True)
    click.echo(f"exported {len(manifest['tables'])} tables, {exchange.count_rows(manifest)} "
               f"rows and {manifest['files']} files to {file}")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_itsm
def import_command(itsm, file: Path) -> None:
    """Load an export into this install's new, empty database (refused if not empty).

    The schema is built at the exported revisions; run `itsm db upgrade` afterwards when
    this itsm is newer. Works across back ends: export from SQLite, import into PostgreSQL.
    """
    from itsm.core import exchange

    with exchange.open_export(file) as archive:
        manifest = exchange.read_manifest(archive)
    exchange.refuse_non_empty(itsm)
    bar = _Bar("import", exchange.count_rows(manifest) + manifest["files"])
    try:
        exchange.import_(itsm, file, progress=bar)
    finally:
        bar.close()
    click.echo(f"imported {len(manifest['tables'])} tables, {exchange.count_rows(manifest)} "
               f"rows and {manifest['files']} files from {file} "
               f"(exported by itsm {manifest['itsm']} from {manifest['backend']})")
    click.echo("next: `itsm db upgrade` if this itsm is newer than the export's")
