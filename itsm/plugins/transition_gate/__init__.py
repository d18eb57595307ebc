"""The operations gate a new or changed service passes before it goes live.

- Record ``transition`` (TRN…) per new or changed service: project, service (a catalog
  key, or a name when no catalog knows it), project manager, service manager, target
  go-live date and early-life support period. Workflow: planning -> in transition ->
  live with early-life support -> closed; cancelled.
- A checklist copied from an admin-editable template (the default lists what operations
  needs: service desk knowledge, support and escalation model, SLA/MOU targets,
  monitoring, technical documentation, trained resolver groups, contacts, process
  description, tested backup and recovery). Each deliverable has an owner, an appointed
  approver, a due date, a state (open -> submitted -> approved / rejected with reason),
  evidence (a link, a record such as a knowledge article, or an attachment) and a
  template document.
- Meetings (start-up, follow-up, review) with attendees and minutes, milestones, roles
  and contacts, and a timeline of what is late.
- The gate: ``go_live`` is refused while a mandatory deliverable is not approved or the
  service manager has not accepted responsibility, listing exactly what is missing; a
  gatekeeper may grant a documented exception (who, why, until when).
- Going live publishes the catalog service (``request_reference_status`` of the
  reference kind ``service``) when a plugin provides services, whose own go-live this
  plugin vetoes while the transition is open (``itsm_reference_status_guard``, by the
  service's stable id: a rename or a merge keeps the veto); then early-life support
  flags the service's incidents (by id), links them to the transition and tells the
  project manager.
- Readiness dashboard, reminders to owners before due dates (``itsm_periodic``, once
  each), notice to approvers on submission; API, console pages, CLI, demo data.

Settings (``[plugins.transition_gate]``): ``default_template``, ``remind_days``,
``incident_types`` and ``service_field`` (which records are the service's incidents),
``gatekeeper_group`` (its members are gatekeepers), ``notify_channels``.

Files: ``models.py`` (tables, schema, workflow), ``service.py`` (checklist, acceptance,
exceptions), ``plan.py`` (meetings, milestones, roles, templates), ``gate.py`` (the gate,
catalog, early life, reminders), ``views.py`` (overview, dashboard), ``api.py``,
``pages.py``, ``cli.py``, ``demo.py``; Alembic branch ``transition_gate`` in
``migrations/versions``. Imports no other plugin.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.transition_gate.hooks import (
    itsm_blueprints,
    itsm_cli_commands,
    itsm_demo_data,
    itsm_install_defaults,
    itsm_link_kinds,
    itsm_navigation,
    itsm_notification_recipients,
    itsm_periodic,
    itsm_permission_check,
    itsm_permissions,
    itsm_record_actions,
    itsm_record_changed,
    itsm_record_prepare,
    itsm_record_types,
    itsm_reference_changed,
    itsm_reference_status_guard,
    itsm_transition_guard,
)
from itsm.plugins.transition_gate.service import DEFAULT_SETTINGS

plugin = Plugin(
    name="transition_gate", version="0.1.0",
    description="Service transitions: deliverables, meetings, acceptance and the go-live gate.",
    requires_itsm=">=0.1,<1", settings=DEFAULT_SETTINGS)

__all__ = ["itsm_blueprints", "itsm_cli_commands", "itsm_demo_data", "itsm_install_defaults",
           "itsm_link_kinds", "itsm_navigation", "itsm_notification_recipients",
           "itsm_periodic", "itsm_permission_check", "itsm_permissions",
           "itsm_record_actions", "itsm_record_changed", "itsm_record_prepare",
           "itsm_record_types",
           "itsm_reference_changed", "itsm_reference_status_guard", "itsm_transition_guard",
           "plugin"]
