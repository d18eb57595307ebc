"""Service catalog and request fulfillment, with a self-service portal.

- Services in business language (category, owner, hours, who may request, rates, FAQ and
  help links, status planned / in transition / live / retired); only live ones show in
  the portal. Browse by category, search, "most requested", per-agency views.
- Offerings per service, each with a form defined as data and validated by a marshmallow
  schema built from it, an approval (none, manager, service owner, a group), fulfillment
  tasks for groups in order or in parallel, and SLA targets.
- Records ``request`` (REQ…) and ``task`` (TSK…, staff only); a request is fulfilled when
  its tasks are done.
- Feedback on catalog entries with a review queue; a technical catalog of versioned
  documents for resolver teams (IT staff only); import/export, reports, demo data.

The catalog provides the reference kind ``service`` (priority 100): other plugins store a
service's stable id, find it by id, slug or name, reach the agencies that use it, and
ask for a status change (``request_reference_status``); any plugin may hold a change
back with ``itsm_reference_status_guard``, which every status change asks (the API's
``PATCH /api/v1/catalog/services/<id>`` ``{"status": "live"}`` too: 409 with reasons).
A rename or retirement is announced with ``itsm_reference_changed``.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.catalog.hooks import (
    itsm_admin_pages,
    itsm_agency_sections,
    itsm_billable_charges,
    itsm_blueprints,
    itsm_cli_commands,
    itsm_demo_data,
    itsm_install_defaults,
    itsm_link_kinds,
    itsm_navigation,
    itsm_notification_recipients,
    itsm_permissions,
    itsm_record_changed,
    itsm_record_prepare,
    itsm_record_types,
    itsm_reference_kinds,
    itsm_satisfaction_ratings,
    itsm_service_rates,
    itsm_sla_policy,
)

plugin = Plugin(name="catalog", version="0.1.0",
                description="Service catalog, request fulfillment and self-service portal.",
                requires_itsm=">=0.1,<1",
                settings={"sla_calendar": "default", "most_requested_days": 90})

__all__ = ["itsm_admin_pages", "itsm_agency_sections", "itsm_billable_charges", "itsm_blueprints",
           "itsm_cli_commands", "itsm_demo_data", "itsm_install_defaults", "itsm_link_kinds",
           "itsm_navigation", "itsm_permissions", "itsm_record_changed", "itsm_record_prepare",
           "itsm_record_types", "itsm_reference_kinds", "itsm_notification_recipients",
           "itsm_satisfaction_ratings", "itsm_service_rates", "itsm_sla_policy", "plugin"]
