"""Inbound e-mail: mails become records and comments (``itsm mail ingest|listen``).

An MTA pipes each message to ``itsm mail ingest`` (like Request Tracker's mailgate), or
the optional SMTP listener (``itsm mail listen``, aiosmtpd) receives it. A new mail opens
a record of the configured type for the sender's agency; a reply whose subject holds a
record number (``[INC0000042]``) becomes a public comment on it; attachments are kept.
Everything is written through the record service as the sender, so permissions apply.
Auto-replies (RFC 3834 headers or their usual subjects), bulk and list mail and itsm's
own notifications are ignored; a Message-ID already ingested is ignored too.

The From header proves nothing, so a reply becomes a comment only from an address on
the record that is verified (a reply token, a trusted MTA's Authentication-Results, a
DKIM signature), and IT staff open records by mail only when verified; the rest is
rejected or held for review, and the sender gets a bounce that says why (see
``service.py`` and ``trust.py``).

Settings (``[plugins.mailgate]`` in itsm.toml, or ``ITSM_PLUGINS_MAILGATE_<KEY>``):
``record_type`` (default ``incident``), ``unknown_senders`` (``reject`` or ``guest``:
create a requester for the sender), ``guest_agency`` (agency code for guests, optional),
``listen_host``/``listen_port`` for the SMTP listener, ``max_bytes`` (largest message),
``untrusted`` (``reject`` or ``hold``), ``trusted_authserv_ids`` (the receiving MTA's
authserv-id, whose Authentication-Results are believed), ``dkim_verify``, ``bounces``,
``rate_limit`` mails per ``rate_window_seconds`` and sender, ``max_depth`` (MIME nesting).
"""

from __future__ import annotations

from itsm.plugin import Plugin, hookimpl

plugin = Plugin(
    name="mailgate",
    version="0.1.0",
    description="Inbound e-mail: new mails open records, replies become comments.",
    requires_itsm=">=0.1,<1",
    settings={"record_type": "incident", "unknown_senders": "reject", "guest_agency": "",
              "listen_host": "127.0.0.1", "listen_port": 2525,
              "max_bytes": 25 * 1024 * 1024,
              # Sender trust: what happens to mail whose sender is not verified, whose
              # Authentication-Results are believed, whether DKIM is checked here.
              "untrusted": "reject", "trusted_authserv_ids": [], "dkim_verify": True,
              "bounces": True, "rate_limit": 20, "rate_window_seconds": 600.0,
              "max_depth": 50},
)


@hookimpl
def itsm_cli_commands():
    from itsm.adapters.mailgate.cli import mail_group

    return [mail_group]


@hookimpl
def itsm_notification_recipients(event):
    """A refused or held mail's bounce goes to its sender, by e-mail."""
    from itsm.adapters.mailgate.service import BOUNCE_EVENTS
    from itsm.plugin import Recipient

    to = event.payload.get("to") if event.name in BOUNCE_EVENTS else None
    return [Recipient("email", str(to))] if to else None
