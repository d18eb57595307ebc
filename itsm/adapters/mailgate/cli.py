"""``itsm mail``: ingest one message from stdin (an MTA pipe) or run the SMTP listener."""

from __future__ import annotations

import sys
import time

import click

from itsm.adapters.mailgate.service import (
    MailDeferred,
    MailRejected,
    discard,
    held_messages,
    ingest,
    release,
)
from itsm.plugin import ItsmError, pass_itsm

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and delivers it again later


class Deferred(click.ClickException):
    exit_code = EX_TEMPFAIL


@click.group("mail")
def mail_group() -> None:
    """Inbound e-mail: turn mails into records and comments."""


@mail_group.command("ingest")
@click.option("--file", "path", type=click.Path(dir_okay=False, exists=True),
              help="read the message from this file instead of stdin")
@pass_itsm
def mail_ingest(itsm, path: str | None) -> None:
    """Read one RFC 822 message (stdin, for an MTA pipe) and open or comment a record.

    Exit status 0 when the message was taken, ignored (auto-replies, bulk mail, our own
    mails, a message already ingested), held for review, or refused with a bounce that
    itsm mails to the sender; 1 with one line when it was refused and itsm could not
    tell the sender (the MTA bounces it); 75 when the sender is over the rate limit (the
    MTA tries again later).
    """
    limit = int(itsm.plugin_settings("mailgate").get("max_bytes") or 0)
    if path:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1 if limit else -1)
    else:
        stream = getattr(sys.stdin, "buffer", sys.stdin)
        raw = stream.read(limit + 1) if limit else stream.read()
    if not raw.strip():
        raise click.ClickException("no message on stdin")
    try:
        outcome = ingest(itsm, raw)
    except MailRejected as exc:
        raise click.ClickException(f"rejected: {exc.message}") from None
    except MailDeferred as exc:
        raise Deferred(f"deferred: {exc.message}") from None
    except ItsmError as exc:  # the record service refused the values
        raise click.ClickException(f"refused: {exc.message}") from None
    click.echo(outcome.line())


@mail_group.command("held")
@pass_itsm
def mail_held(itsm) -> None:
    """List the messages held for review (setting untrusted = hold)."""
    rows = held_messages(itsm)
    if not rows:
        click.echo("no held messages")
    for held in rows:
        click.echo(f"{held.id}\t{held.created_at:%Y-%m-%d %H:%M}\t{held.sender}\t"
                   f"{held.subject}\n\t{held.reason}")


@mail_group.command("release")
@click.argument("held_id", type=click.IntRange(min=1))
@pass_itsm
def mail_release(itsm, held_id: int) -> None:
    """Take a held message as if its sender had been verified (you checked it)."""
    try:
        outcome = release(itsm, held_id)
    except MailRejected as exc:
        raise click.ClickException(f"rejected: {exc.message}") from None
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(outcome.line())


@mail_group.command("discard")
@click.argument("held_id", type=click.IntRange(min=1))
@pass_itsm
def mail_discard(itsm, held_id: int) -> None:
    """Drop a held message without taking it."""
    try:
        discard(itsm, held_id)
    except ItsmError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"discarded held message {held_id}")


@mail_group.command("listen")
@click.option("--host", default=None, help="address to listen on (setting listen_host)")
@click.option("--port", default=None, type=int, help="port (setting listen_port)")
@pass_itsm
def mail_listen(itsm, host: str | None, port: int | None) -> None:
    """Run an SMTP server that ingests every message it receives, until interrupted."""
    try:
        from itsm.adapters.mailgate.listener import start_listener
    except ImportError as exc:
        raise click.ClickException(f"the SMTP listener needs aiosmtpd ({exc}): "
                                   "pip install 'aiosmtpd>=1.4,<2'") from None

    settings = itsm.plugin_settings("mailgate")
    host = host or str(settings["listen_host"])
    port = port or int(settings["listen_port"])
    try:
        controller = start_listener(itsm.app, host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    click.echo(f"listening for mail on {host}:{port} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    click.echo("stopped", err=True)
    sys.stdout.flush()
