"""The core: records, workflows, journal, auth, API plumbing and plugin loading."""
