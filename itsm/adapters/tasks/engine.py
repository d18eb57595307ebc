"""The Celery application of itsm: tasks bound to one itsm install."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from flask import Flask

log = logging.getLogger("itsm.tasks")

CYCLE = "itsm.cycle"
DRAIN = "itsm.drain"


def make_celery(app: Flask) -> Celery:
    """A Celery application running ``app``'s background work.

    Tasks run inside ``app``'s application context, so plugins' hooks may use
    ``current_itsm()`` as they do in requests.
    """
    itsm = app.extensions["itsm"]
    settings = itsm.plugin_settings("tasks")
    broker = settings["broker_url"]
    if not broker:
        from itsm.plugin import ConfigError

        raise ConfigError("plugins.tasks.broker_url is not set: name a Redis or RabbitMQ "
                          "broker in itsm.toml ([plugins.tasks] broker_url = ...)")
    celery = Celery("itsm", broker=broker, set_as_current=False)
    celery.conf.update(
        task_default_queue=settings["queue"],
        task_ignore_result=True,
        task_acks_late=True,  # a worker killed mid-task: the broker hands the task on
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        beat_schedule={"itsm-cycle": {"task": CYCLE,
                                      "schedule": float(settings["interval"])}},
    )

    @celery.task(name=CYCLE)
    def cycle() -> dict[str, Any]:
        from itsm.plugin import run_cycle

        with app.app_context():
            stats = run_cycle(itsm)
        return stats.__dict__

    @celery.task(name=DRAIN)
    def drain() -> dict[str, Any]:
        with app.app_context():
            stats = itsm.outbox.drain()
        return stats.__dict__

    return celery


_publisher: Celery | None = None


def kick() -> None:
    """Ask a worker for a delivery run now; never raises, never waits long."""
    global _publisher
    from itsm.plugin import current_itsm

    try:
        itsm = current_itsm()
        settings = itsm.plugin_settings("tasks")
        if not settings["kick_on_commit"] or not settings["broker_url"]:
            return
        if _publisher is None or _publisher.conf.broker_url != settings["broker_url"]:
            _publisher = Celery("itsm-publisher", broker=settings["broker_url"],
                                set_as_current=False)
            # No retry of the connection (kombu otherwise sleeps 2 s first, whatever
            # broker_connection_max_retries says): the commit must not wait on it.
            _publisher.conf.update(broker_connection_timeout=1.0,
                                   broker_connection_max_retries=0,
                                   broker_transport_options={"max_retries": 0})
        _publisher.send_task(DRAIN, retry=False, queue=settings["queue"])
    except Exception as exc:  # the broker is down: the next cycle delivers
        log.warning("could not queue a delivery run (%s); the next cycle delivers", exc)
