"""``itsm transitions …``: the readiness dashboard, one transition's gate, reminders and
the checklist templates from the command line (as the system)."""

from __future__ import annotations

import json

import click

from itsm.plugin import Actor, ItsmError, emit_json, pass_itsm, utcnow
from itsm.plugins.transition_gate import gate as gating
from itsm.plugins.transition_gate import service as gate


def _fail(exc: ItsmError) -> click.ClickException:
    detail = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                       for k, v in (exc.fields or {}).items())
    return click.ClickException(exc.message if not detail or detail in exc.message
                                else f"{exc.message} ({detail})")


@click.group("transitions")
def transitions_group() -> None:
    """Service transitions: readiness, the gate, reminders, checklist templates."""


@transitions_group.command("list")
@click.option("--all", "include", is_flag=True, help="closed and cancelled ones too")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@pass_itsm
def list_command(itsm, include: bool, as_json: bool) -> None:
    """The readiness dashboard: % complete, late deliverables, next milestone, gate."""
    from itsm.plugins.transition_gate import views

    with itsm.unit_of_work(Actor.system()) as svc:
        items = views.dashboard(svc, include_closed=include)
    if as_json:
        emit_json({"items": items})
        return
    if not items:
        click.echo("no service transitions")
        return
    click.echo(f"{'NUMBER':<11} {'GO-LIVE':<10} {'DONE':>4} {'LATE':>4} {'GATE':<8} SERVICE")
    for t in items:
        click.echo(f"{t['number']:<11} {t['go_live_date'] or '':<10} "
                   f"{t['percent_complete']:>3}% {len(t['late_deliverables']):>4} "
                   f"{t['gate']:<8} {t['service']}")


@transitions_group.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="the overview as JSON (as the API)")
@pass_itsm
def show_command(itsm, number: str, as_json: bool) -> None:
    """One transition's gate: exactly what is missing before go-live."""
    from itsm.plugins.transition_gate import views

    try:
        with itsm.unit_of_work(Actor.system()) as svc:
            data = views.overview(svc, gate.get_transition(svc, number))
    except ItsmError as exc:
        raise _fail(exc) from None
    if as_json:
        emit_json(data)
        return
    click.echo(f"{data['number']} {data['title']} — {data['service']}, gate {data['gate']}, "
               f"{data['percent_complete']}% complete")
    for reason in data["missing_items"]:
        click.echo(f"  missing: {reason}")
    for incident in data["early_life_incidents"]:
        click.echo(f"  early-life incident: {incident['number']} {incident['title']}")


@transitions_group.command("remind")
@pass_itsm
def remind_command(itsm) -> None:
    """Send the due-date reminders now (the worker does it on every cycle)."""
    click.echo(f"{gating.send_reminders(utcnow())} reminder(s) sent")


@transitions_group.command("templates")
@click.option("--load", "path", type=click.Path(exists=True, dir_okay=False),
              help="create or replace a template from a JSON file "
                   '({"name": ..., "items": [{"title": ...}]})')
@pass_itsm
def templates_command(itsm, path: str | None) -> None:
    """List the checklist templates, or load one from a JSON file."""
    from itsm.plugins.transition_gate import plan

    try:
        with itsm.unit_of_work(Actor.system()) as svc:
            if path:
                try:
                    with open(path, encoding="utf-8") as handle:
                        data = json.load(handle)
                except (OSError, ValueError) as exc:
                    raise click.ClickException(f"{path}: not a JSON file ({exc})") from None
                plan.save_template(svc, data)
            rows = [plan.template_dict(t) for t in plan.templates(svc.session)]
    except ItsmError as exc:
        raise _fail(exc) from None
    for row in rows:
        state = "" if row["active"] else " (inactive)"
        click.echo(f"{row['name']}{state}: {len(row['items'])} deliverables")
