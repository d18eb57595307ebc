"""``itsm billing …``: statements, subscriptions, time and contacts from the command line.

Commands run as the system; every error is one line and exit status 1.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from itsm.plugin import Actor, ItsmError, pass_itsm
from itsm.plugins.billing import service as billing
from itsm.plugins.billing.exports import statement_csv, statement_pdf


@click.group("billing")
def billing_group() -> None:
    """Internal billing: agencies' monthly statements from catalog rates."""


def _run(itsm, action):
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            return action(service)
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None


def _print_statement(data: dict) -> None:
    click.echo(f"{data['number']}  {data['agency']}  {data['period']}  {data['state_label']}"
               f"  total {data['total']} {data['currency']}")
    for line in data["lines"]:
        click.echo(f"  {line['position']:>3}  {line['kind_label']:<18} "
                   f"{line['description'][:52]:<52} {line['quantity']:>8} x "
                   f"{line['unit_price']:>10} = {line['amount']:>11}")


@billing_group.command("statement")
@click.argument("agency")
@click.argument("period")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@pass_itsm
def statement_command(itsm, agency: str, period: str, as_json: bool) -> None:
    """Compute (again) AGENCY's draft statement for PERIOD (YYYY-MM) and print it."""
    data = _run(itsm, lambda s: billing.statement_dict(s, billing.generate(s, agency, period)))
    click.echo(json.dumps(data, indent=2)) if as_json else _print_statement(data)


@billing_group.command("statements")
@click.option("--agency", default=None, help="an agency's code")
@click.option("--period", default=None, help="a month, YYYY-MM")
@pass_itsm
def statements_command(itsm, agency: str | None, period: str | None) -> None:
    """List statements."""
    rows = _run(itsm, lambda s: [billing.statement_dict(s, x)
                                 for x in billing.statements(s, agency, period)])
    for data in rows:
        click.echo(f"{data['id']:>5}  {data['number']}  {data['agency']:<10} {data['period']}"
                   f"  {data['state_label']:<9} {data['total']:>12} {data['currency']}")
    if not rows:
        click.echo("no statements")


def _step(name: str, action, done: str):
    @billing_group.command(name)
    @click.argument("statement_id", type=int)
    @pass_itsm
    def command(itsm, statement_id: int) -> None:
        number = _run(itsm, lambda s: action(s, statement_id).number)
        click.echo(f"{number} {done}")

    command.__doc__ = f"Statement STATEMENT_ID: {done}."
    return command


_step("review", billing.review, "is reviewed")
_step("issue", billing.issue, "has been issued; it never changes again")
_step("reopen", billing.reopen, "is a draft again")


@billing_group.command("credit")
@click.argument("statement_id", type=int)
@click.argument("amount")
@click.argument("reason")
@pass_itsm
def credit_command(itsm, statement_id: int, amount: str, reason: str) -> None:
    """Credit AMOUNT on issued statement STATEMENT_ID, billed on the agency's next one."""
    _run(itsm, lambda s: billing.credit(s, statement_id, amount, reason))
    click.echo(f"credit of {amount} recorded: the agency's next statement bills it")


@billing_group.command("export")
@click.argument("statement_id", type=int)
@click.option("--format", "kind", type=click.Choice(["csv", "pdf"]), default="csv",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write to this file [default: standard output for CSV]")
@pass_itsm
def export_command(itsm, statement_id: int, kind: str, output: Path | None) -> None:
    """Export a statement as CSV or PDF."""
    data = _run(itsm, lambda s: billing.statement_dict(s, billing.statement(s, statement_id)))
    body = statement_csv(data).encode() if kind == "csv" else statement_pdf(data)
    if output is None:
        if kind == "pdf":
            raise click.ClickException("a PDF needs --output FILE")
        sys.stdout.write(body.decode())
        return
    output.write_bytes(body)
    click.echo(f"wrote {output} ({len(body)} bytes)")


@billing_group.command("subscribe")
@click.argument("agency")
@click.argument("service")
@click.argument("quantity")
@click.option("--from", "starts_on", required=True, help="first day, YYYY-MM-DD")
@click.option("--until", "ends_on", default=None, help="last day, YYYY-MM-DD")
@pass_itsm
def subscribe_command(itsm, agency: str, service: str, quantity: str, starts_on: str,
                      ends_on: str | None) -> None:
    """Subscribe AGENCY to QUANTITY units of recurring SERVICE (its id or name)."""
    sub_id = _run(itsm, lambda s: billing.subscribe(s, agency, service, quantity, starts_on,
                                                    ends_on).id)
    click.echo(f"subscription {sub_id}: {agency} uses {quantity} of {service} from {starts_on}")


@billing_group.command("import-subscriptions")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@pass_itsm
def import_subscriptions(itsm, file) -> None:
    """Subscriptions from a CSV with columns agency, service, quantity, starts_on[, ends_on].

    All rows or none: one bad row names its line and nothing is written."""
    rows = list(csv.DictReader(file))
    missing = {"agency", "service", "quantity", "starts_on"} - set(rows[0] if rows else {})
    if missing:
        raise click.ClickException(f"the file lacks the column(s) {', '.join(sorted(missing))}")

    def run(service):
        with click.progressbar(rows, label="subscriptions", file=sys.stderr) as bar:
            for line, row in enumerate(bar, start=2):
                try:
                    billing.subscribe(service, row["agency"], row["service"], row["quantity"],
                                      row["starts_on"], row.get("ends_on") or None)
                except ItsmError as exc:
                    raise ItsmError(f"line {line}: {exc.message}") from None
        return len(rows)

    click.echo(f"{_run(itsm, run)} subscriptions imported")


@billing_group.command("time")
@click.argument("record")
@click.argument("minutes")
@click.argument("service")
@click.option("--on", "worked_on", default=None, help="the day worked, YYYY-MM-DD [today]")
@pass_itsm
def time_command(itsm, record: str, minutes: str, service: str, worked_on: str | None) -> None:
    """Record MINUTES worked on RECORD under hourly SERVICE."""
    _run(itsm, lambda s: billing.record_time(s, record, minutes, service, worked_on))
    click.echo(f"{minutes} min recorded on {record.upper()}")


@billing_group.command("contact")
@click.argument("agency")
@click.argument("email")
@pass_itsm
def contact_command(itsm, agency: str, email: str) -> None:
    """Make EMAIL (a person of AGENCY) its billing contact."""
    _run(itsm, lambda s: billing.add_contact(s, agency, email))
    click.echo(f"{email} receives {agency}'s statements")
