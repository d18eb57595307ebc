"""``itsm mou …``: compliance reports and agreements from the command line (as the system)."""

from __future__ import annotations

import json

import click

from itsm.plugin import Actor, ItsmError, pass_itsm
from itsm.plugins.mou import service


@click.group("mou")
def mou_group() -> None:
    """Agreements with agencies (MOU) and between groups (OLA)."""


@mou_group.command("compliance")
@click.argument("agency")
@click.option("--from", "start", default=None, help="first day, YYYY-MM-DD "
              "[default: the first of this month]")
@click.option("--to", "end", default=None, help="last day, YYYY-MM-DD [default: today]")
@click.option("--format", "kind", type=click.Choice(["text", "json", "csv"]),
              default="text", show_default=True)
@pass_itsm
def compliance_command(itsm, agency: str, start: str | None, end: str | None,
                       kind: str) -> None:
    """Compliance of AGENCY's records with its agreement's targets over a period."""
    from itsm.plugins.mou import compliance

    try:
        first, last = compliance.parse_period(start, end)
        with itsm.unit_of_work(Actor.system()) as svc:
            data = compliance.report(svc.session, agency, first, last)
    except ItsmError as exc:  # one line and exit status 1, as every itsm command
        raise click.ClickException(exc.message) from None
    if kind == "json":
        click.echo(json.dumps(data, indent=2))
        return
    if kind == "csv":
        click.echo(compliance.to_csv(data), nl=False)
        return
    click.echo(f"{data['agency']} {data['agreement']} version {data['version']}, "
               f"{data['from']} to {data['to']}")
    click.echo(f"{'TARGET':<32} {'METRIC':<11} {'MEASURED':>8} {'MET':>5} {'BREACHED':>8} "
               f"{'COMPLIANCE':>10}  REQUIRED")
    for line in data["targets"]:
        value = "—" if line["compliance"] is None else f"{line['compliance']}%"
        flag = "  BELOW" if line["below_target"] else ""
        click.echo(f"{line['target'][:32]:<32} {line['metric']:<11} {line['measured']:>8} "
                   f"{line['met']:>5} {line['breached']:>8} {value:>10}  "
                   f"{line['required_percent']}%{flag}")


@mou_group.command("export")
@click.argument("number")
@pass_itsm
def export_command(itsm, number: str) -> None:
    """Print agreement NUMBER as Markdown, with every section and appendix."""
    from itsm.plugins.mou import document as export

    try:
        with itsm.unit_of_work(Actor.system()) as svc:
            data = service.agreement_dict(svc, service.get(svc, number))
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(export.to_markdown(data), nl=False)
