"""``itsm cmdb …``: import and reconcile, show a CI (as it is or was), its impact, and
export, as the system (the command line is the admin's)."""

from __future__ import annotations

import json
import sys

import click

from itsm.plugin import Actor, ItsmError, ValidationError, emit_json, pass_itsm
from itsm.plugins.cmdb import importer
from itsm.plugins.cmdb import relations as rel
from itsm.plugins.cmdb import service as cmdb


@click.group("cmdb")
def cmdb_group() -> None:
    """Configuration items: import, show, impact, export."""


def _fail(exc: ItsmError) -> click.ClickException:
    detail = ""
    if exc.fields:
        detail = " (" + "; ".join(f"{k}: {v}" for k, v in exc.fields.items())[:300] + ")"
    return click.ClickException(exc.message + detail)


@cmdb_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--format", "fmt", type=click.Choice(importer.FORMATS), default=None,
              help="csv, json or ansible [default: from the file name; ansible takes the "
                   "JSON of `ansible-inventory --list` or an inventory file, which it runs "
                   "ansible-inventory on]")
@click.option("--source", default=None, help="name of this source; CIs it imported before "
              "and no longer lists are retired [default: the format]")
@click.option("--dry-run", is_flag=True, help="report what would change, change nothing")
@click.option("--keep-missing", is_flag=True, help="do not retire CIs missing from the file")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@pass_itsm
def import_command(itsm, file, fmt: str | None, source: str | None, dry_run: bool,
                   keep_missing: bool, as_json: bool) -> None:
    """Import and reconcile configuration items from FILE ("-" for standard input)."""
    name = getattr(file, "name", "") or ""
    fmt = fmt or ("csv" if name.endswith(".csv") else "json" if name.endswith(".json")
                  else None)
    if fmt is None:
        raise click.ClickException("give --format csv, json or ansible")
    text = file.read()
    try:
        if fmt == "ansible" and not text.lstrip().startswith("{"):
            text = importer.run_ansible_inventory(name)
        rows, relations = importer.parse(fmt, text)
        with itsm.unit_of_work(Actor.system()) as service, click.progressbar(
                length=len(rows), label=f"importing {len(rows)} CIs", file=sys.stderr) as bar:
            report = importer.reconcile(service, rows, source or fmt, relations=relations,
                                        dry_run=dry_run, retire_missing=not keep_missing,
                                        progress=bar.update)
    except ItsmError as exc:
        raise _fail(exc) from None
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(f"{'dry run: ' if dry_run else ''}{report.created} created, "
                   f"{report.updated} updated, {report.unchanged} unchanged, "
                   f"{report.retired} retired, {report.failed} failed; relations: "
                   f"{report.relations_added} added, {report.relations_removed} removed")
        for error in report.errors[:20]:
            click.echo(f"  row {error['row']} {error['key']}: {json.dumps(error['fields'])}",
                       err=True)
    if report.failed:
        sys.exit(1)


@cmdb_group.command("show")
@click.argument("ci")
@click.option("--as-of", "as_of", default=None, help="as it was then (2026-12-01 or "
              "2026-12-01T09:30Z)")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@pass_itsm
def show_command(itsm, ci: str, as_of: str | None, as_json: bool) -> None:
    """Show a configuration item (by id, key or name) with its relations."""
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            item = cmdb.find_ci(service, ci)
            if as_of:
                data = rel.as_of(service, item, rel.parse_when(as_of))
            else:
                data = cmdb.current_dict(service, item)
                data["relations"] = rel.relations(service, item)
    except ItsmError as exc:
        raise _fail(exc) from None
    if as_json:
        emit_json(data)
        return
    head = f"#{data['id']} {data['name']} ({data['type_label']}, {data['lifecycle_label']})"
    click.echo(head + (f" as of {data['as_of']}" if as_of else ""))
    for label, value in (("key", data["external_key"]), ("owner", data["owner"]),
                         ("support group", data["support_group"]),
                         ("location", data["location"]),
                         ("agency", (data["agency"] or {}).get("code")),
                         ("used by", ", ".join(a["code"] for a in data["used_by"]))):
        if value:
            click.echo(f"  {label}: {value}")
    for key, value in sorted(data["attributes"].items()):
        click.echo(f"  {key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    for r in data["relations"]:
        click.echo(f"  {r['label']} #{r['other']['id']} {r['other']['name']}")


@cmdb_group.command("impact")
@click.argument("ci")
@click.option("--depends", is_flag=True, help="what the CI depends on, instead of what "
              "depends on it")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@pass_itsm
def impact_command(itsm, ci: str, depends: bool, as_json: bool) -> None:
    """The services and agencies that depend on a CI, each with its path."""
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            data = impact_dict(service, cmdb.find_ci(service, ci),
                               "depends" if depends else "impact")
    except ItsmError as exc:
        raise _fail(exc) from None
    if as_json:
        emit_json(data)
        return
    click.echo(f"#{data['ci']['id']} {data['ci']['name']}: {data['reached']} CIs reached"
               + (" (walk cut short)" if data["truncated"] else ""))
    for hit in data["services"]:
        click.echo(f"  service {hit['name']}: {' > '.join(p['name'] for p in hit['path'])}")
    for hit in data["agencies"]:
        click.echo(f"  agency {hit['code']}: {' > '.join(p['name'] for p in hit['path'])}")


def impact_dict(service, ci, direction: str) -> dict:
    """An analysis as the API, the pages and the CLI show it."""
    from itsm.plugins.cmdb.api import impact_data

    return impact_data(service, ci, direction)


@cmdb_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="file to write [default: standard output]")
@pass_itsm
def export_command(itsm, fmt: str, output) -> None:
    """Every CI (and, in JSON, every relation) in the form import reads back."""
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            output.write(importer.export(service, fmt))
    except ItsmError as exc:
        raise _fail(exc) from None


@cmdb_group.command("types")
@click.option("--define", "definition", type=click.File("r", encoding="utf-8"), default=None,
              help="a JSON file defining a type: {key, label, is_service, attributes}")
@pass_itsm
def types_command(itsm, definition) -> None:
    """List the CI types, or add or change one."""
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            if definition is not None:
                try:
                    data = json.load(definition)
                except ValueError as exc:
                    raise ValidationError(f"not JSON: {exc}") from None
                cmdb.define_type(service, data)
            for t in cmdb.all_types(service.session).values():
                names = ", ".join(a["name"] for a in t.attributes)
                click.echo(f"{t.key:20} {t.label:20} {'service ' if t.is_service else ''}"
                           f"[{names}]")
    except ItsmError as exc:
        raise _fail(exc) from None

