"""Memoranda of understanding with customer agencies, and the service levels they set.

An agreement (``MOU…``, ``/api/v1/mous``) is a record of kind ``mou`` (with an agency)
or ``ola`` (between two internal groups). It starts from the latest version of the
admin-editable standard template (ten sections and appendices A to G), goes draft → in
review → approved (a named signatory of each side) → active → expired or superseded, and
after approval changes only through amendments: new versions with a diff, proposed by one
person and approved by another (section 10).

Its targets drive the SLA clocks of the agency's records through ``itsm_sla_policy``
(see :mod:`itsm.plugins.mou.policy` for the rules). The hook is ``tryfirst``: an
agreement signed with the agency is more specific than a catalog offering's generic
targets, so it wins over them and over the core default; where the agreement has no
matching target the next policy answers as if this plugin were absent.

Agency users read only their own agency's active MOU, read-only (API, ``/mou/my``); an
agreement in any other state, or of another agency, answers 404 to them.

Settings (``[plugins.mou]``): ``notify_channels``, the channels that carry compliance
alerts to the relationship manager (``["email"]``; only enabled channels are used), and
``alert_check_minutes``, how often the worker measures the agreements for alerts (60).

Files: ``hooks.py`` (the hook implementations), ``models.py`` (tables, type, workflow),
``template.py``, ``service.py`` (text, targets, contacts, signatures, amendments),
``policy.py`` (SLA policy), ``compliance.py`` and ``alerts.py`` (reports),
``document.py`` (export), ``api.py``, ``pages.py``, ``cli.py``, ``demo.py``, and the
Alembic branch ``mou`` in ``migrations/versions``.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.mou.hooks import (
    itsm_admin_pages,
    itsm_agency_contacts,
    itsm_agency_sections,
    itsm_blueprints,
    itsm_cli_commands,
    itsm_demo_data,
    itsm_escalation_path,
    itsm_install_defaults,
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
    itsm_sla_policy,
)

plugin = Plugin(
    name="mou", version="0.1.0",
    description="Agreements with customer agencies, their service level targets and compliance.",
    requires_itsm=">=0.1,<1",
    settings={"notify_channels": ["email"], "alert_check_minutes": 60})

__all__ = ["itsm_admin_pages", "itsm_agency_contacts", "itsm_agency_sections",
           "itsm_blueprints", "itsm_cli_commands", "itsm_demo_data", "itsm_escalation_path",
           "itsm_install_defaults", "itsm_navigation", "itsm_notification_recipients",
           "itsm_periodic", "itsm_permission_check", "itsm_permissions",
           "itsm_record_actions", "itsm_record_changed", "itsm_record_prepare",
           "itsm_record_types", "itsm_reference_changed", "itsm_sla_policy", "plugin"]
