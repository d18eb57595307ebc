"""The operations gate a new or changed service passes before it goes live."""

import itsm

plugin = itsm.Plugin(
    name="transition_gate", version="0.1.0",
    description="Service transitions: deliverables, meetings, acceptance and the go-live gate.",
    requires_itsm=">=0.1,<1")
