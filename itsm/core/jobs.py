"""The background cycle: SLA sweep, the plugins' periodic work, outbox delivery.

Run by ``itsm worker`` (one or many processes) and by the server's own outbox thread.
Every step is safe to run from several workers at once.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from itsm.core import sla
from itsm.core.models import WorkerRun, utcnow
from itsm.core.notify import DispatchStats

if TYPE_CHECKING:
    from itsm.core.state import Itsm

log = logging.getLogger("itsm.jobs")


def run_periodic(itsm: Itsm, now: datetime | None = None) -> list[str]:
    """Call every enabled plugin's ``itsm_periodic``, each on its own; return the names
    of the plugins whose work failed (logged, and tried again next cycle)."""
    now = now or utcnow()
    failed = []
    for impl in reversed(itsm.hook.itsm_periodic.get_hookimpls()):  # pluggy call order
        try:
            impl.function(**{k: v for k, v in {"now": now}.items() if k in impl.argnames})
        except Exception:
            log.exception("periodic work of plugin %s failed; it runs again next cycle",
                          impl.plugin_name)
            failed.append(impl.plugin_name)
    return failed


def run_cycle(itsm: Itsm, now: datetime | None = None) -> DispatchStats:
    """One background cycle within its budgets (settings ``sla.sweep_batch``,
    ``sla.sweep_seconds``, ``outbox.batch``, ``outbox.drain_seconds``); the figures are
    the outbox's, ``more`` says the sweep or the outbox left work for the next cycle."""
    started = time.monotonic()
    settings = itsm.settings
    swept = sla.sweep(itsm, now, limit=int(settings["sla.sweep_batch"]),
                      seconds=float(settings["sla.sweep_seconds"]))
    run_periodic(itsm, now)
    stats = itsm.outbox.drain()
    stats.more = stats.more or swept.more
    finished(itsm, "cycle", time.monotonic() - started)
    return stats


def finished(itsm: Itsm, name: str, seconds: float) -> None:
    """Note that a cycle of ``name`` finished now (the heartbeat doctor and /metrics read)."""
    values = {"finished_at": utcnow(), "seconds": seconds}
    with itsm.Session() as session:
        if not session.execute(update(WorkerRun).where(WorkerRun.name == name)
                               .values(values)).rowcount:
            session.add(WorkerRun(name=name, **values))
        try:
            session.commit()
        except IntegrityError:  # another worker wrote the first row meanwhile: as good
            session.rollback()
