"""``itsm records``: commands on the records of any type (bulk import)."""

from __future__ import annotations

import sys

import click

from itsm.core.cli_kit import pass_itsm


@click.group("records")
def records() -> None:
    """Records of any enabled type: bulk import."""


@records.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--type", "type_name", required=True, help="record type, e.g. incident")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 20_000),
              help="records per transaction")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 64),
              help="processes validating batches (the first also writes them)")
@pass_itsm
def import_records(itsm, file, type_name: str, batch: int, jobs: int) -> None:
    """Import records from FILE (JSON Lines, one record a line; - reads stdin).

    Each line holds the fields the API's create takes, and may add state, created_at,
    updated_at, closed_at and comments ([{"body", "public", "at"}]) to load history.
    Numbers are taken from the install's sequence; journal entries and SLA clocks are
    written with the records. No notification is sent and nothing is escalated: SLA
    warnings and breaches already past are recorded as announced; those still ahead are
    announced when they come due. A bad line stops the import and nothing of its batch
    is written.
    """
    from itsm.core.bulk import BulkImporter, read_json_lines

    importer = BulkImporter(itsm, type_name, batch=batch, jobs=jobs)
    total = None
    if file is not sys.stdin and file.seekable():
        total = sum(1 for line in file if line.strip())
        file.seek(0)
    with click.progressbar(length=total, label=f"importing {type_name}", file=sys.stderr,
                           show_pos=True, show_eta=total is not None) as bar:
        stats = importer.run(read_json_lines(file), progress=bar.update)
    if not stats.records:
        click.echo("no records in the file")
        return
    click.echo(f"{stats.records} {type_name} record(s) imported ({stats.first} .. "
               f"{stats.last}), {stats.journal} journal entries, {stats.clocks} SLA clocks "
               f"in {stats.seconds:.1f} s ({stats.rate:.0f} records/s)")
