"""Relationship managers and the agencies' monthly service reviews, as an ordinary itsm
plugin.

A relationship manager (a staff member with agencies in their portfolio) sees each of
their agencies' situation: the agreement and its service levels, incidents and open
major ones, satisfaction, requests in flight, as every enabled process reports it through
the core's ``itsm_agency_sections``. At the start of each month the background engine
keeps every agency's review of the month before, unchanged from then on, and mails it as
a PDF to its relationship managers and to the agency's contacts as the processes name
them (the core's ``itsm_agency_contacts``: designated contacts, billing contacts); the
agency's own people read their reviews in the portal (``/relationship/reviews``).

This plugin imports no other: what a process says about an agency is the process's own
answer to the hook, so an install with fewer processes has shorter reviews.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.relationship.hooks import (
    itsm_blueprints,
    itsm_cli_commands,
    itsm_navigation,
    itsm_notification_recipients,
    itsm_periodic,
    itsm_permissions,
)

plugin = Plugin(name="relationship", version="0.1.0",
                description="Relationship managers' agencies and monthly service reviews.",
                requires_itsm=">=0.1,<1", settings={"notify_channels": ["email"]})

__all__ = ["itsm_blueprints", "itsm_cli_commands", "itsm_navigation",
           "itsm_notification_recipients", "itsm_periodic", "itsm_permissions", "plugin"]
