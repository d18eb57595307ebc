"""``itsm email``: send a test mail, show and change a user's preferences."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import click

from itsm.adapters.email import preferences
from itsm.adapters.email.channel import build_message, send
from itsm.plugin import EventMessage, ItsmError, emit_json, pass_itsm, user_by_email


@click.group("email")
def email_group() -> None:
    """E-mail notifications: test the SMTP settings, user preferences."""


@email_group.command("test")
@click.argument("address")
@pass_itsm
def email_test(itsm, address: str) -> None:
    """Send a test mail to ADDRESS now, with the configured SMTP settings."""
    settings = itsm.plugin_settings("email")
    message = EventMessage(id=0, name="itsm.test", record=None, actor=None,
                           payload={"body": "This is a test mail from itsm."},
                           created_at=datetime.now(UTC))
    try:
        send(build_message(message, address, settings, None), settings)
    except Exception as exc:  # any failure is one line naming the server
        raise ItsmError(f"mail to {address} failed via {settings['host']}:{settings['port']}: "
                        f"{type(exc).__name__}: {exc}") from None
    click.echo(f"sent a test mail to {address} via {settings['host']}:{settings['port']}")


def _check(event: str) -> str:
    if not re.match(preferences.PATTERN, event):
        raise click.BadParameter(f"{event!r}: an event name, a prefix like record.* or *")
    return event


@email_group.command("preferences")
@click.argument("user")
@click.option("--off", "off", multiple=True, help="turn this event (or record.*, *) off")
@click.option("--on", "on", multiple=True, help="turn this event (or pattern) back on")
@click.option("--channel", default="email", show_default=True)
@click.option("--clear", is_flag=True, help="remove every rule first")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def email_preferences(itsm, user: str, off, on, channel: str, clear: bool,
                      as_json: bool) -> None:
    """Show (and with --off/--on change) the notification preferences of USER (e-mail)."""
    with itsm.Session() as session:
        account = user_by_email(session, user)
        if clear:
            preferences.replace(session, account.id, [])
        for event in off:
            preferences.set_rule(session, account.id, _check(event), False, channel)
        for event in on:
            preferences.set_rule(session, account.id, _check(event), True, channel)
        session.commit()
        rules = preferences.rules_of(session, account.id)
    if as_json:
        emit_json(rules)
        return
    if not rules:
        click.echo(f"{account.email}: every event on every channel (no rules)")
    for rule in rules:
        click.echo(f"{rule['channel']:<10} {rule['event']:<30} "
                   f"{'on' if rule['enabled'] else 'off'}")
