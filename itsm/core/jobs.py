"""The background cycle: SLA sweep, the plugins' periodic work, outbox delivery.

Run by ``itsm worker`` (one or many processes) and by the server's own outbox thread.
Every step is safe to run from several workers at once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from itsm.core import sla
from itsm.core.models import utcnow
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
    """One background cycle; the figures are the outbox's."""
    sla.sweep(itsm, now)
    run_periodic(itsm, now)
    return itsm.outbox.drain()
