"""The cmdb's administration pages: the CI types and their own attributes, defined as
data and saved through :func:`itsm.plugins.cmdb.service.define_type` (which writes the
admin audit entry), as the API and ``itsm cmdb types`` do."""

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
from itsm.plugins.cmdb import service as cmdb

bp = page_blueprint("cmdb_admin", __name__, url_prefix="/admin/cmdb")
PAGES = [AdminPage("CI types", "cmdb_admin.types", "Configuration management",
                   permission=cmdb.ADMIN, description="the kinds of configuration item "
                   "and the attributes each one has")]
ROWS_MAX = 100
ATTRIBUTE_TYPE_LABELS = {"string": "Short text", "text": "Long text", "integer": "Whole number",
                         "number": "Number", "boolean": "Yes or no", "date": "Date",
                         "choice": "One of a list", "json": "JSON (structured data)"}


@bp.route("/types/")
@admin_view(cmdb.ADMIN)
def types():
    with current_itsm().unit_of_work(page_actor()) as service:
        rows = [cmdb.type_dict(t) for t in cmdb.all_types(service.session).values()]
    return render_page("cmdb/admin/types.html", types=rows, kinds=ATTRIBUTE_TYPE_LABELS)


@bp.route("/types/new", methods=["GET", "POST"])
@admin_view(cmdb.ADMIN)
def type_new():
    return _form(None, {"key": "", "label": "", "is_service": False, "attributes": []})


@bp.route("/types/<key>", methods=["GET", "POST"])
@admin_view(cmdb.ADMIN)
def type_edit(key: str):
    with current_itsm().unit_of_work(page_actor()) as service:
        found = cmdb.all_types(service.session).get(key[:64])
        values = cmdb.type_dict(found) if found is not None else None
    if values is None:
        raise NotFound(f"no CI type {key[:64]!r}")
    values["attributes"] = [{**a, "choices": "\n".join(a.get("choices") or [])}
                            for a in values["attributes"]]
    return _form(values["key"], values)


def _typed() -> tuple[dict[str, Any], dict[str, Any], list[int]]:
    """What was typed (to show again), the service's data, and the rows sent."""
    form = request.form
    rows = []
    for i in range(ROWS_MAX):
        if f"a-{i}-name" not in form or form.get(f"a-{i}-remove"):
            continue
        rows.append({"name": form.get(f"a-{i}-name", "")[:64].strip(),
                     "label": form.get(f"a-{i}-label", "")[:100].strip(),
                     "type": form.get(f"a-{i}-type", "string")[:20],
                     "required": bool(form.get(f"a-{i}-required")),
                     "choices": form.get(f"a-{i}-choices", "").replace("\r\n", "\n")[:5000]})
    typed = {"key": form.get("key", "")[:64].strip(), "label": form.get("label", "")[:100]
             .strip(), "is_service": bool(form.get("is_service")), "attributes": rows}
    sent = [i for i, row in enumerate(rows) if row["name"] or row["label"]]
    data = {"key": typed["key"], "label": typed["label"], "is_service": typed["is_service"],
            "attributes": [{"name": rows[i]["name"], "label": rows[i]["label"],
                            "type": rows[i]["type"], "required": rows[i]["required"],
                            "choices": [c.strip() for c in rows[i]["choices"].replace(
                                ",", "\n").splitlines() if c.strip()]} for i in sent]}
    return typed, data, sent


def _form(key: str | None, values: dict[str, Any]):
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values, data, sent = _typed()
        if key is not None:
            values["key"] = data["key"] = key  # the key is what CIs refer to: it stays
        if request.form.get("action") == "more":
            values["attributes"].append({})
        else:
            try:
                with current_itsm().unit_of_work(page_actor()) as service:
                    cmdb.define_type(service, data)
            except ItsmError as exc:
                if exc.status in (401, 403, 404):
                    raise
                errors = _errors(exc, sent)
            else:
                flash(f"CI type {data['label']} saved.", "success")
                return redirect(url_for(".types"))
    if not values["attributes"] or any(values["attributes"][-1].values()):
        values["attributes"] = [*values["attributes"], {}]
    return render_page("cmdb/admin/type_form.html", 422 if errors else 200, key=key,
                       values=values, errors=errors, kinds=ATTRIBUTE_TYPE_LABELS)


def _errors(exc: ItsmError, sent: list[int]) -> dict[str, list[str]]:
    """Field messages by input: ``a-<row>-<field>`` for a row's own."""
    return row_field_messages(exc.fields, "attributes", "a", sent) or {"_": [exc.message]}


__all__ = ["PAGES", "bp"]
