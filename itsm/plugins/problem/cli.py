"""``itsm problem …``: proactive identification and the known error database from the
command line (read-only, as the system)."""

from __future__ import annotations

import json

import click

from itsm.plugin import Actor, ItsmError, pass_itsm
from itsm.plugins.problem import service as problems


@click.group("problem")
def problem_group() -> None:
    """Problem management: incident trends and known errors."""


@problem_group.command("trends")
@click.option("--days", default=None, help="incidents created in the last N days "
              "[default: the trend_days setting, 30]")
@click.option("--min", "minimum", default=None, help="report values shared by at least "
              "this many incidents [default: the trend_threshold setting, 3]")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@pass_itsm
def trends_command(itsm, days: str | None, minimum: str | None, as_json: bool) -> None:
    """Categories and services with many incidents in a period: candidates for a problem."""
    try:
        days_, minimum_ = problems.trend_options(days, minimum)
        with itsm.unit_of_work(Actor.system()) as service:
            report = problems.trends(service, days_, minimum_)
    except ItsmError as exc:  # one line and exit status 1, as every itsm command
        raise click.ClickException(exc.message) from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    if not report.items:
        click.echo(f"no value reaches {minimum_} {report.incident_type} records in the last "
                   f"{days_} days (fields: {', '.join(report.fields) or 'none'})")
        return
    click.echo(f"{'FIELD':<18} {'VALUE':<30} {'COUNT':>5}  OPEN PROBLEMS")
    for trend in report.items:
        covered = ", ".join(trend.problems) or "none"
        click.echo(f"{trend.field:<18} {str(trend.value)[:30]:<30} {trend.count:>5}  {covered}")


@problem_group.command("known-errors")
@click.argument("text", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@pass_itsm
def known_errors_command(itsm, text: str, as_json: bool) -> None:
    """List known errors with their workarounds, optionally matching TEXT."""
    with itsm.unit_of_work(Actor.system()) as service:
        items = [problems.known_error_dict(p) for p in problems.known_errors(service, text)]
    if as_json:
        click.echo(json.dumps({"items": items}, indent=2))
        return
    if not items:
        click.echo("no known error" + (f" matches {text!r}" if text else ""))
    for item in items:
        click.echo(f"{item['number']}  {item['title']}")
        click.echo(f"    workaround: {item['workaround']}")
