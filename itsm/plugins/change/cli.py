"""``itsm changes ...``: the deployment gate, calendar, report and admin catalogs."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import click

from itsm.plugin import Actor, ItsmError, emit_json, pass_itsm
from itsm.plugins.change import catalogs, reports


def _fail(exc: ItsmError) -> click.ClickException:
    detail = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                       for k, v in (exc.fields or {}).items())
    message = exc.message if not detail or detail in exc.message else f"{exc.message} ({detail})"
    return click.ClickException(message)


@click.group("changes")
def changes_group() -> None:
    """Change management: deployment gate, calendar, report, admin catalogs."""


@changes_group.command("gate")
@click.option("--service", "service_name", required=True, help="the service to deploy")
@click.option("--environment", required=True, help="the environment deployed to")
@click.option("--json", "as_json", is_flag=True, help="the answer as JSON (as the API)")
@pass_itsm
def gate(itsm, service_name: str, environment: str, as_json: bool) -> None:
    """May SERVICE be deployed to ENVIRONMENT now? Exit 0 allowed, 1 refused.

    For a pipeline step; the call is recorded on the change.
    """
    from itsm.plugins.change import gate as deploy_gate

    try:
        with itsm.unit_of_work(Actor.system()) as service:
            answer = deploy_gate.gate(service, service_name.strip(), environment.strip())
    except ItsmError as exc:
        raise _fail(exc) from None
    if as_json:
        emit_json(answer)
    else:
        click.echo(("allowed" if answer["allowed"] else "refused")
                   + f": {answer['service']} to {answer['environment']}")
        for reason in answer["reasons"]:
            click.echo(f"  - {reason}")
    sys.exit(0 if answer["allowed"] else 1)


def _date(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date such as 2026-12-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@changes_group.command("calendar")
@click.option("--from", "start", help="first day (ISO date; default today)")
@click.option("--to", "end", help="end (ISO date; default 31 days after --from)")
@click.option("--service", "service_name", help="only this service")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def calendar(itsm, start: str | None, end: str | None, service_name: str | None,
             as_json: bool) -> None:
    """Changes planned in a period, with freeze windows and conflicts."""
    from itsm.plugins.change import schedule

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = _date(start, today)
    last = _date(end, first + timedelta(days=31))
    if last <= first:
        raise click.BadParameter("--to must come after --from")
    try:
        with itsm.unit_of_work(Actor.system()) as service:
            data = schedule.calendar(service, first, last, service_name)
    except ItsmError as exc:
        raise _fail(exc) from None
    if as_json:
        emit_json(data)
        return
    for window in data["freeze_windows"]:
        click.echo(f"FREEZE {window['starts_at'][:16]} - {window['ends_at'][:16]} "
                   f"{window['name']} ({', '.join(window['services']) or 'all services'})")
    if not data["changes"]:
        click.echo("no change planned in this period")
    for item in data["changes"]:
        notes = []
        if item["conflicts"]:
            notes.append("conflicts with " + ", ".join(item["conflicts"]))
        if item["freeze"]:
            notes.append("in freeze " + ", ".join(item["freeze"]))
        click.echo(f"{item['planned_start'][:16]} - {item['planned_end'][:16]} "
                   f"{item['number']} [{item['state']}] {item['title']}"
                   + (f"  ! {'; '.join(notes)}" if notes else ""))


@changes_group.command("report")
@click.option("--days", default=reports.DEFAULT_DAYS, show_default=True,
              type=click.IntRange(1, reports.MAX_DAYS), help="the period up to now")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON (as the API)")
@pass_itsm
def report(itsm, days: int, as_json: bool) -> None:
    """Success rate, emergency change share and changes causing incidents."""
    try:
        data = reports.report_for(Actor.system(), days)
    except ItsmError as exc:
        raise _fail(exc) from None
    if as_json:
        emit_json(data)
        return
    click.echo(reports.text_report(data))


def _catalog_group(name: str, cat: catalogs.Catalog) -> click.Group:
    group = click.Group(name, help=f"The {cat.label}s (admin catalog). Entries are JSON "
                                   f"objects with the fields of POST /api/v1/changes/{name}.")

    @group.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @pass_itsm
    def list_(itsm, as_json: bool) -> None:
        """List the entries."""
        with itsm.unit_of_work(Actor.system()) as service:
            items = catalogs.list_rows(service, name)
        if as_json:
            emit_json(items)
            return
        if not items:
            click.echo(f"no {cat.label}s")
        for item in items:
            rest = {k: v for k, v in item.items() if k not in ("id", cat.key)}
            click.echo(f"{item['id']:>4} {item[cat.key]}  {json.dumps(rest, default=str)}")

    @group.command("add")
    @click.argument("entry")
    @pass_itsm
    def add(itsm, entry: str) -> None:
        """Add an entry given as a JSON object (or - to read it from stdin)."""
        raw = click.get_text_stream("stdin").read() if entry == "-" else entry
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise click.ClickException(f"the entry is not valid JSON: {exc}") from None
        try:
            with itsm.unit_of_work(Actor.system()) as service:
                out = catalogs.add(service, name, data)
        except ItsmError as exc:
            raise _fail(exc) from None
        click.echo(f"added {cat.label} {out['id']} {out[cat.key]}")

    @group.command("update")
    @click.argument("ident")
    @click.argument("fields")
    @pass_itsm
    def update(itsm, ident: str, fields: str) -> None:
        """Change fields (a JSON object) of the entry IDENT (id or name)."""
        try:
            data = json.loads(fields)
        except ValueError as exc:
            raise click.ClickException(f"the fields are not valid JSON: {exc}") from None
        try:
            with itsm.unit_of_work(Actor.system()) as service:
                out = catalogs.update(service, name, ident, data)
        except ItsmError as exc:
            raise _fail(exc) from None
        click.echo(f"updated {cat.label} {out['id']} {out[cat.key]}")

    @group.command("remove")
    @click.argument("ident")
    @pass_itsm
    def remove(itsm, ident: str) -> None:
        """Remove the entry IDENT (id or name)."""
        try:
            with itsm.unit_of_work(Actor.system()) as service:
                catalogs.remove(service, name, ident)
        except ItsmError as exc:
            raise _fail(exc) from None
        click.echo(f"removed {cat.label} {ident}")

    return group


for _name, _catalog in catalogs.CATALOGS.items():
    changes_group.add_command(_catalog_group(_name, _catalog))
