"""Incident rules read from the plugin's settings: priority matrix, categories, routing.

Settings live under ``[plugins.incident]`` in itsm.toml; tables such as ``routing`` may
be written as TOML tables (``[plugins.incident.routing]`` ``network = "Network"``).
``categories``, ``priority_matrix`` and ``routing`` may also be changed from the admin
pages (:mod:`itsm.plugins.incident.admin`) through :func:`save_rule`, which stores them in
the plugin's table; a stored rule replaces the setting of the same name.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from itsm.plugin import (
    Group,
    RecordService,
    ValidationError,
    current_itsm,
    record_admin_audit,
    utcnow,
)

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


EDITABLE = ("categories", "priority_matrix", "routing")
# Stored rules are read again after this many seconds, so a change made on one server
# reaches the others; a change made in this process is seen at once.
STORED_TTL = 5.0
_stored: weakref.WeakKeyDictionary[Any, tuple[float, dict[str, Any]]] = \
    weakref.WeakKeyDictionary()  # by install (an Itsm), gone with it
_lock = threading.Lock()
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def settings() -> dict[str, Any]:
    """The incident settings (TOML tables come back as dictionaries), with the rules
    saved from the admin pages in place of their settings."""
    itsm = current_itsm()
    return {**itsm.plugin_settings("incident"), **_stored_rules(itsm)}


def _stored_rules(itsm: Any) -> dict[str, Any]:
    now = time.monotonic()
    with _lock:
        cached = _stored.get(itsm)
    if cached is not None and now - cached[0] < STORED_TTL:
        return cached[1]
    from itsm.plugins.incident.models import IncidentSetting

    try:
        with itsm.Session() as session:
            rows = {r.name: r.value for r in session.scalars(select(IncidentSetting))
                    if r.name in EDITABLE}
    except (OperationalError, ProgrammingError):  # the plugin's migration has not run
        rows = {}
    with _lock:
        _stored[itsm] = (now, rows)
    return rows


def forget_stored() -> None:
    """Read the stored rules again at the next use (after a change, and in tests)."""
    with _lock:
        _stored.clear()


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


# -- changing the rules (the admin pages) ------------------------------------------------------


def check_categories(value: Any) -> dict[str, list[str]]:
    """``{"network": ["lan", "wan"], ...}`` checked; a ValidationError on ``categories``."""
    problem = None
    if not isinstance(value, Mapping) or not value:
        problem = "give at least one category"
    elif len(value) > 200:
        problem = "at most 200 categories"
    else:
        for name, subs in value.items():
            subs = list(subs or [])
            bad = [n for n in [name, *subs] if not isinstance(n, str) or not _NAME.match(n)]
            if bad:
                problem = (f"{bad[0]!r} is not a category name: use lower-case letters, "
                           "digits and _, starting with a letter (at most 64)")
                break
            if len(set(subs)) != len(subs) or len(subs) > 200:
                problem = f"{name}: each subcategory once, at most 200"
                break
    if problem:
        raise ValidationError("the categories were not saved", fields={"categories": [problem]})
    return {name: list(subs or []) for name, subs in value.items()}


def check_matrix(value: Any) -> list[list[int]]:
    """Rows of impact (1 = high), columns of urgency, cells the priority 1 to 5."""
    ok = (isinstance(value, list) and 2 <= len(value) <= 5
          and all(isinstance(row, list) and 2 <= len(row) <= 5 for row in value))
    if not ok:
        raise ValidationError("the priority matrix was not saved", fields={
            "priority_matrix": ["give 2 to 5 impact levels and 2 to 5 urgency levels"]})
    problems: dict[str, list[str]] = {}
    out = []
    for i, row in enumerate(value, 1):
        out.append([])
        for j, cell in enumerate(row, 1):
            text = str(cell).strip()
            if not text.isdigit() or not 1 <= int(text) <= 5:
                problems[f"m-{i}-{j}"] = [f"{text[:20]!r} is not a priority: 1 (highest) to 5"]
                continue
            out[-1].append(int(text))
    if problems:
        raise ValidationError("the priority matrix was not saved", fields=problems)
    return out


def check_routing(session: Any, value: Any, categories: Mapping[str, Any]) -> dict[str, str]:
    """``{category: group name}``; each category known, each group existing."""
    if not isinstance(value, Mapping):
        raise ValidationError("routing", fields={"routing": ["a category -> group table"]})
    problems: dict[str, list[str]] = {}
    groups = set(session.scalars(select(Group.name)))
    out = {}
    for category, group in value.items():
        group = str(group or "").strip()
        if not group:
            continue
        if category not in categories:
            problems[f"r-{category}"[:80]] = [f"{category!r} is not a category"]
        elif group not in groups:
            problems[f"r-{category}"] = [f"{group!r} is not a group"]
        else:
            out[str(category)] = group
    if problems:
        raise ValidationError("the routing was not saved", fields=problems)
    return out


def save_rule(svc: RecordService, name: str, value: Any) -> Any:
    """Check and store rule ``name`` (``categories``, ``priority_matrix`` or ``routing``)
    for new incidents, with an admin audit entry; the value as stored. Needs admin."""
    from itsm.plugins.incident.models import IncidentSetting

    svc.require("admin")
    current = settings()
    if name == "categories":
        value = check_categories(value)
    elif name == "priority_matrix":
        value = check_matrix(value)
    elif name == "routing":
        value = check_routing(svc.session, value, current["categories"])
    else:
        raise ValidationError(f"{name} cannot be changed here",
                              fields={"name": ["one of " + ", ".join(EDITABLE)]})
    row = svc.session.get(IncidentSetting, name)
    if row is None:
        row = IncidentSetting(name=name, value=value)
        svc.session.add(row)
    row.value, row.updated_at, row.updated_by_id = value, utcnow(), svc.actor.id
    record_admin_audit(svc.session, svc.actor, f"incident.{name}", f"incident {name}",
                       {name: current.get(name)}, {name: value})
    svc.session.flush()
    forget_stored()
    return value
