"""The change plugin's administration pages: CAB rules and their quorum, the risk
questionnaire, standard change templates and freeze windows. One form per list, drawn
from the same marshmallow schema the API and ``itsm changes`` validate with
(:mod:`itsm.plugins.change.catalogs`), and saved through the same functions."""

from __future__ import annotations

from typing import Any

import marshmallow
from flask import flash, redirect, request, url_for
from marshmallow import fields, validate
from sqlalchemy import select

from itsm.plugin import (
    AdminPage,
    Group,
    ItsmError,
    admin_view,
    current_itsm,
    field_messages,
    from_local_input,
    local_input,
    page_actor,
    page_blueprint,
    render_page,
    zone_name,
)
from itsm.plugins.change import catalogs
from itsm.plugins.change.service import ADMIN_PERMISSION

bp = page_blueprint("change_admin", __name__, url_prefix="/admin/change")

# catalog -> (endpoint of its list, page title, what it is for)
LISTS = {
    "cab-rules": ("cab_rules", "CAB rules", "which group approves which changes, and its "
                  "quorum"),
    "risk-questions": ("risk_questions", "Risk questions", "the questionnaire that scores "
                       "a change's risk"),
    "templates": ("templates", "Standard change templates", "pre-approved changes and "
                  "what they allow"),
    "freeze-windows": ("freeze_windows", "Freeze windows", "periods no change may be "
                       "implemented in, without an emergency approval"),
}
PAGES = [AdminPage(title, f"change_admin.{endpoint}", "Change management",
                   permission=ADMIN_PERMISSION, description=about)
         for endpoint, title, about in LISTS.values()]

LABELS = {"name": "Name", "group": "Approver group", "purpose": "Approves",
          "quorum": "Quorum", "change_types": "Change types", "risk_levels": "Risk levels",
          "services": "Services", "categories": "Categories", "active": "In use",
          "key": "Key", "text": "Question", "options": "Answers and their risk points",
          "position": "Place in the questionnaire", "title": "Title of the change",
          "description": "Description", "category": "Category",
          "implementation_plan": "Implementation plan", "backout_plan": "Backout plan",
          "test_plan": "Test plan", "risk_level": "Risk level",
          "environments": "Environments", "max_window_hours": "Longest window (hours)",
          "starts_at": "Starts", "ends_at": "Ends", "reason": "Reason"}
CHOICE_LABELS = {"cab": "Changes (CAB)", "freeze": "Emergency changes inside a freeze",
                 "all": "Every member", "majority": "A majority of members",
                 "any": "Any one member"}


def _choices(field: fields.Field) -> list[str] | None:
    for check in field.validators if isinstance(field.validators, list) else []:
        if isinstance(check, validate.OneOf):
            return [str(c) for c in check.choices]
    return None


def _max(field: fields.Field) -> int:
    for check in field.validators if isinstance(field.validators, list) else []:
        if isinstance(check, validate.Length) and check.max:
            return int(check.max)
    return 200


def describe(cat: catalogs.Catalog, groups: list[str]) -> list[dict[str, Any]]:
    """The form's inputs, from the catalog's schema: a widget each."""
    out = []
    for name, field in cat.schema().fields.items():
        if field.dump_only:
            continue
        item: dict[str, Any] = {"name": name, "label": LABELS.get(name, name.capitalize()),
                                "hint": (field.metadata or {}).get("description", ""),
                                "required": field.required, "choices": None}
        if name == "group":
            item.update(widget="select", choices=[(g, g) for g in groups])
        elif isinstance(field, fields.List):
            inner = _choices(field.inner)
            if inner:
                item.update(widget="checks", choices=[(c, CHOICE_LABELS.get(c, c.capitalize()))
                                                      for c in inner])
            else:
                item.update(widget="lines", hint=(item["hint"] + " One a line.").strip())
        elif isinstance(field, fields.Dict):
            item.update(widget="pairs", hint="One answer a line: the answer, = , its "
                        "points, e.g. Yes = 10")
        elif isinstance(field, fields.Boolean):
            item.update(widget="checkbox")
        elif isinstance(field, fields.DateTime):
            # Typed and shown in the reader's zone (the label names it), stored UTC.
            item.update(widget="datetime-local", label=f"{item['label']} ({zone_name()} time)")
        elif isinstance(field, fields.Integer):
            item.update(widget="number")
        elif _choices(field):
            item.update(widget="select", choices=[(c, CHOICE_LABELS.get(c, c.capitalize()))
                                                  for c in _choices(field)])
        else:
            item.update(widget="textarea" if _max(field) > 500 else "text")
        out.append(item)
    return out


def _as_text(item: dict[str, Any], value: Any) -> Any:
    """A stored value as the form shows it."""
    widget = item["widget"]
    if value is None:
        return "" if widget not in ("checks", "checkbox") else ([] if widget == "checks"
                                                                 else False)
    if widget == "lines":
        return "\n".join(value)
    if widget == "pairs":
        return "\n".join(f"{k} = {v}" for k, v in value.items())
    if widget == "datetime-local":
        return local_input(value)
    return value


