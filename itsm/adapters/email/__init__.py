"""E-mail notifications over SMTP: the "email" channel, templates and user preferences.

Process plugins name the channel ``email`` with an e-mail address as recipient (the
incident plugin's ``notify_channels`` default). This plugin renders each event from
``templates/email/`` (text and HTML), threads the mails of one record together and sends
them through the configured SMTP server (STARTTLS or implicit TLS, optional login).

Per-user preferences (``notification_preference``): a user turns events off (or back
on) for a channel, by exact name or a wildcard (``record.*``, ``*``); the most specific
rule wins. They are applied when the mail is due: a mail a user does not want counts as
delivered and is not sent. Users edit theirs with ``GET/PUT
/api/v1/notification-preferences``; admins with ``itsm email preferences``.

Settings (``[plugins.email]`` in itsm.toml, or ``ITSM_PLUGINS_EMAIL_<KEY>``): ``host``,
``port``, ``starttls``, ``ssl`` (implicit TLS, port 465), ``username``, ``password``,
``sender``, ``timeout`` (seconds), ``base_url`` (for links to records),
``verify_tls``, ``ca_file`` (a private CA), ``templates_path`` (templates that override
the built-in ones), ``message_id_domain`` (default: the sender's domain),
``reply_to`` (where replies go, where the inbound mail gateway receives; default: the
sender) and ``reply_to_token`` (put the reply token in Reply-To as ``local+token@``;
turn off when the mail server does not deliver such sub-addresses: the token in the
Message-ID still serves replies that keep In-Reply-To).
"""

from __future__ import annotations

from itsm.plugin import Plugin, hookimpl

plugin = Plugin(
    name="email",
    version="0.1.0",
    description="E-mail notifications over SMTP, threaded by record, with user preferences.",
    requires_itsm=">=0.1,<1",
    settings={"host": "localhost", "port": 25, "starttls": False, "ssl": False,
              "username": "", "password": "", "sender": "itsm <itsm@localhost>",
              "timeout": 10.0, "base_url": "", "verify_tls": True, "ca_file": "",
              "templates_path": "", "message_id_domain": "", "reply_to": "",
              "reply_to_token": True},
)


@hookimpl
def itsm_notification_channels():
    from itsm.adapters.email.channel import EmailChannel

    return [EmailChannel()]


@hookimpl
def itsm_blueprints():
    from itsm.adapters.email import admin
    from itsm.adapters.email.api import bp

    return [bp, admin.bp]


@hookimpl
def itsm_admin_pages():
    """The mail templates, with a preview of each event's mail."""
    from itsm.adapters.email.admin import PAGES

    return list(PAGES)


@hookimpl
def itsm_cli_commands():
    from itsm.adapters.email.cli import email_group

    return [email_group]
