"""Initialising an install: schema, plugin state and every plugin's defaults.

``itsm init`` and the test fixtures both call :func:`initialise`, so a test install is
exactly what an admin gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from itsm.core import migrate
from itsm.core.demo import DemoContext
from itsm.core.plugin_admin import record_builtin_state

if TYPE_CHECKING:
    from itsm.core.state import Itsm


def initialise(itsm: Itsm, progress: Callable[[str], None] | None = None) -> list[str]:
    """Migrate the core and enabled plugins, record plugin state, install defaults.

    Safe to run again: every step is idempotent. Returns the migration steps applied.
    """
    steps = migrate.upgrade(itsm, progress=progress)
    record_builtin_state(itsm)
    with itsm.Session() as session:
        itsm.hook.itsm_install_defaults(ctx=DemoContext(itsm, session))
        session.commit()
    return steps
