"""``itsm satisfaction report``: the requesters' ratings by group, service, agency, month
or type over a period of months (see :mod:`itsm.core.satisfaction`)."""

from __future__ import annotations

import click

from itsm.core import satisfaction
from itsm.core.auth import Actor
from itsm.core.cli_kit import emit_json, pass_itsm


@click.group("satisfaction")
def satisfaction_group() -> None:
    """Satisfaction reports."""


@satisfaction_group.command("report")
@click.option("--by", "by", default="group", show_default=True,
              type=click.Choice(satisfaction.DIMENSIONS))
@click.option("--from", "first", default="", help="first month, YYYY-MM (default: this one)")
@click.option("--to", "last", default="", help="last month, YYYY-MM (default: --from)")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def report(itsm, by: str, first: str, last: str, as_json: bool) -> None:
    """Count and average of the scores per group, service, agency, month or type."""
    start, end = satisfaction.period(first, last)
    data = satisfaction.read(itsm, Actor.system(), by, start, end)
    if as_json:
        emit_json(data)
        return
    click.echo(f"{data['total']['count']} ratings from {data['from']} to before "
               f"{data['to']}")
    for line in data["items"]:
        click.echo(f"{line['label'][:40]:<40} {line['count']:>6} {line['average']:>6.2f} "
                   f"{line['low']:>4} low")
