"""Real peers driven with the same load as itsm (Request Tracker 5)."""
