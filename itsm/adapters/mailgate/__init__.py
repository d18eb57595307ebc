"""Inbound e-mail: mails become records and comments (``itsm mail ingest|listen``).

An MTA pipes each message to ``itsm mail ingest`` (like Request Tracker's mailgate), or
the optional SMTP listener (``itsm mail listen``, aiosmtpd) receives it. A new mail opens
a record of the configured type for the sender's agency; a reply whose subject holds a
record number (``[INC0000042]``) becomes a public comment on it; attachments are kept.
Everything is written through the record service as the sender, so permissions apply.
Auto-replies, bulk and list mail and itsm's own notifications are ignored; a Message-ID
already ingested is ignored too.

Settings (``[plugins.mailgate]`` in itsm.toml, or ``ITSM_PLUGINS_MAILGATE_<KEY>``):
``record_type`` (default ``incident``), ``unknown_senders`` (``reject`` or ``guest``:
create a requester for the sender), ``guest_agency`` (agency code for guests, optional),
``listen_host``/``listen_port`` for the SMTP listener, ``max_bytes`` (largest message).
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
              "max_bytes": 25 * 1024 * 1024},
)


@hookimpl
def itsm_cli_commands():
    from itsm.adapters.mailgate.cli import mail_group

    return [mail_group]
