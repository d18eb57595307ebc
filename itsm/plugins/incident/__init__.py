"""Incident management: restore normal service as fast as possible.

The reference process plugin: everything here is built on the core's public hooks, as a
vendor's plugin would be. It knows no other process plugin; problems, knowledge articles
and changes reach incidents through links, events and the suggestions hook.

- Record ``incident`` (INC…): category tree, impact x urgency -> priority (a configurable
  matrix), channel, major-incident flag, workaround, resolution. The affected service and
  configuration item are references (kinds ``service``, ``configuration_item``: stored
  by stable id when a plugin provides them, free text otherwise); an item names its
  service when none is given. Routing: the service's resolver group, else the item's,
  else by category. ``GET /api/v1/incidents/<n>/impact`` lists the services and agencies
  reached (``reference_impact``), a major incident's affected agencies.
- Workflow: new -> in progress -> on hold (waiting on customer/supplier: SLA paused) ->
  resolved -> closed (confirmed by the requester, or automatically after a quiet
  period); cancelled; reopen within a window.
- Escalation from the SLA clocks' announcements (delivered through the outbox to the
  ``incident.escalation`` channel): warning -> management told, breach -> reassigned to
  the breach group when one is configured; each step is taken once. Imported history,
  announced silently by the import, is never escalated.
- Major incidents: children linked to the major one follow its updates and resolution;
  a post-incident review (PIR…) must be done before the major incident closes.
- Satisfaction rating by the requester on resolution.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.incident.hooks import (
    itsm_admin_pages,
    itsm_agency_sections,
    itsm_blueprints,
    itsm_cli_commands,
    itsm_demo_data,
    itsm_link_kinds,
    itsm_navigation,
    itsm_notification_channels,
    itsm_notification_recipients,
    itsm_periodic,
    itsm_permissions,
    itsm_record_actions,
    itsm_record_changed,
    itsm_record_prepare,
    itsm_record_types,
    itsm_reference_changed,
    itsm_satisfaction_ratings,
    itsm_transition_guard,
)
from itsm.plugins.incident.rules import DEFAULT_SETTINGS

plugin = Plugin(name="incident", version="0.1.0",
                description="Incidents: log, route, escalate, resolve and learn from them.",
                requires_itsm=">=0.1,<1", settings=DEFAULT_SETTINGS)

__all__ = ["itsm_admin_pages", "itsm_agency_sections", "itsm_blueprints", "itsm_cli_commands",
           "itsm_demo_data", "itsm_link_kinds", "itsm_navigation", "itsm_notification_channels",
           "itsm_notification_recipients", "itsm_periodic", "itsm_permissions",
           "itsm_record_actions", "itsm_record_changed", "itsm_record_prepare",
           "itsm_record_types", "itsm_reference_changed", "itsm_satisfaction_ratings",
           "itsm_transition_guard", "plugin"]
