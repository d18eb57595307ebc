"""Two Celery workers against one PostgreSQL and a real broker: nothing is sent twice.

Runs when ITSM_TEST_POSTGRES_URL and a broker (ITSM_TEST_REDIS_URL and/or
ITSM_TEST_AMQP_URL) are named; .ci/run names all three.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import recording_channel
import sample_plugin
from celery import Celery
from sqlalchemy import func, select

from itsm.adapters import tasks
from itsm.adapters.tasks.engine import CYCLE, DRAIN, make_celery
from itsm.core import plugin_admin
from itsm.core.app import create_app
from itsm.core.auth import Actor
from itsm.core.errors import ConfigError
from itsm.core.install import initialise
from itsm.core.models import Delivery, Event
from itsm.testing import empty_database

POSTGRES = os.environ.get("ITSM_TEST_POSTGRES_URL")
BROKERS = [url for url in (os.environ.get("ITSM_TEST_REDIS_URL"),
                           os.environ.get("ITSM_TEST_AMQP_URL")) if url]
TICKETS = 40
WORKER = Path(__file__).parent / "celery_worker_for_tests.py"


def _install(tmp_path: Path, url: str, broker: str, queue: str):
    app = create_app({"home": str(tmp_path / "instance"), "database.url": url,
                      "secret_key": "x", "plugins.refresh_seconds": 0.0,
                      "plugins.extra": [sample_plugin, recording_channel, tasks],
                      "plugins.tasks.broker_url": broker, "plugins.tasks.queue": queue,
                      "plugins.tasks.kick_on_commit": False, "plugins.initial": []})
    itsm = app.extensions["itsm"]
    with app.app_context():
        initialise(itsm)
        for name in ("tickets", "recorder", "tasks"):
            plugin_admin.enable(itsm, name)
    return app


@pytest.mark.skipif(not (POSTGRES and BROKERS),
                    reason="needs ITSM_TEST_POSTGRES_URL and ITSM_TEST_REDIS_URL or "
                           "ITSM_TEST_AMQP_URL (.ci/run sets them)")
@pytest.mark.parametrize("broker", BROKERS or ["none"])
def test_two_workers_deliver_every_notification_exactly_once(tmp_path, broker):
    empty_database(POSTGRES)
    queue = f"itsm-test-{uuid.uuid4().hex[:8]}"
    app = _install(tmp_path, POSTGRES, broker, queue)
    itsm = app.extensions["itsm"]
    with app.app_context():
        for i in range(TICKETS):
            with itsm.unit_of_work(Actor.system()) as service:
                service.create("ticket", {"title": f"Disk {i} failing"})
    record_file, env = tmp_path / "deliveries.txt", dict(os.environ)
    env.update(ITSM_HOME=str(tmp_path / "instance"), ITSM_DATABASE_URL=POSTGRES,
               TEST_BROKER_URL=broker, TEST_QUEUE=queue, TEST_RECORD_FILE=str(record_file))
    workers = []
    try:
        for n in range(2):
            ready = tmp_path / f"ready-{n}"
            workers.append((subprocess.Popen(
                [sys.executable, str(WORKER)],
                env={**env, "TEST_READY_FILE": str(ready), "TEST_NODE": f"w{n}-{queue}@%h"},
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), ready))
        deadline = time.monotonic() + 60
        while not all(ready.exists() for _, ready in workers):
            assert all(p.poll() is None for p, _ in workers), \
                [p.stderr.read().decode()[-2000:] for p, _ in workers if p.poll() is not None]
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
        publisher = Celery("test-publisher", broker=broker, set_as_current=False)
        for _ in range(6):  # both workers run cycles and drains at the same time
            publisher.send_task(CYCLE, queue=queue)
            publisher.send_task(DRAIN, queue=queue)
        expected = TICKETS * len(recording_channel.RECIPIENTS)
        deadline = time.monotonic() + 90
        while True:
            with itsm.Session() as session:
                delivered = session.scalar(select(func.count(Delivery.id)).where(
                    Delivery.channel == "recorder", Delivery.delivered_at.is_not(None)))
            if delivered == expected or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert delivered == expected
        time.sleep(1.0)  # a duplicate, if any, would land in this second
    finally:
        for process, _ in workers:
            process.terminate()
        for process, _ in workers:
            process.wait(timeout=20)
        itsm.engine.dispose()
    lines = record_file.read_text().split("\n")[:-1]
    sent = Counter(" ".join(line.split()[:2]) for line in lines)
    assert len(sent) == expected and max(sent.values()) == 1  # every one, once
    assert len({line.split()[2] for line in lines}) == 2  # both workers delivered


def test_the_engine_needs_a_broker(tmp_path):
    app = create_app({"home": str(tmp_path / "instance"),
                      "database.url": f"sqlite:///{tmp_path / 'itsm.db'}", "secret_key": "x",
                      "plugins.extra": [tasks]})
    with pytest.raises(ConfigError, match="broker_url is not set"):
        make_celery(app)


def test_a_commit_with_the_broker_down_is_not_slowed(tmp_path):
    app = create_app({"home": str(tmp_path / "instance"),
                      "database.url": f"sqlite:///{tmp_path / 'itsm.db'}", "secret_key": "x",
                      "plugins.refresh_seconds": 0.0, "plugins.extra": [sample_plugin, tasks],
                      "plugins.tasks.broker_url": "redis://127.0.0.1:1/0"})
    itsm = app.extensions["itsm"]
    with app.app_context():
        initialise(itsm)
        plugin_admin.enable(itsm, "tickets")
        plugin_admin.enable(itsm, "tasks")
        started = time.monotonic()
        with itsm.unit_of_work(Actor.system()) as service:
            service.create("ticket", {"title": "Broker is down"})
        assert time.monotonic() - started < 2.0  # no 2 s wait before giving up the broker
        with itsm.Session() as session:  # kept in the outbox for the next cycle
            assert session.scalar(select(func.count(Event.id))) == 1
    itsm.engine.dispose()
