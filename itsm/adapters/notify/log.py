"""Notification channel "log": every event as one line in the itsm.notify log.

Useful on a fresh install and in development; real channels (e-mail, webhooks) come
from their own plugins.
"""

from __future__ import annotations

import logging

from itsm.plugin import EventMessage, Plugin, Recipient, hookimpl

plugin = Plugin(
    name="notify_log",
    version="0.1.0",
    description="Writes every event to the itsm.notify log (a notification channel).",
    requires_itsm=">=0.1,<1",
    settings={"events": "*"},
)

log = logging.getLogger("itsm.notify.log")


class LogChannel:
    name = "log"

    def deliver(self, message: EventMessage, recipient: Recipient) -> None:
        record = message.record or {}
        log.info("event %s %s %s by %s", message.id, message.name,
                 record.get("number", "-"), message.actor or "system")


@hookimpl
def itsm_notification_channels() -> list[LogChannel]:
    return [LogChannel()]


@hookimpl
def itsm_notification_recipients(event: EventMessage) -> list[Recipient]:
    from itsm.plugin import current_itsm

    wanted = current_itsm().plugin_settings("notify_log")["events"]
    names = {n.strip() for n in str(wanted).split(",")}
    if "*" in names or event.name in names:
        return [Recipient("log", "itsm.notify")]
    return []
