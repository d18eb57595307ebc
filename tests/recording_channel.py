"""A test plugin: a slow notification channel that appends each delivery to a file."""

from __future__ import annotations

import os
import time

from itsm import Plugin, hookimpl
from itsm.core.notify import EventMessage, Recipient

plugin = Plugin(name="recorder", version="1.0.0", description="Records deliveries.",
                requires_itsm=">=0.1,<1")
RECIPIENTS = ("ops-a", "ops-b", "ops-c")


class RecordingChannel:
    name = "recorder"

    def deliver(self, message: EventMessage, recipient: Recipient) -> None:
        time.sleep(0.02)  # slow enough that two workers drain at the same time
        with open(os.environ["TEST_RECORD_FILE"], "a") as out:
            out.write(f"{message.id} {recipient.address} {os.getpid()}\n")


@hookimpl
def itsm_notification_channels():
    return [RecordingChannel()]


@hookimpl
def itsm_notification_recipients(event: EventMessage):
    return [Recipient("recorder", name) for name in RECIPIENTS]
