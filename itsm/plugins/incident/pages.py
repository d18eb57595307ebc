"""The incident plugin's pages: dashboard and portal (report, my incidents)."""

from __future__ import annotations

from flask import Blueprint

from itsm.core.auth import Actor
from itsm.core.web import NavItem


def blueprints() -> list[Blueprint]:
    """The page blueprints of the plugin."""
    return []


def navigation(actor: Actor) -> list[NavItem]:
    """Navigation entries for ``actor``."""
    return []
