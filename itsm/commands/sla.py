"""``itsm sla``: rebuild clocks from the journals, sweep for breaches, show clocks, calendars."""

from __future__ import annotations

import sys

import click

from itsm.core import sla
from itsm.core.auth import Actor
from itsm.core.calendars import load_calendars
from itsm.core.cli_kit import emit_json, pass_itsm


@click.group("sla")
def sla_group() -> None:
    """Service level clocks: recompute, sweep, show, calendars."""


@sla_group.command("recompute")
@click.option("--type", "type_name", help="only records of this type (default: every "
              "enabled type)")
@pass_itsm
def recompute(itsm, type_name: str | None) -> None:
    """Rebuild every clock from the records' journals (after changing targets or calendars).

    Sends no notification for past warnings or breaches; `itsm sla sweep` announces those
    of clocks still running.
    """
    load_calendars(itsm.settings)  # a bad calendar fails here, before any work
    total = sla.count_records(itsm, type_name)
    with click.progressbar(length=total, label="recomputing clocks", file=sys.stderr,
                           show_pos=True) as bar:
        stats = sla.recompute(itsm, type_name, progress=bar.update)
    click.echo(f"{stats.records} record(s), {stats.clocks} clock(s): {stats.changed} "
               "clock(s) changed" if stats.changed else
               f"{stats.records} record(s), {stats.clocks} clock(s): all were up to date")
    if stats.skipped:
        click.echo(f"{stats.skipped} record(s) of types no enabled plugin provides were "
                   "left as they are")


@sla_group.command("sweep")
@pass_itsm
def sweep(itsm) -> None:
    """Announce warnings and breaches that have come due (the worker does this too)."""
    from itsm.core.models import utcnow

    now = utcnow()
    with click.progressbar(length=sla.count_due(itsm, now), label="announcing",
                           file=sys.stderr, show_pos=True) as bar:
        stats = sla.sweep(itsm, now, progress=bar.update)
    click.echo(f"warnings {stats.warned}, breaches {stats.breached}")


@sla_group.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def show(itsm, number: str, as_json: bool) -> None:
    """Show the clocks of one record, measured now."""
    with itsm.unit_of_work(Actor.system()) as service:
        record = service.get(number.strip().upper())
        clocks = sla.clocks_for(service.session, record,
                                calendars=load_calendars(itsm.settings))
    if as_json:
        emit_json(clocks)
        return
    if not clocks:
        click.echo(f"{record.number} has no SLA clocks")
    for c in clocks:
        flags = ", ".join(f for f in ("breached" if c["breached"] else "",
                                      "warned" if c["warned"] and not c["breached"] else "")
                          if f)
        target = f"{c['target_minutes']} min" if c["target_minutes"] is not None else "none"
        due = f", due {c['breach_due_at']}" if c["state"] == "running" else ""
        click.echo(f"{c['metric']:<12} {c['state']:<8} {c['elapsed_minutes']:>10.1f} of "
                   f"{target} ({c['calendar']}, {c['source']}){due}"
                   + (f" [{flags}]" if flags else ""))


@sla_group.command("calendars")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def calendars(itsm, as_json: bool) -> None:
    """List the business calendars (built-in and [calendars.<name>] of itsm.toml)."""
    data = [cal.describe() for _, cal in sorted(load_calendars(itsm.settings).items())]
    if as_json:
        emit_json(data)
        return
    for cal in data:
        click.echo(f"{cal['name']} ({cal['timezone']})")
        hours = cal["hours"]
        if isinstance(hours, str):
            click.echo(f"  {hours}")
        else:
            for day, ranges in hours.items():
                click.echo(f"  {day}: {ranges or 'closed'}")
        if cal["holidays"]:
            click.echo("  holidays: " + ", ".join(cal["holidays"]))
