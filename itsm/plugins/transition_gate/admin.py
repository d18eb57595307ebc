"""The transition gate's administration pages: the checklist templates new transitions
copy their deliverables from, saved through
:func:`itsm.plugins.transition_gate.plan.save_template` as the API and CLI do."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from itsm.plugin import (
    AdminPage,
    ItsmError,
    NotFound,
    admin_view,
    current_itsm,
    page_actor,
    page_blueprint,
    render_page,
    row_field_messages,
)
from itsm.plugins.transition_gate import plan
from itsm.plugins.transition_gate.service import GATEKEEPER

bp = page_blueprint("transition_admin", __name__, url_prefix="/admin/transitions")
PAGES = [AdminPage("Checklist templates", "transition_admin.templates", "Service transition",
                   permission=GATEKEEPER, description="the deliverables a new service "
                   "transition starts with")]
ITEM_FIELDS = ("title", "description", "document_url", "due_days_before")
ROWS_MAX = 100


@bp.route("/templates/")
@admin_view(GATEKEEPER)
def templates():
    with current_itsm().Session() as session:
        rows = [plan.template_dict(t) for t in plan.templates(session)]
    return render_page("transition_gate/admin/templates.html", templates=rows)


@bp.route("/templates/new", methods=["GET", "POST"])
@admin_view(GATEKEEPER)
def template_new():
    return _form(None, {"name": "", "description": "", "active": True, "items": []})


@bp.route("/templates/<name>", methods=["GET", "POST"])
@admin_view(GATEKEEPER)
def template_edit(name: str):
    with current_itsm().Session() as session:
        found = [plan.template_dict(t) for t in plan.templates(session) if t.name == name]
    if not found:
        raise NotFound(f"no checklist template {name[:100]!r}")
    values = {**found[0], "items": [{**i, "due_days_before": "" if i.get(
        "due_days_before") is None else str(i["due_days_before"])} for i in found[0]["items"]]}
    return _form(name, values)


def _typed() -> tuple[dict[str, Any], dict[str, Any], list[int]]:
    form = request.form
    items = []
    for i in range(ROWS_MAX):
        if f"i-{i}-title" not in form or form.get(f"i-{i}-remove"):
            continue
        row: dict[str, Any] = {n: form.get(f"i-{i}-{n}", "").replace("\r\n", "\n")
                               [:5000].strip() for n in ITEM_FIELDS}
        row["mandatory"] = bool(form.get(f"i-{i}-mandatory"))
        items.append(row)
    typed = {"name": form.get("name", "")[:100].strip(),
             "description": form.get("description", "").replace("\r\n", "\n")[:5000].strip(),
             "active": bool(form.get("active")), "items": items}
    sent = [i for i, row in enumerate(items) if row["title"] or row["description"]]
    data = {**typed, "items": [
        {"title": items[i]["title"], "description": items[i]["description"],
         "mandatory": items[i]["mandatory"], "document_url": items[i]["document_url"],
         "due_days_before": items[i]["due_days_before"] or None} for i in sent]}
    return typed, data, sent


def _form(name: str | None, values: dict[str, Any]):
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values, data, sent = _typed()
        if name is not None:
            values["name"] = data["name"] = name  # the name is the template's key
        if request.form.get("action") == "more":
            values["items"].append({})
        else:
            try:
                with current_itsm().unit_of_work(page_actor()) as svc:
                    plan.save_template(svc, data)
            except ItsmError as exc:
                if exc.status in (401, 403, 404):
                    raise
                errors = _errors(exc, sent)
            else:
                flash(f"Checklist template {data['name']} saved: new transitions start "
                      "from it.", "success")
                return redirect(url_for(".templates"))
    if not values["items"] or any(values["items"][-1].values()):
        values["items"] = [*values["items"], {}]
    return render_page("transition_gate/admin/template_form.html", 422 if errors else 200,
                       name=name, values=values, errors=errors)


def _errors(exc: ItsmError, sent: list[int]) -> dict[str, list[str]]:
    """Field messages by input: ``i-<row>-<field>`` for a row's own."""
    return row_field_messages(exc.fields, "items", "i", sent) or {"_": [exc.message]}


__all__ = ["PAGES", "bp"]
