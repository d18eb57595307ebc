"""Internal billing for IT services (MOU sections 6 and 7), as an ordinary itsm plugin.

Turns what agencies used into what they owe, month by month: fulfilled requests of priced
one-off services, subscriptions to recurring services (per unit such as mailboxes or
devices, quantities set by an admin or a CSV import, a part month by its days) and time
recorded on records under a service charged by the hour. A statement per agency and
month is computed as a draft, reviewed, then issued; an issued statement never changes,
a correction is a credit line on the next. Statements export as CSV and PDF, and the
agency's billing contacts read theirs in the portal.

Rates and billable work come through the core's contract (``itsm_service_rates``,
``itsm_billable_charges``) from whatever plugin keeps them (the catalog): this plugin
imports no other, and with no such plugin enabled there is simply nothing to bill.

Files: ``models.py`` (tables), ``service.py`` (every operation), ``exports.py`` (CSV,
PDF), ``api.py``, ``pages.py``, ``cli.py``, and the Alembic branch ``billing``.
"""

from __future__ import annotations

from itsm.plugin import Plugin
from itsm.plugins.billing.hooks import (
    itsm_agency_contacts,
    itsm_blueprints,
    itsm_cli_commands,
    itsm_demo_data,
    itsm_navigation,
    itsm_notification_recipients,
    itsm_permissions,
)

plugin = Plugin(name="billing", version="0.1.0",
                description="Internal billing: agencies' monthly statements from catalog "
                            "rates.",
                requires_itsm=">=0.1,<1", settings={"notify_channels": ["email"]})

__all__ = ["itsm_agency_contacts", "itsm_blueprints", "itsm_cli_commands", "itsm_demo_data",
           "itsm_navigation", "itsm_notification_recipients", "itsm_permissions", "plugin"]