def _typed(items: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any],
                                                  dict[str, list[str]]]:
    """What was typed, the data for the service and the problems found on the way."""
    form = request.form
    typed: dict[str, Any] = {}
    data: dict[str, Any] = {}
    problems: dict[str, list[str]] = {}
    for item in items:
        name, widget = item["name"], item["widget"]
        if widget == "checks":
            typed[name] = data[name] = [v[:64] for v in form.getlist(name)][:20]
            continue
        if widget == "checkbox":
            typed[name] = data[name] = bool(form.get(name))
            continue
        text = form.get(name, "").replace("\r\n", "\n").replace("\x00", "")[:20_000]
        typed[name] = text
        text = text.strip()
        if widget == "lines":
            data[name] = [line.strip() for line in text.splitlines() if line.strip()]
        elif widget == "pairs":
            data[name] = {}
            for line in filter(None, (raw.strip() for raw in text.splitlines())):
                answer, sep, points = line.rpartition("=")
                if not sep or not points.strip().isdigit() or not answer.strip():
                    problems[name] = [f"{line[:60]!r}: write the answer, = , then its "
                                      "points, e.g. Yes = 10"]
                    break
                data[name][answer.strip()] = int(points.strip())
        elif widget == "number":
            if text:
                data[name] = text  # the schema says what is wrong with it
        elif widget == "datetime-local":
            if text or item["required"]:
                data[name] = from_local_input(text)
        elif text or item["required"]:
            data[name] = text
    return typed, data, problems


def _list(name: str):
    cat = catalogs.catalog(name)
    itsm = current_itsm()
    with itsm.unit_of_work(page_actor()) as svc:
        rows = catalogs.list_rows(svc, name)
    endpoint, title, about = LISTS[name]
    return render_page("change/admin/list.html", rows=rows, cat=cat, title=title,
                       about=about, name=name, choice_labels=CHOICE_LABELS)


def _form(name: str, row_id: int | None):
    cat = catalogs.catalog(name)
    itsm = current_itsm()
    actor = page_actor()
    with itsm.Session() as session:
        groups = list(session.scalars(select(Group.name).order_by(Group.name)))
    items = describe(cat, groups)
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {i["name"]: _as_text(i, None) for i in items}
    if name == "cab-rules":
        values.update(purpose="cab", quorum="majority", active=True)
    if name in ("templates", "risk-questions"):
        values.update(active=True)
    if row_id is not None:
        with itsm.unit_of_work(actor) as svc:
            found = [r for r in catalogs.list_rows(svc, name) if r["id"] == row_id]
        if not found:
            return render_page("change/admin/list.html", 404, rows=[], cat=cat, name=name,
                               choice_labels=CHOICE_LABELS,
                               title=LISTS[name][1], about=f"no {cat.label} {row_id}")
        values = {i["name"]: _as_text(i, found[0].get(i["name"])) for i in items}
    if request.method == "POST":
        action = request.form.get("action", "save")
        if action in ("delete", "confirm-delete") and row_id is not None:
            return _delete(name, cat, row_id, values, action == "confirm-delete")
        values, data, errors = _typed(items)
        if not errors:
            try:
                with itsm.unit_of_work(actor) as svc:
                    if row_id is None:
                        catalogs.add(svc, name, data)
                    else:
                        catalogs.update(svc, name, str(row_id), data)
            except ItsmError as exc:
                if exc.status in (401, 403, 404):
                    raise
                errors = field_messages(exc.fields) or {"_": [exc.message]}
            except marshmallow.ValidationError as exc:  # a nested message shape
                errors = field_messages(exc.normalized_messages())
            else:
                flash(f"The {cat.label} {data.get(cat.key, '')} is saved.", "success")
                return redirect(url_for(f".{LISTS[name][0]}"))
    return render_page("change/admin/form.html", 422 if errors else 200, cat=cat, name=name,
                       items=items, values=values, errors=errors, row_id=row_id,
                       title=LISTS[name][1])


def _delete(name: str, cat: catalogs.Catalog, row_id: int, values: dict[str, Any],
            confirmed: bool):
    if not confirmed:  # destructive: asked first, on a page of its own
        label = f"“{values.get('text')}”" if name == "risk-questions" else values.get(cat.key)
        return render_page("change/admin/delete.html", cat=cat, name=name, row_id=row_id,
                           label=label, title=LISTS[name][1])
    with current_itsm().unit_of_work(page_actor()) as svc:
        catalogs.remove(svc, name, str(row_id))
    flash(f"The {cat.label} {values.get(cat.key)} is deleted.", "success")
    return redirect(url_for(f".{LISTS[name][0]}"))


def _register() -> None:
    for name, (endpoint, _title, _about) in LISTS.items():
        def listed(name: str = name):
            return _list(name)

        def new(name: str = name):
            return _form(name, None)

        def edit(row_id: int, name: str = name):
            return _form(name, row_id)

        bp.add_url_rule(f"/{name}/", endpoint, admin_view(ADMIN_PERMISSION)(listed))
        bp.add_url_rule(f"/{name}/new", f"{endpoint}_new", admin_view(ADMIN_PERMISSION)(new),
                        methods=["GET", "POST"])
        bp.add_url_rule(f"/{name}/<int:row_id>", f"{endpoint}_edit",
                        admin_view(ADMIN_PERMISSION)(edit), methods=["GET", "POST"])


_register()

__all__ = ["PAGES", "bp", "describe"]
