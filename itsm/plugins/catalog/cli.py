"""``itsm catalog ...``: load and save the catalog, publish services, approvers, reports."""

from __future__ import annotations

from pathlib import Path

import click

from itsm.plugin import Actor, ItsmError, emit_json, pass_itsm


def _fail(exc: ItsmError) -> click.ClickException:
    return click.ClickException(" ".join(exc.message.split()))


@click.group()
def catalog() -> None:
    """Service catalog: import, export, publish services, approvers, reports."""


@catalog.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "json", "yaml"]),
              default="auto", show_default=True, help="auto: from the file's extension")
@pass_itsm
def import_(itsm, file: Path, fmt: str) -> None:
    """Load a catalog from FILE (JSON or YAML): all of it, or nothing on an error."""
    from itsm.plugins.catalog.exchange import import_catalog, parse

    if fmt == "auto":
        fmt = "yaml" if file.suffix.lower() in (".yaml", ".yml") else "json"
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {file}: {exc}") from None

    def progress(done: int, total: int) -> None:
        click.echo(f"\rservices {done}/{total}", nl=(done == total), err=True)

    try:
        data = parse(text, fmt)
        with itsm.unit_of_work(Actor.system()) as svc:
            counts = import_catalog(svc, data, progress)
    except ItsmError as exc:
        raise _fail(exc) from None
    click.echo("imported " + ", ".join(f"{n} {k}" for k, n in counts.items()))


@catalog.command("export")
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="write to this file instead of the screen")
@pass_itsm
def export(itsm, fmt: str, output: Path | None) -> None:
    """Write the whole catalog in the import format."""
    from itsm.plugins.catalog.exchange import dump, export_catalog

    with itsm.unit_of_work(Actor.system()) as svc:
        text = dump(export_catalog(svc), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc}") from None
    click.echo(f"wrote {output}")


@catalog.command("services")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def services(itsm, as_json: bool) -> None:
    """Every service with its status."""
    from sqlalchemy import select

    from itsm.plugins.catalog import service as catalog_service
    from itsm.plugins.catalog.models import Service

    with itsm.unit_of_work(Actor.system()) as svc:
        rows = [catalog_service.service_dict(svc, s) for s in
                svc.session.scalars(select(Service).order_by(Service.slug))]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['slug']:<28} {row['status']:<14} {row['name']}")


@catalog.command("set-status")
@click.argument("service")
@click.argument("status", type=click.Choice(["planned", "in_transition", "live", "retired"]))
@pass_itsm
def set_status(itsm, service: str, status: str) -> None:
    """Move SERVICE (slug or id) to STATUS; live publishes it in the portal."""
    from itsm.plugins.catalog.service import set_service_status

    try:
        with itsm.unit_of_work(Actor.system()) as svc:
            found = set_service_status(svc, service, status)
            name = found.name
    except ItsmError as exc:
        raise _fail(exc) from None
    click.echo(f"{name} is now {status}")


@catalog.command("approver")
@click.argument("agency")
@click.argument("email")
@click.option("--remove", is_flag=True, help="no longer an approver")
@pass_itsm
def approver(itsm, agency: str, email: str, remove: bool) -> None:
    """Make EMAIL a manager approving the requests of AGENCY (approval "manager")."""
    from itsm.plugins.catalog.service import set_approver

    try:
        with itsm.unit_of_work(Actor.system()) as svc:
            set_approver(svc, agency, email, remove=remove)
    except ItsmError as exc:
        raise _fail(exc) from None
    click.echo(f"{email} {'no longer approves' if remove else 'approves'} for {agency}")


@catalog.command("overdue")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def overdue(itsm, as_json: bool) -> None:
    """Technical documents whose review date has passed."""
    from itsm.plugins.catalog.service import document_dict, overdue_documents

    with itsm.unit_of_work(Actor.system()) as svc:
        rows = [document_dict(svc, d) for d in overdue_documents(svc)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no technical document is overdue for review")
    for row in rows:
        click.echo(f"{row['review_due']}  {row['service']:<24} v{row['version']:<3} "
                   f"{row['owner'] or '-':<28} {row['title']}")


@catalog.command("report")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650))
@click.option("--json", "as_json", is_flag=True, help="the report as JSON (as the API)")
@pass_itsm
def report(itsm, days: int, as_json: bool) -> None:
    """Requests per service and agency, fulfilment against target, feedback counts."""
    from itsm.plugins.catalog.reports import summary, text_report

    with itsm.unit_of_work(Actor.system()) as svc:
        data = summary(svc, days)
    if as_json:
        emit_json(data)
        return
    click.echo(text_report(data))
