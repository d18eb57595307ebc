"""The admin page kit: what every admin page is made of, the core's and the plugins'.

A plugin lists its admin pages with the ``itsm_admin_pages`` hook (:class:`AdminPage`);
their views live on the plugin's own blueprint, are protected with :func:`admin_view`
and render templates extending ``admin/base.html``, whose sidebar lists every admin page
the signed-in user may open, grouped by section. Every administrative change writes an
entry with :func:`record_admin_audit`: who, what, on which thing, before and after.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import request, url_for
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.routing import BuildError

from itsm.core.admin.models import AdminAudit
from itsm.core.auth import Actor
from itsm.core.context import current_itsm
from itsm.core.errors import ItsmError
from itsm.core.pagekit import error_text, field_messages, page_actor
from itsm.core.records import RecordService

log = logging.getLogger("itsm.admin")

__all__ = ["AdminPage", "admin_view", "record_admin_audit", "admin_pages", "sidebar",
           "may", "CORE_PAGES", "Form", "refused"]


@dataclass(frozen=True)
class AdminPage:
    """One page of the admin area, as a plugin lists it in ``itsm_admin_pages``.

    :param title: the sidebar's link text ("CAB rules").
    :param endpoint: the Flask endpoint of its view (``"change.admin_cab"``).
    :param section: the sidebar heading it is listed under ("Change management").
    :param permission: what the signed-in user must hold to see and open it (the view
        checks it again with :func:`admin_view`); "admin" by default, a plugin's own
        permission (``catalog.manage``) for its managers.
    :param description: one sentence, shown on the admin home page.
    """

    title: str
    endpoint: str
    section: str
    permission: str = "admin"
    description: str = ""


# The core's own pages, listed before the plugins' (see itsm.core.admin.views).
CORE_PAGES: tuple[AdminPage, ...] = (
    AdminPage("Overview", "admin.home", "Install", description="the install's health"),
    AdminPage("Plugins", "admin.plugins", "Install", "admin.plugins",
              "every installed plugin: enable, disable, uninstall"),
    AdminPage("Users", "admin.users", "People", "admin.users",
              "accounts, roles, agencies, groups, tokens and password resets"),
    AdminPage("Agencies", "admin.agencies", "People", "admin.groups",
              "the customer agencies and their contacts"),
    AdminPage("Groups", "admin.groups", "People", "admin.groups",
              "resolver groups, their mailbox, manager and members"),
    AdminPage("Audit", "admin.audit", "Install",
              description="who changed what in the administration, with before and after"),
)


@dataclass
class Form:
    """What an admin form shows: the values (typed or stored) and the messages per field."""

    values: MultiDict = field(default_factory=MultiDict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)


def refused(exc: ItsmError) -> Form:
    """The form as sent, with the service's messages at its fields (or, without any,
    the error as one sentence above the form)."""
    form = Form(MultiDict(request.form), field_messages(exc.fields or {}))
    if not form.errors:
        form.general.append(error_text(exc))
    return form


def may(actor: Actor, permission: str) -> bool:
    """Whether ``actor`` holds ``permission``, asked through the service layer's check
    (``itsm_permission_check``), as every other action is."""
    itsm = current_itsm()
    with itsm.Session() as session:
        return RecordService(itsm, session, actor).can(permission)


def _require(actor: Actor, permission: str) -> None:
    itsm = current_itsm()
    with itsm.Session() as session:
        service = RecordService(itsm, session, actor)
        try:
            service.require(permission)  # Forbidden: the page kit's 403 page
        finally:
            itsm.record_denials(service)  # refused admin pages show in `itsm audit`


def admin_view(permission: str | Callable[..., Any] = "admin") -> Callable[..., Any]:
    """Protect an admin page's view: a signed-in user holding ``permission`` (through the
    service layer's permission check) may open it; anyone else gets 403 (and the refusal
    is recorded like every refused action). Use ``@admin_view()`` or
    ``@admin_view("catalog.manage")`` below the route decorator."""
    if callable(permission):  # used bare: @admin_view
        return admin_view("admin")(permission)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            _require(page_actor(), str(permission))
            return view(*args, **kwargs)

        wrapped.admin_permission = permission  # type: ignore[attr-defined]
        return wrapped

    return decorate


def _plain(value: Any) -> Any:
    """A value as JSON keeps it: dates as ISO text, sets and tuples as lists."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def record_admin_audit(session: Session, actor: Actor, action: str, target: str,
                       before: dict[str, Any] | None, after: dict[str, Any] | None) -> AdminAudit:
    """Write an admin audit entry in ``session`` (the caller commits it with the change):
    ``actor`` did ``action`` ("user.role", "plugin.disable") to ``target``
    ("user ann@example.org"), the values ``before`` and ``after`` (None for nothing, as
    for a creation). Only the keys whose values differ are kept from two dicts."""
    if before is not None and after is not None:
        changed = {k for k in {*before, *after} if before.get(k) != after.get(k)}
        before = {k: v for k, v in before.items() if k in changed}
        after = {k: v for k, v in after.items() if k in changed}
    entry = AdminAudit(actor_id=actor.id, actor_email=(actor.email or "system")[:254],
                       action=str(action)[:64], target=str(target)[:200],
                       before=_plain(before), after=_plain(after))
    session.add(entry)
    return entry


def admin_pages() -> list[tuple[str, AdminPage]]:
    """Every admin page: the core's, then each enabled plugin's (``itsm_admin_pages``),
    with the name of who provides it. A plugin failing here is logged and left out."""
    itsm = current_itsm()
    pages = [("core", page) for page in CORE_PAGES]
    try:
        listed = itsm.results("itsm_admin_pages")
    except Exception:  # one broken plugin must not take the admin area down
        log.exception("itsm_admin_pages failed; plugin admin pages are left out")
        listed = []
    pages += [(plugin, page) for plugin, page in listed if isinstance(page, AdminPage)]
    return pages


def sidebar(actor: Actor | None) -> list[dict[str, Any]]:
    """The admin sidebar for ``actor``: sections in order of first appearance, each with
    the pages the actor may open (``title``, ``url``, ``current``)."""
    if actor is None:
        return []
    sections: dict[str, list[dict[str, Any]]] = {}
    held: dict[str, bool] = {}
    for _plugin, page in admin_pages():
        if page.permission not in held:
            held[page.permission] = may(actor, page.permission)
        if not held[page.permission]:
            continue
        try:
            url = url_for(page.endpoint)
        except BuildError:
            log.warning("admin page %r: no view %r", page.title, page.endpoint)
            continue
        sections.setdefault(page.section, []).append({
            "title": page.title, "url": url, "description": page.description,
            "current": request.path == url or (url != "/admin/"
                                               and request.path.startswith(url + "/"))})
    return [{"section": name, "pages": pages} for name, pages in sections.items()]
