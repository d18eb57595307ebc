"""``itsm incident ...``: the incident plugin's commands."""

from __future__ import annotations

import click

from itsm.plugin import Actor, emit_json, pass_itsm, sweep_sla_clocks, utcnow


@click.group()
def incident() -> None:
    """Incident management: escalations, auto-close, reports."""


@incident.command("housekeeping")
@pass_itsm
def housekeeping(itsm) -> None:
    """Take due escalation steps and close quiet resolved incidents now."""
    from itsm.plugins.incident.hooks import auto_close, escalate

    now = utcnow()
    sweep_sla_clocks(itsm, now)
    escalated = escalate(now)
    closed = auto_close(now)
    click.echo(f"escalation steps taken: {escalated}; incidents closed: {closed}")


@incident.command("breaching")
@click.option("--within", default=120, show_default=True, type=click.IntRange(1, 10080),
              help="minutes ahead")
@click.option("--group", help="only this assignment group")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def breaching(itsm, within: int, group: str | None, as_json: bool) -> None:
    """Open incidents whose next SLA target falls due soon (breached ones first): the
    console's "Breaching soon" view."""
    from itsm.plugins.incident.api import breaching_soon

    args = {"within": str(within), **({"group": group} if group else {})}
    items = breaching_soon(Actor.system(), args)
    if as_json:
        emit_json(items)
        return
    if not items:
        click.echo(f"nothing falls due within {within} minutes")
    for item in items:  # "breached 13 d 19 h ago" rather than "-19892.6 min"
        click.echo(f"{item['number']:<12} P{item['priority'] or '-'} "
                   f"{item['metric']:<11} {item['left']:<24} "
                   f"{item['group'] or '-':<20} {item['title']}")


@incident.command("report")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650),
              help="the period: this many days up to now")
@click.option("--group", help="only this assignment group")
@click.option("--json", "as_json", is_flag=True, help="the report as JSON (as the API)")
@pass_itsm
def report(itsm, days: int, group: str | None, as_json: bool) -> None:
    """Incident counts, mean times, SLA compliance, backlog and weekly trends."""
    from itsm.plugin import ItsmError
    from itsm.plugins.incident.reports import report_for, text_report

    try:
        data = report_for(Actor.system(), days, group)
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        emit_json(data)
        return
    click.echo(text_report(data))


@incident.command("rules")
@click.option("--set", "name", type=click.Choice(("categories", "priority_matrix",
                                                  "routing")),
              help="save this rule from --value (what the admin page saves)")
@click.option("--value", help='the rule as JSON, e.g. \'{"network": "Network"}\' for routing')
@pass_itsm
def rules_command(itsm, name: str | None, value: str | None) -> None:
    """Show the categories, priority matrix and routing new incidents follow (JSON), or
    save one of them."""
    import json

    from itsm.plugin import ItsmError
    from itsm.plugins.incident import rules

    if name is not None:
        try:
            data = json.loads(value or "")
        except ValueError:
            raise ItsmError(f"--value for {name} is not JSON: e.g. --value "
                            "'{\"network\": [\"lan\", \"wan\"]}'") from None
        try:
            with itsm.unit_of_work(Actor.system()) as svc:
                rules.save_rule(svc, name, data)
        except ItsmError as exc:
            details = "; ".join(f"{k}: {v[0] if isinstance(v, list) else v}"
                                for k, v in exc.fields.items())
            raise ItsmError(f"{exc.message}: {details}" if details else exc.message) \
                from None
        click.echo(f"saved {name}; new incidents follow it")
        return
    current = rules.settings()
    emit_json({key: current[key] for key in rules.EDITABLE})
