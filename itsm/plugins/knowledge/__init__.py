"""Knowledge articles: write, review, publish, search, vote — a built-in itsm plugin.

Articles (``KB0000001``) are records: their body is the record's description (Markdown),
so the core's full-text index covers them on every database. The plugin adds version
history, votes, a portal to search and read published articles, suggestions for new
records of any process (``itsm_suggestions``) and a "propose an article" action on
resolved records of any process (``itsm_record_actions``). It imports no other plugin.

Access: staff write; requesters read published articles only (for everyone or for
their agency), enforced for every entry point by ``itsm_permission_check`` in ``hooks.py``.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.knowledge.hooks import (
    itsm_blueprints,
    itsm_demo_data,
    itsm_navigation,
    itsm_permission_check,
    itsm_permissions,
    itsm_record_actions,
    itsm_record_changed,
    itsm_record_prepare,
    itsm_record_types,
    itsm_suggestions,
)

plugin = Plugin(name="knowledge", version="0.1.0",
                description="Knowledge articles: write, review, publish, search, vote.",
                requires_itsm=">=0.1,<1")

__all__ = ["itsm_blueprints", "itsm_demo_data", "itsm_navigation", "itsm_permission_check",
           "itsm_permissions", "itsm_record_actions", "itsm_record_changed", "itsm_record_prepare",
           "itsm_record_types", "itsm_suggestions", "plugin"]
