"""The console's menu: the core's entries and every plugin's (``itsm_navigation``), in
groups for staff and as one list for requesters, each entry once (see
:class:`itsm.core.web.NavItem`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import has_request_context, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from itsm.core import satisfaction
from itsm.core.auth import Actor
from itsm.core.context import current_itsm
from itsm.core.records import RecordService, RecordType
from itsm.core.web import NAV_GROUPS, NavItem

log = logging.getLogger("itsm.console")


def _itsm():
    return current_itsm()


def plural(rt: RecordType) -> str:
    """The name of a type's list, from its collection (``change_requests``)."""
    return rt.collection.replace("_", " ").replace("-", " ").capitalize()

NAV_KEY = "itsm.navigation"  # request.environ: the menu, built once per request

# The frame's other one-value reads, run in the menu's statement: ``(actor) -> (key,
# select) | None``; the value is kept as ``request.environ[key] = (actor.id, value)``
# (the bell's unread count).
FRAME_SCALARS: list[Callable[[Actor], tuple[str, Any] | None]] = []


def _plugin_entries(actor: Actor) -> list[tuple[str, NavItem]]:
    """Every enabled plugin's entries for ``actor``; a plugin that fails is left out."""
    out: list[tuple[str, NavItem]] = []
    for plugin, caller in reversed(_itsm().host.by_plugin("itsm_navigation")):
        try:
            results = caller(actor=actor)
        except Exception:  # one broken plugin must not take every page down
            log.exception("itsm_navigation of plugin %r failed; its entries are left out "
                          "of the menu", plugin)
            continue
        for result in results:
            out += [(plugin, item) for item in result or () if isinstance(item, NavItem)]
    return out


def menu_entries(actor: Actor) -> list[NavItem]:
    """The menu of ``actor``, each entry once, in group and menu order.

    Staff: home and notifications, one entry per process (the core's list of each record
    type the actor may read, unless the type's plugin gives its own page with
    ``record_type``), reports (the core's satisfaction report for those who may read
    it), administration for admins, then the self-service pages.
    A requester: home (the portal) and the plugins' self-service pages; a record type
    whose plugin offers a requester nothing keeps its list, so no record is out of reach.
    """
    itsm = _itsm()
    staff = actor.role != "requester"
    plugin_items = _plugin_entries(actor)
    with itsm.Session() as db:
        service = RecordService(itsm, db, actor)
        readable = [rt for rt in itsm.types if service.can(f"{rt.name}.read")]
        # The core's own report, for those it answers (satisfaction.read; an agency's
        # people granted it read their agency's ratings, in their own menu).
        reports = [NavItem("Satisfaction", url_for("console.satisfaction_page"), 50,
                           group="reports" if staff else "portal")] \
            if service.can(satisfaction.READ) else []
    replaced = {item.record_type for _, item in plugin_items if item.record_type}
    items = [NavItem("Home", url_for("console.home"), 0, group="work" if staff else "portal")]
    if staff:
        items.append(NavItem("Notifications", url_for("console.notifications"), 1,
                             group="work"))
        items += [NavItem(plural(rt), url_for("console.record_list", collection=rt.collection),
                          10, group="process", record_type=rt.name)
                  for rt in readable if rt.name not in replaced]
        if actor.role == "admin":
            items.append(NavItem("Administration", "/admin", 90, group="admin"))
        items += [item for _, item in plugin_items] + reports
    else:
        offering = {plugin for plugin, _ in plugin_items}
        items += [NavItem(plural(rt), url_for("console.record_list", collection=rt.collection),
                          10, group="portal", record_type=rt.name)
                  for rt in readable if rt.plugin not in offering and rt.name not in replaced]
        items += [replace(item, group="portal") for _, item in plugin_items] + reports
    items = _with_database_facts(actor, items)
    groups = list(NAV_GROUPS)
    # Processes by name (people look one up); the other groups in the plugins' order.
    items.sort(key=lambda i: (groups.index(i.placed), 0 if i.placed == "process" else i.order,
                              i.label.lower()))
    seen: set[str] = set()
    unique = []
    for item in items:  # no entry twice: the same page, or two entries read the same
        keys = {"url:" + item.url.rstrip("/"), "label:" + item.label.casefold()}
        if keys & seen:
            continue
        seen |= keys
        unique.append(item)
    return unique


def _with_database_facts(actor: Actor, items: list[NavItem]) -> list[NavItem]:
    """The entries whose ``shown_when`` finds something, labelled with the ``note`` of
    those whose ``note_when`` does: every such read, and the frame's scalars (the bell),
    in one statement, so a page's menu costs one round trip to the database, not one
    per plugin."""
    asked: list[tuple[Any, Any]] = []  # (what the answer is for, the select)
    for item in items:
        if item.shown_when is not None:
            asked.append(((id(item), "shown"), item.shown_when))
        if item.note_when is not None:
            asked.append(((id(item), "note"), item.note_when))
    if has_request_context():
        for scalar in FRAME_SCALARS:
            found = scalar(actor)
            if found is not None:
                asked.append((found[0], found[1]))
    answers: dict[Any, Any] = {}
    if asked:
        statement = select(*(query.scalar_subquery().label(f"fact_{i}")
                             for i, (_, query) in enumerate(asked)))
        try:
            with _itsm().read_session() as session:
                row = session.execute(statement).one()
        except SQLAlchemyError:  # an error page about the database, or a missed upgrade
            log.warning("the menu's facts could not be read", exc_info=True)
            row = None
        if row is not None:
            answers = {key: value for (key, _), value in zip(asked, row, strict=True)}
            for key, value in answers.items():
                if isinstance(key, str):
                    request.environ[key] = (actor.id, value)
    out = []
    for item in items:
        if item.shown_when is not None and answers.get((id(item), "shown")) in (None, "", 0):
            continue  # unknown or nothing found: not offered
        if item.note_when is not None and answers.get((id(item), "note")) not in (None, "", 0):
            item = replace(item, label=f"{item.label} ({item.note})")
        out.append(item)
    return out


def navigation(actor: Actor) -> list[dict[str, Any]]:
    """The menu as the templates read it: ``label``, ``url``, ``group``, ``current``."""
    cached = request.environ.get(NAV_KEY)
    if cached is not None and cached[0] == actor.id:
        return cached[1]
    items = menu_entries(actor)
    current = max((i.url for i in items if _is_under(request.path, i.url)), key=len, default="")
    out = [{"label": i.label, "url": i.url, "group": i.placed, "current": i.url == current,
            "go": ""} for i in items]
    # Keys of console.js's "g <key>" shortcuts: home, notifications, the first queue.
    home, notes = url_for("console.home"), url_for("console.notifications")
    for entry in out:
        entry["go"] = "h" if entry["url"] == home else "n" if entry["url"] == notes else ""
    first_queue = next((e for e in out if e["group"] in ("process", "portal")
                        and e["url"] != home), None)
    if first_queue is not None and actor.role != "requester":
        first_queue["go"] = "q"
    request.environ[NAV_KEY] = (actor.id, out)
    return out


def navigation_groups(actor: Actor) -> list[dict[str, Any]]:
    """The menu in its groups: ``key``, ``label`` and ``items`` of each non-empty group."""
    entries = navigation(actor)
    return [{"key": key, "label": label, "items": [e for e in entries if e["group"] == key]}
            for key, label in NAV_GROUPS.items() if any(e["group"] == key for e in entries)]


def _is_under(path: str, url: str) -> bool:
    url = url.rstrip("/")
    return path == url or path.startswith(url + "/")


