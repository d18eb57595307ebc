"""The configuration management database: configuration items of types defined as data,
typed relations with direction up to the business services, impact analysis, history
("as it was on date D"), and import from CSV, JSON and Ansible's inventory.

Why CIs are a plain table with their own history, not a record type: a record is a
piece of work (a number, a state machine, an assignee, SLA clocks, a conversation), a CI
is a thing that exists. Imports reconcile 100,000 CIs at thousands per second, which one
record-service command per CI (numbering, journal, search index, outbox) cannot reach,
and "as on date D" wants a whole snapshot per change, not a replay of field diffs. So
every change of a CI writes a ``cmdb_ci_history`` row (the fields that changed and the
whole CI after it) in the same transaction, and relations are never deleted but ended,
which gives the graph of any past date. Records of other processes refer to CIs and
services through the core's reference contract (``kinds.py``), by stable id.

Layout: ``models.py`` (tables), ``types.py`` (types as data, generated schemas),
``service.py`` (operations, permissions, scoping, history), ``graph.py`` (impact walk),
``importer.py`` (CSV, JSON, Ansible), ``kinds.py`` (reference kinds), ``svg.py`` (the
dependency picture), ``api.py``, ``pages.py`` and ``forms.py`` (the console),
``admin.py`` (the CI types' admin pages), ``cli.py``, and the Alembic branch
``cmdb`` in ``migrations/versions``.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.cmdb.hooks import (
    itsm_admin_pages,
    itsm_blueprints,
    itsm_cli_commands,
    itsm_demo_data,
    itsm_navigation,
    itsm_permissions,
    itsm_reference_kinds,
)

plugin = Plugin(
    name="cmdb", version="0.1.0",
    description="Configuration items, their relations, impact analysis and discovery "
                "imports (CSV, JSON, Ansible).",
    requires_itsm=">=0.1,<1")

__all__ = ["itsm_admin_pages", "itsm_blueprints", "itsm_cli_commands", "itsm_demo_data",
           "itsm_navigation", "itsm_permissions", "itsm_reference_kinds", "plugin"]
