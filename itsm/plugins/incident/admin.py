"""The incident plugin's administration page: its categories, the impact x urgency
priority matrix and the routing of categories to groups, saved through
:func:`itsm.plugins.incident.incident_rules.save_rule` for incidents created from then on."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from sqlalchemy import select

from itsm.plugin import (
    AdminPage,
    Group,
    ItsmError,
    admin_view,
    current_itsm,
    field_messages,
    page_actor,
    page_blueprint,
    render_page,
)
from itsm.plugins.incident import rules as incident_rules

bp = page_blueprint("incident_admin", __name__, url_prefix="/admin/incident")
PAGES = [AdminPage("Categories, priority and routing", "incident_admin.rules",
                   "Incident management", description="the incident categories, the "
                   "impact x urgency priority matrix and which group gets each category")]
LEVELS = (2, 3, 4, 5)
LABELS = {"categories": "Categories", "priority_matrix": "The priority matrix",
          "routing": "The routing rules"}


def _categories_text(categories: dict[str, Any]) -> str:
    return "\n".join(f"{name}: {', '.join(subs or [])}".rstrip(": ")
                     for name, subs in categories.items())


def _parse_categories(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, _, subs = line.partition(":")
        if name.strip():
            out[name.strip()] = [s.strip() for s in subs.split(",") if s.strip()]
    return out


@bp.route("/", methods=["GET", "POST"])
@admin_view()
def rules():
    current = incident_rules.settings()
    matrix = current["priority_matrix"]
    values: dict[str, Any] = {"categories": _categories_text(current["categories"]),
                              "impacts": str(len(matrix)),
                              "urgencies": str(max(len(r) for r in matrix)),
                              **{f"m-{i}-{j}": str(cell) for i, row in enumerate(matrix, 1)
                                 for j, cell in enumerate(row, 1)},
                              **{f"r-{c}": current["routing"].get(c, "")
                                 for c in current["categories"]}}
    errors: dict[str, list[str]] = {}
    which = request.form.get("rule", "") if request.method == "POST" else ""
    if which in incident_rules.EDITABLE:
        value, values = _submitted(which, values)
        if value is not None:
            try:
                with current_itsm().unit_of_work(page_actor()) as svc:
                    incident_rules.save_rule(svc, which, value)
            except ItsmError as exc:
                if exc.status in (401, 403, 404):
                    raise
                errors = field_messages(exc.fields) or {which: [exc.message]}
            else:
                flash(f"{LABELS[which]} saved: new incidents follow them.", "success")
                return redirect(url_for(".rules"))
    with current_itsm().Session() as session:
        groups = list(session.scalars(select(Group.name).order_by(Group.name)))
    impacts, urgencies = int(values["impacts"]), int(values["urgencies"])
    return render_page("incident/admin/rules.html", 422 if errors else 200, values=values,
                       errors=errors, groups=groups, categories=list(current["categories"]),
                       impacts=range(1, impacts + 1), urgencies=range(1, urgencies + 1),
                       levels=LEVELS)


def _submitted(which: str, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The value for the service (None: only re-draw the form) and what was typed."""
    form = request.form
    if which == "categories":
        values["categories"] = form.get("categories", "")[:40_000].replace("\r\n", "\n")
        return _parse_categories(values["categories"]), values
    if which == "priority_matrix":
        for key in ("impacts", "urgencies"):
            typed = form.get(key, values[key])[:2]
            values[key] = typed if typed.isdigit() and int(typed) in LEVELS else values[key]
        impacts, urgencies = int(values["impacts"]), int(values["urgencies"])
        for i in range(1, impacts + 1):
            for j in range(1, urgencies + 1):
                values[f"m-{i}-{j}"] = form.get(f"m-{i}-{j}", values.get(f"m-{i}-{j}", ""))[:20]
        if form.get("action") == "resize":
            return None, values
        return [[values[f"m-{i}-{j}"] for j in range(1, urgencies + 1)]
                for i in range(1, impacts + 1)], values
    routing = {}
    for key in list(values):
        if key.startswith("r-"):
            values[key] = form.get(key, "")[:100].strip()
            routing[key[2:]] = values[key]
    return routing, values


__all__ = ["PAGES", "bp"]
