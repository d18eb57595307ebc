"""``celery -A itsm.adapters.tasks.worker worker|beat``: the install named by $ITSM_HOME."""

from __future__ import annotations

from itsm.adapters.tasks.engine import make_celery
from itsm.plugin import create_app

app = make_celery(create_app())
