"""``itsm webhooks add|list|remove``."""

from __future__ import annotations

import click

from itsm.adapters.webhooks import subscriptions
from itsm.plugin import emit_json, pass_itsm


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook subscriptions: URLs told of events, signed with a secret."""


@webhooks_group.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, required=True,
              help="event name, prefix like record.* or * (repeatable)")
@click.option("--secret", help="HMAC key (16+ characters); generated when omitted")
@click.option("--format", "fmt", type=click.Choice(subscriptions.FORMATS), default="json",
              show_default=True, help="json: itsm.event/1; slack: {text} for Slack/Teams")
@click.option("--description", default="")
@pass_itsm
def webhooks_add(itsm, url, events, secret, fmt, description) -> None:
    """Subscribe URL to events; prints the secret once."""
    with itsm.Session() as session:
        subscription, secret = subscriptions.create(
            session, url=url, events=list(events), secret=secret, fmt=fmt,
            description=description, created_by="cli")
        session.commit()
        click.echo(f"webhook {subscription.id} added: {url} "
                   f"({', '.join(subscription.patterns)}, {fmt})")
    click.echo(f"secret (shown once): {secret}")


@webhooks_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def webhooks_list(itsm, as_json: bool) -> None:
    """List subscriptions (secrets by their first characters only)."""
    with itsm.Session() as session:
        rows = [subscriptions.to_dict(s) for s in subscriptions.listed(session)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no webhooks: itsm webhooks add URL --event '*'")
    for row in rows:
        click.echo(f"{row['id']:>4} {row['url']:<50} {','.join(row['events']):<24} "
                   f"{row['format']:<6} {row['secret_prefix']}…"
                   f"{'' if row['active'] else ' (inactive)'}")


@webhooks_group.command("remove")
@click.argument("subscription_id", type=int)
@pass_itsm
def webhooks_remove(itsm, subscription_id: int) -> None:
    """Remove subscription SUBSCRIPTION_ID; its pending deliveries are dropped."""
    with itsm.Session() as session:
        subscription = subscriptions.remove(session, subscription_id)
        session.commit()
    click.echo(f"webhook {subscription_id} removed ({subscription.url})")
