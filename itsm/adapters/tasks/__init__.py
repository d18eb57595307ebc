"""Background work on Celery: the same jobs as ``itsm worker``, spread over many workers.

Enable the plugin and name a broker (Redis or RabbitMQ) in ``itsm.toml``::

    [plugins.tasks]
    broker_url = "redis://127.0.0.1:6379/0"     # or "amqp://guest:guest@127.0.0.1:5672//"
    queue = "itsm"                               # one queue per install on a shared broker
    interval = 5.0                               # seconds between background cycles

then run any number of workers and one scheduler beside the web processes::

    celery -A itsm.adapters.tasks.worker worker --concurrency 2
    celery -A itsm.adapters.tasks.worker beat

Each cycle (SLA sweep, the plugins' periodic work, outbox delivery) is safe to run on
several workers at once: deliveries, SLA announcements and escalation steps are claimed
with conditional updates or unique rows in the database, so nothing is sent twice.
After every commit the web process also queues a delivery run, so notifications leave
at once instead of at the next cycle; when the broker is down that is skipped (the
next cycle delivers) and the user's request never waits for it.
"""

from __future__ import annotations

import logging

from itsm.plugin import EventMessage, Plugin, hookimpl

log = logging.getLogger("itsm.tasks")

plugin = Plugin(name="tasks", version="0.1.0",
                description="Background work on Celery workers (Redis or RabbitMQ broker).",
                requires_itsm=">=0.1,<1",
                settings={"broker_url": "", "queue": "itsm", "interval": 5.0,
                          "kick_on_commit": True})


@hookimpl
def itsm_event_committed(event: EventMessage) -> None:
    """Queue a delivery run right after a commit (best effort: the cycle catches up)."""
    from itsm.plugin import current_itsm

    settings = current_itsm().plugin_settings("tasks")
    if not (settings["broker_url"] and settings["kick_on_commit"]):
        return  # no broker named: `itsm worker` or the server's own thread delivers
    from itsm.adapters.tasks.engine import kick

    kick()
