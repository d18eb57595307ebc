"""Problem management and the known error database, as an ordinary itsm plugin.

A problem (``PRB…``) groups the incidents that share a cause, records the root-cause
analysis and a workaround, and becomes a *known error*; its workaround is then offered
as a suggestion whenever a record of a ``suggest=True`` type is opened with matching
text (``itsm_suggestions``). Resolving a problem posts a public comment on each of its
open linked incidents. Trends of recent incidents point at problems nobody has opened yet
(``itsm problem trends``, ``GET /api/v1/problems/trends``, ``/problems/trends``).

Incidents are records of the type named by the ``incident_type`` setting; this plugin
imports no other plugin and works with any of them, or none.

Settings (``[plugins.problem]`` in itsm.toml, or ``ITSM_PLUGINS_PROBLEM_<KEY>``):

- ``incident_type``: the record type whose records are the incidents (``incident``);
- ``trend_fields``: fields of that type counted for trends (a list, or comma-separated);
  fields its model lacks are skipped;
- ``trend_threshold`` and ``trend_days``: the defaults of ``min`` and ``days``;
- ``public_workarounds``: off by default. Problems are staff-only, and root causes and
  workarounds may name internal systems, so requesters get no known-error suggestions.
  Turned on, requesters also get the live known errors of no agency or of their own
  agency as suggestions (title and workaround, no link); never another agency's.

Files: ``models.py`` (table, schema, workflow), ``service.py`` (the logic every entry
point shares), ``api.py``, ``pages.py`` and ``cli.py`` (the entry points), and the
Alembic branch ``problem`` in ``migrations/versions``.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.problem.hooks import (
    itsm_blueprints,
    itsm_cli_commands,
    itsm_demo_data,
    itsm_link_kinds,
    itsm_navigation,
    itsm_permissions,
    itsm_record_changed,
    itsm_record_prepare,
    itsm_record_types,
    itsm_suggestions,
)

plugin = Plugin(
    name="problem", version="0.1.0",
    description="Problems, root-cause analysis and the known error database.",
    requires_itsm=">=0.1,<1",
    settings={"incident_type": "incident", "trend_fields": ["category", "affected_service",
                                                           "config_item"],
              "trend_threshold": 3, "trend_days": 30, "public_workarounds": False})

__all__ = ["itsm_blueprints", "itsm_cli_commands", "itsm_demo_data", "itsm_link_kinds",
           "itsm_navigation", "itsm_permissions", "itsm_record_changed", "itsm_record_prepare",
           "itsm_record_types", "itsm_suggestions", "plugin"]
