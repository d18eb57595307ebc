"""Webhooks: every event matching a subscription POSTed as signed JSON to its URL.

Admins manage subscriptions (``GET/POST /api/v1/webhooks``, ``DELETE
/api/v1/webhooks/<id>``, ``itsm webhooks add|list|remove``); each names the events it
wants (``record.created``, ``record.*``, ``*``), its URL, a secret for the
``X-Itsm-Signature`` HMAC and a format: ``json`` (the documented ``itsm.event/1``
schema, see :mod:`itsm.adapters.webhooks.delivery`) or ``slack`` (``{"text": ...}``, for
Slack and Microsoft Teams incoming webhooks).

Deliveries go through the core's outbox, after the user's change committed: a receiver
that is down is retried with exponential backoff and never slows a request.

Settings (``[plugins.webhooks]``): ``timeout`` (seconds per POST), ``max_payload_bytes``
(larger events are sent with ``"data": {"truncated": true}``).
"""

from __future__ import annotations

from itsm.plugin import EventMessage, Plugin, Recipient, hookimpl

plugin = Plugin(
    name="webhooks",
    version="0.1.0",
    description="Signed JSON webhooks (and Slack/Teams messages) for subscribed events.",
    requires_itsm=">=0.1,<1",
    settings={"timeout": 10.0, "max_payload_bytes": 65536},
)


@hookimpl
def itsm_notification_channels():
    from itsm.adapters.webhooks.delivery import WebhookChannel

    return [WebhookChannel()]


@hookimpl
def itsm_notification_recipients(event: EventMessage, session) -> list[Recipient]:
    """One delivery per active subscription whose patterns match the event."""
    from itsm.adapters.webhooks.delivery import CHANNEL
    from itsm.adapters.webhooks.subscriptions import matching

    return [Recipient(CHANNEL, str(s.id)) for s in matching(session, event.name)]


@hookimpl
def itsm_blueprints():
    from itsm.adapters.webhooks import admin
    from itsm.adapters.webhooks.api import bp

    return [bp, admin.bp]


@hookimpl
def itsm_admin_pages():
    """The subscriptions, with a preview of what each receives."""
    from itsm.adapters.webhooks.admin import PAGES

    return list(PAGES)


@hookimpl
def itsm_cli_commands():
    from itsm.adapters.webhooks.cli import webhooks_group

    return [webhooks_group]
