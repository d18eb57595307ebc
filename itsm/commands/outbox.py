"""``itsm outbox list|retry|purge``: look into the notification outbox and act on it.

A delivery is ``pending`` (due at ``next_attempt_at``), ``delivered`` or ``dead`` (it
failed ``outbox.max_attempts`` times). "failed" in this command means pending after at
least one failed attempt: waiting for its backoff to pass.
"""

from __future__ import annotations

from datetime import timedelta

import click
from sqlalchemy import delete, or_, select

from itsm.core.cli_kit import emit_json, pass_itsm
from itsm.core.models import Delivery, Event, utcnow

STATES = ("pending", "failed", "dead", "delivered")


@click.group("outbox")
def outbox() -> None:
    """Notification deliveries: list, retry the dead, purge the old."""


def _row(delivery: Delivery, event: Event) -> dict:
    record = (event.payload or {}).get("record") or {}
    return {"id": delivery.id, "event_id": event.id, "event": event.name,
            "record": record.get("number"), "channel": delivery.channel,
            "recipient": delivery.recipient, "state": delivery.state,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at.isoformat(),
            "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at
            else None, "last_error": delivery.last_error}


@outbox.command("list")
@click.option("--state", type=click.Choice(STATES),
              help="failed: pending after at least one failed attempt")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True)
@pass_itsm
def outbox_list(itsm, state: str | None, limit: int, as_json: bool) -> None:
    """List deliveries, newest first, with their attempts and last error."""
    query = select(Delivery, Event).join(Event, Event.id == Delivery.event_id)
    if state == "failed":
        query = query.where(Delivery.state == "pending", Delivery.attempts > 0)
    elif state:
        query = query.where(Delivery.state == state)
    with itsm.Session() as session:
        rows = [_row(d, e) for d, e in session.execute(
            query.order_by(Delivery.id.desc()).limit(limit))]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no deliveries" + (f" in state {state}" if state else ""))
    for row in rows:
        error = row["last_error"].splitlines()[0][:60] if row["last_error"] else ""
        click.echo(f"{row['id']:>6} {row['event']:<22} {row['record'] or '-':<12} "
                   f"{row['channel']:<8} {row['recipient'][:32]:<32} {row['state']:<9} "
                   f"{row['attempts']:>2} {error}")
    click.echo(", ".join(f"{k} {v}" for k, v in sorted(itsm.outbox.backlog().items())),
               err=True)


@outbox.command("retry")
@click.option("--id", "ids", type=int, multiple=True, help="a delivery id (repeatable)")
@click.option("--dead", is_flag=True, help="every dead delivery")
@pass_itsm
def outbox_retry(itsm, ids: tuple[int, ...], dead: bool) -> None:
    """Make deliveries due now with a fresh set of attempts (dead ones come back)."""
    if not ids and not dead:
        raise click.UsageError("say which: --id N (repeatable) or --dead")
    from itsm.core.admin.kit import record_admin_audit
    from itsm.core.auth import Actor
    from itsm.core.notify import retry_deliveries

    with itsm.Session() as session:
        count = retry_deliveries(session, ids, dead=dead)
        record_admin_audit(session, Actor.system(), "outbox.retry", "outbox", None,
                           {"ids": list(ids), "dead": dead, "count": count})
        session.commit()
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} due now "
               "(the worker sends them on its next cycle)")


@outbox.command("purge")
@click.option("--older-than", "days", type=click.IntRange(0, None), required=True,
              help="days: delivered ones by delivery time, dead ones by event time")
@click.option("--yes", is_flag=True, help="do not ask")
@pass_itsm
def outbox_purge(itsm, days: int, yes: bool) -> None:
    """Delete delivered and dead deliveries older than --older-than days."""
    cutoff = utcnow() - timedelta(days=days)
    old_events = select(Event.id).where(Event.created_at < cutoff)
    condition = or_(
        (Delivery.state == "delivered") & (Delivery.delivered_at < cutoff),
        (Delivery.state == "dead") & Delivery.event_id.in_(old_events))
    with itsm.Session() as session:
        ids = session.scalars(select(Delivery.id).where(condition)).all()
        if not ids:
            click.echo("nothing to purge")
            return
        if not yes:
            click.confirm(f"delete {len(ids)} delivered or dead deliveries older than "
                          f"{days} days?", abort=True)
        session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
        session.commit()
    click.echo(f"purged {len(ids)} deliveries")
