"""Change management: control change to minimise risk, as an ordinary itsm plugin.

- Record ``change`` (CHG…): standard (from a pre-approved template, no CAB), normal or
  emergency; reason, affected services and configuration items, owner (the record's
  assignee), implementation, backout and test plans, planned and actual windows.
- Risk: a configurable questionnaire scores each change low, medium or high; CAB rules
  (by type, risk level, service, category) pick the approver groups and their quorum
  (all, majority, any one), so nobody assigns approvers by hand.
- Workflow: draft -> assessment -> CAB review -> scheduled -> implementing -> review ->
  closed; rejected; cancelled; failed -> backout -> review. Guards refuse scheduling and
  implementing until approved, and a window in a freeze without an emergency approval.
- Services and configuration items are references (kinds ``service`` and
  ``configuration_item``, by stable id when provided): the change's impact (services and
  agencies reached through ``reference_impact``, with paths) is on its page and in
  ``GET .../overview``; CAB rules, freeze windows and conflicts consider the impacted
  services; the agencies reached by an approved change are named on its
  ``change.decided`` event (``affected_agencies``, with the window) for their
  relationship managers. ``impact.py`` holds this.
- Calendar with conflicts and freeze windows; post-implementation review with the
  incidents a change caused (links to records of the ``incident_type`` setting's type,
  when that type's plugin is enabled; this plugin imports no other).
- Deployment gate for pipelines: ``GET /api/v1/changes/gate`` and ``itsm changes gate``
  (the service by its stable id or any of its names).
- Reports: success rate, emergency share, changes causing incidents.

Files: ``models.py`` (tables), ``workflow.py`` (schema, workflow, guards),
``service.py`` (rules shared by every entry point: risk, approvals, freeze, conflicts),
``gate.py`` (deployment gate), ``schedule.py`` (calendar, one change's overview),
``catalogs.py`` (admin lists), ``api.py``, ``pages.py``, ``cli.py``, ``reports.py``,
``demo.py``; Alembic branch
``change`` in ``migrations/versions``.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.change.hooks import (
    itsm_blueprints,
    itsm_cli_commands,
    itsm_demo_data,
    itsm_install_defaults,
    itsm_link_kinds,
    itsm_navigation,
    itsm_notification_recipients,
    itsm_permissions,
    itsm_record_actions,
    itsm_record_changed,
    itsm_record_prepare,
    itsm_record_types,
)
from itsm.plugins.change.service import DEFAULT_SETTINGS

plugin = Plugin(name="change", version="0.1.0",
                description="Changes: risk, CAB approval, calendar, freeze windows and a "
                            "deployment gate.",
                requires_itsm=">=0.1,<1", settings=DEFAULT_SETTINGS)

__all__ = ["itsm_blueprints", "itsm_cli_commands", "itsm_demo_data", "itsm_install_defaults",
           "itsm_link_kinds", "itsm_navigation", "itsm_notification_recipients",
           "itsm_permissions", "itsm_record_actions", "itsm_record_changed", "itsm_record_prepare",
           "itsm_record_types", "plugin"]
