"""Memoranda of understanding with customer agencies, and the service levels they set."""

import itsm

plugin = itsm.Plugin(
    name="mou", version="0.1.0",
    description="Agreements with customer agencies, their service level targets and compliance.",
    requires_itsm=">=0.1,<1")
