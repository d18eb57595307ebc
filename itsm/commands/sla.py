"""``itsm sla``: rebuild clocks from the journals, sweep for breaches, show clocks, calendars."""

from __future__ import annotations

import sys
from datetime import date

import click

from itsm.core import service_levels, sla
from itsm.core.auth import Actor
from itsm.core.calendars import WEEKDAYS
from itsm.core.cli_kit import emit_json, pass_itsm
from itsm.core.errors import ItsmError
from itsm.core.sla.stored import calendars_for


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
    calendars_for(itsm, None)  # a bad calendar fails here, before any work
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
                                calendars=calendars_for(itsm, service.session))
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


def _one_line(exc: ItsmError) -> ItsmError:
    """A service error with its field messages folded into the one line the CLI prints."""
    details = "; ".join(f"{name}: {messages[0] if isinstance(messages, list) else messages}"
                        for name, messages in exc.fields.items())
    return ItsmError(f"{exc.message}: {details}" if details else exc.message)


@sla_group.group("calendars", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def calendars(ctx: click.Context, as_json: bool) -> None:
    """List the business calendars (built in, itsm.toml, saved); `set` saves one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(_list_calendars, as_json=as_json)


@pass_itsm
def _list_calendars(itsm, as_json: bool) -> None:
    with itsm.Session() as session:
        data = service_levels.describe_calendars(itsm, session)
    if as_json:
        emit_json(data)
        return
    for cal in data:
        origin = f"saved, version {cal['version']}" if cal["version"] else cal["origin"]
        click.echo(f"{cal['name']} ({cal['timezone']}, {origin})")
        hours = cal["hours"]
        if isinstance(hours, str):
            click.echo(f"  {hours}")
        else:
            for day, ranges in hours.items():
                click.echo(f"  {day}: {ranges or 'closed'}")
        if cal["holidays"]:
            click.echo("  holidays: " + ", ".join(
                f"{h['date']} {h['name']}".rstrip() for h in cal["holidays"]))


def _holidays_from(country: str | None, subdivision: str, years: str) \
        -> tuple[list[tuple[date, str]], str]:
    if not country:
        return [], ""
    try:
        wanted = service_levels.parse_years(years)
        found = service_levels.public_holidays(country, subdivision, wanted)
    except ItsmError as exc:
        raise _one_line(exc) from None
    return found, service_levels.holiday_source(country, subdivision, wanted)


@calendars.command("set")
@click.argument("name")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone")
@click.option("--hours", "weekdays", default="08:00-17:00", show_default=True,
              help="working hours Monday to Friday (weekends closed unless --day is given)")
@click.option("--day", "days", multiple=True, metavar="DAY=RANGES",
              help='one weekday\'s hours, e.g. sat=09:00-12:00 or fri="" (repeatable)')
@click.option("--holiday", "typed", multiple=True, metavar="DATE[ NAME]",
              help='a holiday typed by hand, e.g. "2026-12-24 Christmas Eve" (repeatable)')
@click.option("--country", help="add the public holidays of this country (name or code)")
@click.option("--subdivision", default="", help="state or region, e.g. Maine or ME")
@click.option("--years", default="", help="years of the public holidays, e.g. 2026-2027")
@click.option("--yes", is_flag=True, help="save without asking to confirm the dates")
@pass_itsm
def calendars_set(itsm, name: str, timezone: str, weekdays: str, days: tuple[str, ...],
                  typed: tuple[str, ...], country: str | None, subdivision: str, years: str,
                  yes: bool) -> None:
    """Save a business calendar (a new version of it, if it exists); clocks already
    running keep the version they started on."""
    hours = {day: weekdays for day in WEEKDAYS[:5]}
    for item in days:
        day, sep, ranges = item.partition("=")
        if not sep or day.strip().lower() not in WEEKDAYS:
            raise ItsmError(f"--day {item!r}: write DAY=RANGES with DAY one of "
                            + ", ".join(WEEKDAYS))
        hours[day.strip().lower()] = ranges.strip().strip('"')
    try:
        holidays = dict(service_levels.parse_holiday_lines("\n".join(typed)))
    except ItsmError as exc:
        raise _one_line(exc) from None
    computed, source = _holidays_from(country, subdivision, years)
    if computed:
        click.echo(f"public holidays of {source}:")
        for day, label in computed:
            click.echo(f"  {day.isoformat()} {day:%a}  {label}")
        if not yes:
            click.confirm(f"add these {len(computed)} dates to calendar {name!r}?",
                          abort=True)
        holidays.update(dict(computed))
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            row = service_levels.save_calendar(service, name, timezone=timezone,
                                               hours=hours,
                                               holidays=sorted(holidays.items()),
                                               source=source)
            key, count = row.key, len(row.holidays)
    except ItsmError as exc:
        raise _one_line(exc) from None
    click.echo(f"saved calendar {key} with {count} holiday(s); "
               + service_levels.APPLIES_TO_NEW.lower())


@sla_group.command("holidays")
@click.argument("country")
@click.option("--subdivision", default="", help="state or region, e.g. Maine or ME")
@click.option("--years", required=True, help="e.g. 2027 or 2026-2028")
@click.option("--json", "as_json", is_flag=True)
def holidays_cmd(country: str, subdivision: str, years: str, as_json: bool) -> None:
    """Show the public holidays of a country or state (what `calendars set --country` adds)."""
    found, source = _holidays_from(country, subdivision, years)
    if as_json:
        emit_json([{"date": d.isoformat(), "name": n} for d, n in found])
        return
    click.echo(f"public holidays of {source}:")
    for day, label in found:
        click.echo(f"  {day.isoformat()} {day:%a}  {label}")


@sla_group.group("targets", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def targets(ctx: click.Context, as_json: bool) -> None:
    """Show the service level targets new records get; `set` saves new ones."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(_show_targets, as_json=as_json)


@pass_itsm
def _show_targets(itsm, as_json: bool) -> None:
    with itsm.Session() as session:
        data = service_levels.current_targets(itsm, session)
    if as_json:
        emit_json(data)
        return
    origin = f"version {data['version']} saved by {data['saved_by']}" if data["version"] \
        else "itsm.toml [sla]"
    click.echo(f"calendar {data['calendar']}, warning at {round(data['warn_at'] * 100)}% "
               f"({origin})")
    for metric in data["metrics"]:
        row = data["targets"][metric]
        click.echo(f"  {metric:<12} " + "  ".join(
            f"P{p} {row[p] if row[p] is not None else '-'}" for p in sorted(row)))


@targets.command("set")
@click.option("--calendar", help="calendar the clocks run on (default: unchanged)")
@click.option("--warn-at", help="warning threshold, percent of the target (default: "
              "unchanged)")
@click.option("--target", "given", multiple=True, metavar="METRIC.PN=MINUTES",
              help="e.g. resolution.p1=240; MINUTES empty removes the target (repeatable)")
@pass_itsm
def targets_set(itsm, calendar: str | None, warn_at: str | None,
                given: tuple[str, ...]) -> None:
    """Save new targets, starting from the current ones; they apply to new records."""
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            now = service_levels.current_targets(itsm, service.session)
            table = {m: {str(p): v for p, v in row.items()}
                     for m, row in now["targets"].items()}
            for item in given:
                key, sep, minutes = item.partition("=")
                metric, dot, priority = key.strip().partition(".p")
                if not sep or not dot or metric not in table or priority not in table[metric]:
                    raise ItsmError(f"--target {item!r}: write METRIC.PN=MINUTES with METRIC "
                                    f"one of {', '.join(table)} and N 1 to 5")
                table[metric][priority] = minutes.strip()
            service_levels.save_targets(
                service, calendar=calendar if calendar is not None else now["calendar"],
                warn_at=warn_at if warn_at is not None else now["warn_at"], targets=table)
    except ItsmError as exc:
        raise _one_line(exc) from None
    click.echo("saved service levels; " + service_levels.APPLIES_TO_NEW.lower())
