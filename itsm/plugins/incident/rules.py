"""Incident rules read from the plugin's settings: priority matrix, categories, routing.

Settings live under ``[plugins.incident]`` in itsm.toml; tables such as ``routing`` may
be written as TOML tables (``[plugins.incident.routing]`` ``network = "Network"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from itsm.plugin import current_itsm

DEFAULT_SETTINGS: dict[str, Any] = {
    # ITIL's impact x urgency matrix: rows are impact 1 (high) .. 3, columns urgency.
    "priority_matrix": [[1, 2, 3], [2, 3, 4], [3, 4, 5]],
    "categories": {
        "network": ["lan", "wan", "vpn", "wifi", "dns"],
        "hardware": ["laptop", "desktop", "printer", "phone", "monitor"],
        "software": ["email", "office", "erp", "browser", "operating_system"],
        "access": ["password", "account", "permissions", "mfa"],
        "facilities": ["power", "cooling"],
    },
    # Category -> assignment group (by name) when a new incident names no group.
    "routing": {"network": "Network", "hardware": "Service Desk",
                "software": "Applications", "access": "Service Desk"},
    "reopen_days": 7,  # a resolved incident may be reopened within this many days
    "auto_close_days": 5,  # resolved and quiet this long: closed without confirmation
    # Hierarchical escalation: who is told when a clock passes its warning threshold or
    # breaches (e-mail addresses; none until an admin names them: a placeholder would
    # receive every escalation); functional escalation: the group a breached incident
    # moves to (empty: it stays with its group).
    "escalation_contacts": [],
    "breach_group": "",
    # Notification channels used for people (those of enabled adapters only).
    "notify_channels": ["email"],
}


def settings() -> dict[str, Any]:
    """The incident settings (TOML tables come back as dictionaries)."""
    return current_itsm().plugin_settings("incident")


def priority_of(impact: int | None, urgency: int | None,
                matrix: list[list[int]] | None = None) -> int | None:
    """The priority the matrix gives; None when impact or urgency is outside it."""
    matrix = matrix or DEFAULT_SETTINGS["priority_matrix"]
    if impact is None or urgency is None:
        return None
    if not (1 <= impact <= len(matrix) and 1 <= urgency <= len(matrix[impact - 1])):
        return None
    return int(matrix[impact - 1][urgency - 1])


def levels(matrix: list[list[int]]) -> tuple[int, int]:
    """How many impact and urgency levels the matrix has (3 or 4 usually)."""
    return len(matrix), max(len(row) for row in matrix)


def check_category(categories: Mapping[str, Any], category: str | None,
                   subcategory: str | None) -> dict[str, list[str]]:
    """Field errors for a category/subcategory pair that is not in the tree."""
    errors: dict[str, list[str]] = {}
    if category and category not in categories:
        errors["category"] = ["one of " + ", ".join(sorted(categories))]
    elif subcategory:
        allowed = list(categories.get(category or "", []) or [])
        if not category:
            errors["subcategory"] = ["choose a category first"]
        elif subcategory not in allowed:
            errors["subcategory"] = [f"one of {', '.join(allowed) or 'none'} for {category}"]
    return errors
