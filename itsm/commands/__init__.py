"""Command groups of the `itsm` command line (attached in itsm/cli.py)."""
