"""A Celery worker process for tests/test_tasks.py: one itsm install, given by env vars.

It is what ``celery -A itsm.adapters.tasks.worker worker`` runs, plus the test's
recording channel (a plugin module not installed as a package).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import recording_channel  # noqa: E402
import sample_plugin  # noqa: E402
from celery.signals import worker_ready  # noqa: E402

from itsm.adapters import tasks  # noqa: E402
from itsm.adapters.tasks.engine import make_celery  # noqa: E402
from itsm.core.app import create_app  # noqa: E402

app = create_app({"home": os.environ["ITSM_HOME"],
                  "database.url": os.environ["ITSM_DATABASE_URL"],
                  "secret_key": "x", "plugins.refresh_seconds": 0.0,
                  "plugins.extra": [sample_plugin, recording_channel, tasks],
                  "plugins.tasks.broker_url": os.environ["TEST_BROKER_URL"],
                  "plugins.tasks.queue": os.environ["TEST_QUEUE"]})
celery = make_celery(app)


@worker_ready.connect
def _ready(**_):
    Path(os.environ["TEST_READY_FILE"]).touch()


if __name__ == "__main__":
    celery.worker_main(["worker", "--pool", "solo", "--loglevel", "WARNING",
                        "--hostname", os.environ["TEST_NODE"], "--without-gossip",
                        "--without-mingle", "--without-heartbeat"])
